// palisade-agent: the node agent. Wiring only; see pkg/agent.
import { startAgent } from '../pkg/agent/agent.ts';
import { parseAgentArgs, USAGE, UsageError } from '../pkg/agent/options.ts';

let opts;
try {
  opts = parseAgentArgs(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError) {
    if (err.message !== 'help') console.error(`palisade-agent: ${err.message}`);
    console.error(USAGE);
    process.exit(err.message === 'help' ? 0 : 2);
  }
  throw err;
}

let agent;
try {
  agent = await startAgent(opts);
} catch (err) {
  console.error(`palisade-agent: ${(err as Error).message}`);
  process.exit(1);
}

let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    agent.stop().then(() => process.exit(0), (err: Error) => {
      console.error(`palisade-agent: stopping: ${err.message}`);
      process.exit(1);
    });
  });
}
