/**
 * The lab's network: named network namespaces joined by a bridge, the way kind joins
 * node containers on a docker network.
 *
 *   pl-<lab>_host   the lab "host": bridge `br0` with the gateway address; the API
 *                   server forwarder listens here. The root namespace is never touched.
 *   pl-<lab>_n<i>   node i: `eth0` on the bridge with the node IP, default route via the
 *                   gateway, IPv4 forwarding on (a node routes for its pods).
 *   pl-<lab>_out    a host outside the cluster on the same bridge, with routes to every
 *                   pod CIDR through the node that owns it.
 *   pl-<lab>_p-...  pods (created by the lab, wired by the CNI plugin).
 *
 * `_` cannot appear in a lab name, so `pl-<lab>_` is a prefix no other lab shares.
 */
import { readdirSync } from 'node:fs';
import { ip, must, run } from './exec.ts';

export const BRIDGE_SUBNET = '10.89.0.0/24';
export const GATEWAY_IP = '10.89.0.1';
export const OUTSIDE_IP = '10.89.0.250';
export const API_PORT = 6443;

export interface NodeInfo {
  index: number;
  name: string;
  netns: string;
  ip: string;
  podCIDR: string;
}

export function nsPrefix(lab: string): string {
  return `pl-${lab}_`;
}

export function hostNetns(lab: string): string {
  return `${nsPrefix(lab)}host`;
}

export function outsideNetns(lab: string): string {
  return `${nsPrefix(lab)}out`;
}

export function nodeInfo(lab: string, index: number): NodeInfo {
  return {
    index,
    name: `lab-node-${index}`,
    netns: `${nsPrefix(lab)}n${index}`,
    ip: `10.89.0.${10 + index}`,
    podCIDR: `10.244.${index}.0/24`,
  };
}

export function podNetns(lab: string, namespace: string, pod: string): string {
  return `${nsPrefix(lab)}p-${namespace}.${pod}`;
}

/** Network namespaces (by name) that belong to a lab. */
export function labNetnses(lab: string): string[] {
  let names: string[];
  try {
    names = readdirSync('/var/run/netns');
  } catch {
    return [];
  }
  const prefix = nsPrefix(lab);
  return names.filter((n) => n.startsWith(prefix));
}

/** Lab names that have network namespaces on this host. */
export function labsWithNetns(): string[] {
  let names: string[];
  try {
    names = readdirSync('/var/run/netns');
  } catch {
    return [];
  }
  const labs = new Set<string>();
  for (const n of names) {
    const m = /^pl-([a-z0-9-]+)_/.exec(n);
    if (m) labs.add(m[1]!);
  }
  return [...labs];
}

async function sysctl(ns: string, key: string, value: string): Promise<void> {
  await must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `${key}=${value}`], `sysctl ${key} in ${ns}`);
}

export async function addNetns(name: string): Promise<void> {
  await must('ip', ['netns', 'add', name], `creating netns ${name}`);
  await ip(name, ['link', 'set', 'lo', 'up']);
}

/** Removes a netns; a missing one is not an error. */
export async function delNetns(name: string): Promise<void> {
  const r = await run('ip', ['netns', 'del', name]);
  if (r.code !== 0 && !/No such file/.test(r.stderr)) {
    throw new Error(`deleting netns ${name}: ${r.stderr.trim()}`);
  }
}

/** Pids of the processes living in a netns. */
export async function netnsPids(name: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', name]);
  if (r.code !== 0) return [];
  return r.stdout.split('\n').map((l) => Number(l.trim())).filter((n) => Number.isInteger(n) && n > 0);
}

/** Creates the host namespace and its bridge. */
export async function createHost(lab: string): Promise<void> {
  const host = hostNetns(lab);
  await addNetns(host);
  await ip(host, ['link', 'add', 'br0', 'type', 'bridge']);
  await ip(host, ['addr', 'add', `${GATEWAY_IP}/24`, 'dev', 'br0']);
  await ip(host, ['link', 'set', 'br0', 'up']);
}

/**
 * Plugs namespace `ns` into the bridge: veth `<hostIf>` in the host namespace (bridge
 * port), `eth0` in `ns` with `addr`/24 and a default route through the gateway.
 */
async function plug(lab: string, ns: string, hostIf: string, addr: string): Promise<void> {
  const host = hostNetns(lab);
  // Created directly in the host netns with its peer in `ns`: no transient interface
  // ever appears in the root namespace (names there are shared with everyone).
  await ip(host, ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await ip(host, ['link', 'set', hostIf, 'master', 'br0', 'up']);
  await ip(ns, ['addr', 'add', `${addr}/24`, 'dev', 'eth0']);
  await ip(ns, ['link', 'set', 'eth0', 'up']);
  await ip(ns, ['route', 'add', 'default', 'via', GATEWAY_IP]);
}

export async function createNode(lab: string, node: NodeInfo): Promise<void> {
  await addNetns(node.netns);
  await plug(lab, node.netns, `n${node.index}`, node.ip);
  await sysctl(node.netns, 'net.ipv4.ip_forward', '1');
  // Pod traffic between nodes is routed, not NATed, and arrives on eth0 from addresses
  // of other nodes' pod CIDRs: strict reverse-path filtering would drop it.
  await sysctl(node.netns, 'net.ipv4.conf.all.rp_filter', '0');
  await sysctl(node.netns, 'net.ipv4.conf.default.rp_filter', '0');
}

export async function createOutside(lab: string, nodes: readonly NodeInfo[]): Promise<void> {
  const ns = outsideNetns(lab);
  await addNetns(ns);
  await plug(lab, ns, 'out', OUTSIDE_IP);
  for (const n of nodes) await ip(ns, ['route', 'add', n.podCIDR, 'via', n.ip]);
}

/**
 * Routes between nodes for the reference-plugin mode (no control plane): each node
 * reaches every other node's pod CIDR through that node's IP.
 */
export async function addNodeRoutes(nodes: readonly NodeInfo[]): Promise<void> {
  for (const n of nodes) {
    for (const m of nodes) {
      if (m.index !== n.index) await ip(n.netns, ['route', 'replace', m.podCIDR, 'via', m.ip]);
    }
  }
}
