/**
 * Runs inside a test's network namespace (`ip netns exec`): sets up or removes the L7
 * redirect, then prints what the namespace holds as one JSON line.
 * usage: setup-child.ts setup|remove|show DIR STATE_DIR [PROXY_PORT]
 * A failing setup prints {"error": "<message>"} before the state.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createMapRef, objGet, RawMap } from 'bpf';
import { L7_DEVICE, removeL7Redirect, setupL7Redirect } from '../../../pkg/datapath/linux/l7redirect.ts';

const [cmd, dir, stateDir, port] = process.argv.slice(2) as [string, string, string, string | undefined];
const root = new URL('../../..', import.meta.url).pathname;

let error: string | undefined;
if (cmd === 'setup') {
  await setupL7Redirect({
    proxyPort: Number(port ?? 15001), dir, stateDir, helper: join(root, 'bin/palisade-bpf'), object: join(root, 'bpf/out/l7_device.o'),
  }).catch((e: Error & { code?: string }) => { error = `${e.code}: ${e.message}`; });
} else if (cmd === 'remove') {
  await removeL7Redirect(dir, stateDir);
}

const sh = (args: string[]): string => {
  try {
    return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
};
let config: number[] | undefined;
try {
  const ref = createMapRef(objGet(join(dir, 'maps', 'pal_l7_config')), { transfer: true });
  const v = new RawMap(ref).get(Buffer.alloc(4));
  config = v ? [v.readUInt16LE(0), v.readUInt32LE(8)] : undefined;
  ref.close();
} catch {
  config = undefined;
}
const sysctl = (p: string): string => readFileSync(`/proc/sys/net/ipv4/${p}`, 'utf8').trim();
process.stdout.write(`${JSON.stringify({
  error,
  rules: (JSON.parse(sh(['ip', '-j', 'rule', 'show']) || '[]') as { priority: number; table: string; fwmark?: string; fwmask?: string }[])
    .filter((r) => r.priority === 2077),
  routes: sh(['ip', 'route', 'show', 'table', '2077']).trim(),
  device: sh(['ip', '-j', 'link', 'show', 'dev', L7_DEVICE]) ? (JSON.parse(sh(['ip', '-j', 'link', 'show', 'dev', L7_DEVICE])) as { ifindex: number }[])[0]!.ifindex : 0,
  filter: sh(['tc', 'filter', 'show', 'dev', L7_DEVICE, 'ingress']).includes('l7_device'),
  nonlocalBind: sysctl('ip_nonlocal_bind'),
  earlyDemux: sysctl('tcp_early_demux'),
  config,
})}\n`);
