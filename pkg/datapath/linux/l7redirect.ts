/**
 * The node-side half of the L7 redirect (bpf/lib/l7.h; docs/l7.md "The redirect"), in the
 * network namespace this process runs in (the node's):
 *
 * | object | value | why |
 * |---|---|---|
 * | ip rule | `pref 2077 fwmark 0x200000/0x200000 lookup 2077` | packets the programs assigned to a proxy socket are delivered locally, not forwarded |
 * | route | `local 0.0.0.0/0 dev lo table 2077` | the one route of that table |
 * | link | `l7_palisade` (veth, peer `l7_palisade_p`; not `pal*`, the prefix of pod veths the endpoint manager collects) + `l7_device` on its tc ingress | bpf_sk_assign works at tc ingress only: to_pod (tc egress) redirects here |
 * | sysctl | `net.ipv4.conf.l7_palisade.rp_filter=0` | frames arrive on it with any pod source |
 * | sysctl | `net.ipv4.ip_nonlocal_bind=1` | the proxy binds its upstream sockets to the client's address before making them transparent |
 * | sysctl | `net.ipv4.tcp_early_demux=0` | early demux would hand a *forwarded* packet whose tuple matches a proxy socket to that socket, and ip_forward drops packets that carry a socket |
 * | map | `pal_l7_config` = {proxyPort, device MAC, ifindex} | written last: redirects start once all of the above is in place |
 *
 * The table number, rule priority and mark bit are Palisade's (unused by the kernel,
 * iproute2's defaults, kube-proxy's 0x4000/0x8000 marks). Every step is idempotent;
 * `remove` undoes all of it (sysctls back to the values found by `setup`, or to the
 * kernel defaults after a restart). `conf.all.rp_filter=1` (strict everywhere) overrides
 * the device's 0 (the kernel uses the maximum): setup refuses it with a clear error.
 */
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { createMapRef, objGet, RawMap } from 'bpf';
import { run, runOk } from './exec.ts';

export const L7_MARK = 0x00200000;
export const L7_TABLE = 2077;
export const L7_RULE_PREF = 2077;
export const L7_DEVICE = 'l7_palisade';
export const L7_DEVICE_PEER = 'l7_palisade_p';
export const L7_PROGRAM = 'l7_device';
export const L7_CONFIG_MAP = 'pal_l7_config';

export class L7RedirectError extends Error {
  readonly code = 'PAL_L7_REDIRECT';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'L7RedirectError';
  }
}

export interface L7RedirectOptions {
  /** The proxy's listening port on 127.0.0.1. */
  proxyPort: number;
  /** `<bpffs-root>/palisade` of the Linux datapath (its maps/ and progs/ must exist). */
  dir: string;
  /** bin/palisade-bpf (loads the program with the shared pinned maps). */
  helper: string;
  /** bpf/out/l7_device.o */
  object: string;
  /** A directory for the sysctl values found before setup (bpffs holds no regular files). */
  stateDir: string;
}

const SYSCTLS = {
  nonlocalBind: '/proc/sys/net/ipv4/ip_nonlocal_bind',
  earlyDemux: '/proc/sys/net/ipv4/tcp_early_demux',
} as const;
const DEFAULTS: Record<keyof typeof SYSCTLS, string> = { nonlocalBind: '0', earlyDemux: '1' };
const WANT: Record<keyof typeof SYSCTLS, string> = { nonlocalBind: '1', earlyDemux: '0' };

async function readSysctl(path: string): Promise<string> {
  return (await fs.readFile(path, 'utf8')).trim();
}

/** Where setup() keeps the sysctl values it found, so that remove() restores them. */
function savedPath(stateDir: string): string {
  return join(stateDir, 'l7-sysctls.json');
}

async function ip(step: string, args: string[]): Promise<string> {
  return runOk(step, 'ip', args);
}

/** The L7 device's MAC as 6 bytes and its ifindex. */
async function deviceInfo(): Promise<{ mac: Buffer; ifindex: number }> {
  const out = await ip('reading the l7 device', ['-j', 'link', 'show', 'dev', L7_DEVICE]);
  const [link] = JSON.parse(out) as { ifindex: number; address: string }[];
  if (!link) throw new Error(`no link ${L7_DEVICE}`);
  return { mac: Buffer.from(link.address.split(':').map((h) => Number.parseInt(h, 16))), ifindex: link.ifindex };
}

function writeConfig(dir: string, proxyPort: number, mac: Buffer, ifindex: number): void {
  const pin = join(dir, 'maps', L7_CONFIG_MAP);
  const ref = createMapRef(objGet(pin), { transfer: true });
  try {
    if (ref.keySize !== 4 || ref.valueSize !== 12) {
      throw new Error(`map ${pin} has key/value ${ref.keySize}/${ref.valueSize}, expected 4/12`);
    }
    const v = Buffer.alloc(12);
    v.writeUInt16LE(proxyPort, 0);
    mac.copy(v, 2, 0, 6);
    v.writeUInt32LE(ifindex, 8);
    new RawMap(ref).set(Buffer.alloc(4), v);
  } finally {
    ref.close();
  }
}

/** Sets everything up; the config map goes last. Idempotent. */
export async function setupL7Redirect(o: L7RedirectOptions): Promise<void> {
  if (!Number.isInteger(o.proxyPort) || o.proxyPort <= 0 || o.proxyPort > 65535) {
    throw new L7RedirectError(`setting up the l7 redirect: bad proxy port ${o.proxyPort}`);
  }
  try {
    if (!existsSync(o.object)) throw new Error(`program object ${o.object} not found (run 'make build-bpf')`);
    if ((await readSysctl('/proc/sys/net/ipv4/conf/all/rp_filter')) === '1') {
      throw new Error('net.ipv4.conf.all.rp_filter is 1 (strict on every interface): set it to 0 or 2, ' +
        'pod veths keep their own strict setting');
    }
    // Sysctls: remember what we found (first setup only), then set.
    const saved = savedPath(o.stateDir);
    if (!existsSync(saved)) {
      const found: Record<string, string> = {};
      for (const [k, p] of Object.entries(SYSCTLS)) found[k] = await readSysctl(p);
      await fs.writeFile(saved, JSON.stringify(found));
    }
    for (const [k, p] of Object.entries(SYSCTLS)) await fs.writeFile(p, WANT[k as keyof typeof SYSCTLS]);

    // The device.
    const exists = await run('ip', ['link', 'show', 'dev', L7_DEVICE]);
    if (exists.code !== 0) {
      await ip('creating the l7 device', ['link', 'add', L7_DEVICE, 'type', 'veth', 'peer', 'name', L7_DEVICE_PEER]);
    }
    await fs.writeFile(`/proc/sys/net/ipv4/conf/${L7_DEVICE}/rp_filter`, '0');
    await ip('bringing the l7 device up', ['link', 'set', L7_DEVICE, 'up']);
    await ip('bringing the l7 device peer up', ['link', 'set', L7_DEVICE_PEER, 'up']);

    // Routing: the rule is checked first (`ip rule add` would add a duplicate).
    const rules = await ip('listing ip rules', ['-j', 'rule', 'show', 'pref', String(L7_RULE_PREF)]);
    if ((JSON.parse(rules || '[]') as unknown[]).length === 0) {
      await ip('adding the l7 ip rule', ['rule', 'add', 'pref', String(L7_RULE_PREF), 'fwmark',
        `0x${L7_MARK.toString(16)}/0x${L7_MARK.toString(16)}`, 'lookup', String(L7_TABLE)]);
    }
    await ip('adding the l7 local route', ['route', 'replace', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', String(L7_TABLE)]);

    // The program on the device's tc ingress.
    const prog = join(o.dir, 'progs', L7_PROGRAM);
    await runOk('loading l7_device', o.helper, ['load', o.object, prog, join(o.dir, 'maps')]);
    const q = await run('tc', ['qdisc', 'add', 'dev', L7_DEVICE, 'clsact']);
    if (q.code !== 0 && !/exists|exclusivity/i.test(q.stderr)) throw new Error(`adding clsact to ${L7_DEVICE}: ${q.stderr.trim()}`);
    await runOk('attaching l7_device', 'tc', ['filter', 'replace', 'dev', L7_DEVICE, 'ingress', 'prio', '1', 'handle', '1',
      'bpf', 'da', 'pinned', prog]);

    const { mac, ifindex } = await deviceInfo();
    writeConfig(o.dir, o.proxyPort, mac, ifindex);
  } catch (e) {
    throw new L7RedirectError(`setting up the l7 redirect: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Stops new redirects (config proxyPort 0: redirected flows are dropped, fail closed)
 * and leaves the rest for the next start. Succeeds when nothing was set up.
 */
export function pauseL7Redirect(dir: string): void {
  if (!existsSync(join(dir, 'maps', L7_CONFIG_MAP))) return;
  writeConfig(dir, 0, Buffer.alloc(6), 0);
}

/** Removes everything setup() made; a missing piece is not an error. */
export async function removeL7Redirect(dir: string, stateDir: string): Promise<void> {
  try {
    pauseL7Redirect(dir);
    await run('ip', ['link', 'del', L7_DEVICE]);
    for (;;) {
      const r = await run('ip', ['rule', 'del', 'pref', String(L7_RULE_PREF)]);
      if (r.code !== 0) break;
    }
    await run('ip', ['route', 'flush', 'table', String(L7_TABLE)]);
    await fs.rm(join(dir, 'progs', L7_PROGRAM), { force: true });
    const saved = savedPath(stateDir);
    const found: Record<string, string> = existsSync(saved)
      ? JSON.parse(await fs.readFile(saved, 'utf8')) as Record<string, string>
      : { ...DEFAULTS };
    for (const [k, p] of Object.entries(SYSCTLS)) {
      const v = found[k] ?? DEFAULTS[k as keyof typeof SYSCTLS];
      if (/^\d+$/.test(v)) await fs.writeFile(p, v);
    }
    await fs.rm(saved, { force: true });
  } catch (e) {
    throw new L7RedirectError(`removing the l7 redirect: ${(e as Error).message}`, { cause: e });
  }
}
