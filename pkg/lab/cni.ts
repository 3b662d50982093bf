/**
 * Invoking a CNI plugin the way a container runtime does (CNI spec 1.0: the plugin is
 * `CNI_PATH/<type>`, parameters in the environment, the network config on stdin, the
 * result or a `{code, msg}` error on stdout).
 */
import { join } from 'node:path';
import { run } from './exec.ts';

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK';
  /** Directory holding the plugin binaries (CNI_PATH). */
  cniPath: string;
  containerId: string;
  /** Path of the pod's network namespace. */
  netns: string;
  ifName: string;
  /** Key=value pairs for CNI_ARGS. */
  args: Record<string, string>;
  /** The network configuration (its `type` names the binary). */
  config: Record<string, unknown> & { type: string };
  /** Run the plugin inside this named network namespace (the node's). */
  inNetns?: string;
  /** Kill the plugin after this many ms (default 60 s). */
  timeoutMs?: number;
}

export interface CniResult {
  /** First IPv4 address of the result, without the prefix length. */
  ip?: string;
  raw: Record<string, unknown>;
}

export class CniError extends Error {
  readonly cniCode: number;
  constructor(message: string, cniCode: number) {
    super(message);
    this.name = 'CniError';
    this.cniCode = cniCode;
  }
}

export async function invokeCni(call: CniCall): Promise<CniResult> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifName,
    CNI_PATH: call.cniPath,
    CNI_ARGS: Object.entries(call.args).map(([k, v]) => `${k}=${v}`).join(';'),
  };
  const bin = join(call.cniPath, call.config.type);
  const [cmd, argv] = call.inNetns ? ['ip', ['netns', 'exec', call.inNetns, bin]] : [bin, []];
  const r = await run(cmd, argv, { env, input: JSON.stringify(call.config), timeoutMs: call.timeoutMs ?? 60_000 });
  let out: Record<string, unknown> = {};
  try { out = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {}; } catch { /* below */ }
  if (r.code !== 0) {
    const msg = typeof out.msg === 'string' ? `${out.msg}${out.details ? ` (${String(out.details)})` : ''}` : (r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`);
    throw new CniError(`CNI ${call.command} ${call.containerId}: ${msg}`, typeof out.code === 'number' ? out.code : 999);
  }
  if (call.command !== 'ADD') return { raw: out };
  const ips = (out.ips ?? []) as { address?: string }[];
  const v4 = ips.map((i) => i.address ?? '').find((a) => /^\d+\.\d+\.\d+\.\d+\//.test(a));
  if (!v4) throw new CniError(`CNI ADD ${call.containerId}: result has no IPv4 address: ${r.stdout.trim().slice(0, 200)}`, 999);
  return { ip: v4.split('/')[0]!, raw: out };
}
