// palisade-cni: the CNI plugin the container runtime executes. Wiring only; see
// pkg/cni/shim.ts. Starts with the V8 compile cache so repeated invocations skip parsing.
import module from 'node:module';

try {
  module.enableCompileCache?.();
} catch {
  // A read-only or missing cache directory only costs speed.
}

const { runShim } = await import('../pkg/cni/shim.ts');

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const timing: { requestSentMs?: number; agentMs?: number } = {};
const out = await runShim(process.env, Buffer.concat(chunks).toString('utf8'), undefined, timing);
for (const line of out.log) process.stderr.write(`${line}\n`);
if (process.env.PALISADE_CNI_TIMING === '1' && timing.requestSentMs !== undefined) {
  // Read by test/bench/cni.ts: the shim's own share is the time until the request left.
  process.stderr.write(`palisade-cni timing: requestSentMs=${timing.requestSentMs.toFixed(3)} `
    + `agentMs=${(timing.agentMs ?? 0).toFixed(3)} totalMs=${performance.now().toFixed(3)}\n`);
}
process.stdout.write(out.stdout, () => process.exit(out.exitCode));
