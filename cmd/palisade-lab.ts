// palisade-lab: multi-node lab in network namespaces. Wiring only; see pkg/lab/cli.ts.
import { main } from '../pkg/lab/cli.ts';

process.exit(await main(process.argv.slice(2)));
