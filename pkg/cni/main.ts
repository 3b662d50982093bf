/**
 * The plugin process: reads the network config from stdin, runs the shim, prints its
 * answer and exits with its status. Shared by cmd/palisade-cni.ts and the single-file
 * bundle (cmd/palisade-cni-bundle.ts), so both behave the same.
 *
 * Node builtins only. stdin is read synchronously: a runtime writes the config and
 * closes the pipe, and a stream (process.stdin) costs ~1 ms more to set up.
 */
import { readSync } from 'node:fs';
import { runShim, type ShimTiming } from './shim.ts';

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  const buf = Buffer.allocUnsafe(64 << 10);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A closed stdin is an empty one (VERSION needs none).
      if (code === 'EBADF' || code === 'EINVAL') break;
      if (code !== 'EAGAIN') throw err;
      // A non-blocking pipe the runtime has not written yet: the rest as a stream
      // (what was read so far is kept; a pipe has no position to lose).
      for await (const c of process.stdin) parts.push(c as Buffer);
      break;
    }
    if (n === 0) break;
    parts.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(parts).toString('utf8');
}

export async function main(): Promise<void> {
  const timing: ShimTiming = {};
  const out = await runShim(process.env, await readStdin(), undefined, timing);
  for (const line of out.log) process.stderr.write(`${line}\n`);
  if (process.env.PALISADE_CNI_TIMING === '1' && timing.requestSentMs !== undefined) {
    // Read by test/bench/cni.ts: the shim's own share is the time until the request left.
    process.stderr.write(`palisade-cni timing: requestSentMs=${timing.requestSentMs.toFixed(3)} `
      + `agentMs=${(timing.agentMs ?? 0).toFixed(3)} totalMs=${performance.now().toFixed(3)} `
      + `connectedMs=${(timing.connectedMs ?? 0).toFixed(3)} firstByteMs=${(timing.firstByteMs ?? 0).toFixed(3)}\n`);
  }
  process.stdout.write(out.stdout, () => process.exit(out.exitCode));
}
