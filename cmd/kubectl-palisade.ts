/**
 * kubectl-palisade: the kubectl plugin (`kubectl palisade ...` with bin/ on PATH).
 * Wiring only; see pkg/inspect/cli.ts and docs/kubectl-palisade.md.
 */
import { main } from '../pkg/inspect/cli.ts';

const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => controller.abort());
}
// A closed pipe (`| head`) ends the output quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});

main(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  signal: controller.signal,
  now: () => Date.now(),
}).then((code) => code, (err: Error) => {
  process.stderr.write(`kubectl palisade: internal error: ${err.stack ?? err.message}\n`);
  return 2;
}).then((code) => {
  // Idle keep-alive connections must not hold the command open: exit once output is out.
  process.stdout.write('', () => process.exit(code));
});
