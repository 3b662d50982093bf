// palisade-lab: multi-node lab in network namespaces. Wiring only; see pkg/lab/cli.ts.
import { main } from '../pkg/lab/cli.ts';

const code = await main(process.argv.slice(2));
// A pipe that filled up (results, `status --json`) is written asynchronously: exit only
// once what is queued on stdout and stderr is out, or the reader gets a cut document.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
