/**
 * LinuxPodNetwork: the veth-per-pod layout of pkg/endpoint/podnet.ts.
 *
 * setup and teardown go over rtnetlink through the persistent helper (`palisade-bpf
 * serve`: veth-add creates the pair with the pod end already in the pod's namespace,
 * brings the host end up and adds route and neighbour to the pod; pod-config sets up
 * the pod side from a thread inside the pod's namespace, IPv6 off on its interface;
 * link-del). No process starts per pod. Without the helper binary (or for a netns path with whitespace) the same
 * steps run as two `ip -batch` processes, one of them under nsenter. check, hostLink and
 * listHostLinks always use iproute2's JSON output (not on the ADD/DEL path).
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import {
  PodNetworkError, type PodLinkInfo, type PodLinkSpec, type PodNetwork, type PodSetupOptions,
} from '../../../endpoint/podnet.ts';
import { defaultHelperPath, type RunResult } from '../exec.ts';
import { HelperServer } from '../helper-server.ts';
import { ipBatch, isNoDevice, parseJsonLines } from './ip.ts';

interface IpLink {
  ifindex: number;
  ifname: string;
  mtu?: number;
  address?: string;
  flags?: string[];
  addr_info?: { family: string; local: string; prefixlen: number }[];
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
}
interface IpNeigh {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

/**
 * net.ipv6.conf.<pod interface>.disable_ipv6=1, written inside the pod's namespace before
 * its interface goes up (the helper's pod-config does the same): the interface never
 * gets a link-local address, so the pod sends no router solicitation, MLD report or DAD
 * probe that the IPv4-only datapath would drop (docs/cni.md). lo is left alone (::1).
 */
function podIpv6Off(podIfName: string): { file: string; value: string } {
  return { file: `/proc/sys/net/ipv6/conf/${podIfName}/disable_ipv6`, value: '1' };
}

/** Resolves like `p`, reporting how long it took. */
async function timed<T>(p: Promise<T>, report: (ms: number) => void): Promise<T> {
  const t0 = performance.now();
  try {
    return await p;
  } finally {
    report(+(performance.now() - t0).toFixed(2));
  }
}

export interface LinuxPodNetworkOptions {
  /** palisade-bpf for netlink; default bin/palisade-bpf; null: always iproute2. */
  helperPath?: string | null;
}

export class LinuxPodNetwork implements PodNetwork {
  private readonly server?: HelperServer;

  constructor(opts: LinuxPodNetworkOptions = {}) {
    const helper = opts.helperPath === undefined ? defaultHelperPath() : opts.helperPath;
    if (helper && existsSync(helper)) this.server = new HelperServer(helper);
  }

  /** The helper when it can take these arguments (no whitespace), else undefined. */
  private helperFor(args: string[]): ((a: string[]) => Promise<RunResult>) | undefined {
    if (!this.server || args.some((a) => /\s/.test(a))) return undefined;
    return (a) => this.server!.call(a);
  }

  /** Ends the helper process (the agent exiting ends it too). */
  async close(): Promise<void> {
    await this.server?.close();
  }

  async setup(s: PodLinkSpec, opts: PodSetupOptions = {}): Promise<PodLinkInfo> {
    const t0 = performance.now();
    let info = await this.setupHost(s);
    if (info === 'exists') {
      // A host veth of this attachment survived a crash between create and record:
      // it is ours (the name is derived from the attachment), so replace it.
      await this.teardown(s.hostIfName);
      info = await this.setupHost(s);
      if (info === 'exists') throw new PodNetworkError(`creating veth ${s.hostIfName}: name still in use`);
    }
    const hook = opts.onHostLink?.(info.hostIfindex);
    const t1 = performance.now();
    if (opts.phases) opts.phases.hostSide = +(t1 - t0).toFixed(2);
    const [pod, hooked] = await Promise.allSettled([
      timed(this.setupPod(s), (ms) => { if (opts.phases) opts.phases.podSideOverlapped = ms; }),
      hook ?? Promise.resolve(),
    ]);
    if (hooked.status === 'rejected') {
      await this.teardown(s.hostIfName).catch(() => undefined);
      throw hooked.reason;
    }
    if (pod.status === 'rejected' || pod.value.code !== 0) {
      await this.teardown(s.hostIfName).catch(() => undefined);
      const why = pod.status === 'rejected' ? (pod.reason as Error).message : pod.value.stderr;
      throw new PodNetworkError(`configuring ${s.podIfName} in ${s.netns}: ${why}`);
    }
    return info;
  }

  private setupPod(s: PodLinkSpec): Promise<RunResult> {
    const args = ['pod-config', s.netns, s.podIfName, s.ipv4, s.gateway, s.hostMac];
    const helper = this.helperFor(args);
    if (helper) return helper(args);
    return ipBatch([
      'link set lo up',
      `link set ${s.podIfName} up`,
      `addr add ${s.ipv4}/32 dev ${s.podIfName}`,
      // The gateway is on-link through the veth; the permanent neighbour answers for
      // it, so the pod never ARPs (and the host needs no proxy_arp or address of its own).
      `route add ${s.gateway} dev ${s.podIfName} scope link`,
      `route add default via ${s.gateway} dev ${s.podIfName}`,
      `neigh replace ${s.gateway} lladdr ${s.hostMac} dev ${s.podIfName} nud permanent`,
    ], { netns: s.netns, sysctls: [podIpv6Off(s.podIfName)] });
  }

  private async setupHost(s: PodLinkSpec): Promise<PodLinkInfo | 'exists'> {
    const args = ['veth-add', s.hostIfName, s.hostMac, s.podIfName, s.podMac, String(s.mtu), s.netns, s.ipv4];
    const helper = this.helperFor(args);
    if (helper) {
      const r = await helper(args);
      // Exit status 4: the host name is taken (the helper left it alone).
      if (r.code === 4) return 'exists';
      if (r.code !== 0) throw new PodNetworkError(`creating veth ${s.hostIfName} into ${s.netns}: ${r.stderr}`);
      const ifindex = Number(r.stdout.trim());
      if (!Number.isInteger(ifindex) || ifindex <= 0) {
        await this.teardown(s.hostIfName).catch(() => undefined);
        throw new PodNetworkError(`reading ifindex of ${s.hostIfName}: got ${JSON.stringify(r.stdout)}`);
      }
      // rp_filter was set by the helper: no file I/O here, which under load would queue
      // in libuv's threadpool behind other ADDs' fsyncs.
      return { hostIfindex: ifindex };
    }
    const host = await ipBatch([
      `link add ${s.hostIfName} address ${s.hostMac} mtu ${s.mtu} type veth `
        + `peer name ${s.podIfName} address ${s.podMac} mtu ${s.mtu} netns ${s.netns}`,
      `link set ${s.hostIfName} up`,
      `route replace ${s.ipv4}/32 dev ${s.hostIfName} scope link`,
      `neigh replace ${s.ipv4} lladdr ${s.podMac} dev ${s.hostIfName} nud permanent`,
      `link show dev ${s.hostIfName}`,
    ], { json: true });
    if (host.code !== 0) {
      if (/File exists/.test(host.stderr) && /:1$/m.test(host.stderr.split('\n').pop() ?? '')) {
        return 'exists';
      }
      // The first command may have succeeded before a later one failed.
      await this.teardown(s.hostIfName).catch(() => undefined);
      throw new PodNetworkError(`creating veth ${s.hostIfName} into ${s.netns}: ${host.stderr}`);
    }
    const link = parseJsonLines(host.stdout)[0]?.[0] as IpLink | undefined;
    if (!link?.ifindex) {
      await this.teardown(s.hostIfName).catch(() => undefined);
      throw new PodNetworkError(`reading ifindex of ${s.hostIfName}: no output`);
    }
    await this.setRpFilter(s.hostIfName);
    return { hostIfindex: link.ifindex };
  }

  /**
   * Strict reverse-path filtering on the host veth: a pod may only send from the
   * address routed to it (anti-spoofing). The kernel uses max(all, dev), so this never
   * loosens a stricter node setting. /proc/sys/net follows the caller's namespace.
   */
  private async setRpFilter(hostIfName: string): Promise<void> {
    const file = `/proc/sys/net/ipv4/conf/${hostIfName}/rp_filter`;
    try {
      if ((await readFile(file, 'utf8')).trim() !== '1') await writeFile(file, '1');
    } catch {
      // Best effort: the /32 route back to the veth already makes strict mode hold.
    }
  }

  async teardown(hostIfName: string): Promise<void> {
    const helper = this.helperFor([hostIfName]);
    if (helper) {
      const d = await helper(['link-del', hostIfName]);
      if (d.code !== 0) throw new PodNetworkError(`deleting veth ${hostIfName}: ${d.stderr}`);
      return;
    }
    const r = await ipBatch([`link del dev ${hostIfName}`]);
    if (r.code !== 0 && !isNoDevice(r.stderr)) {
      throw new PodNetworkError(`deleting veth ${hostIfName}: ${r.stderr}`);
    }
  }

  async hostLink(hostIfName: string): Promise<{ ifindex: number } | undefined> {
    const r = await ipBatch([`link show dev ${hostIfName}`], { json: true });
    if (r.code !== 0) {
      if (isNoDevice(r.stderr)) return undefined;
      throw new PodNetworkError(`reading veth ${hostIfName}: ${r.stderr}`);
    }
    const link = parseJsonLines(r.stdout)[0]?.[0] as IpLink | undefined;
    return link ? { ifindex: link.ifindex } : undefined;
  }

  async check(s: PodLinkSpec): Promise<string[]> {
    const problems: string[] = [];
    const [host, pod] = await Promise.all([
      ipBatch([`link show dev ${s.hostIfName}`, `route show ${s.ipv4}/32`], { json: true, force: true }),
      // No `link show` before `addr show`: in one batch, iproute2 keeps the link dump's
      // filter and the address dump then comes back without addresses.
      ipBatch([`addr show dev ${s.podIfName}`, 'route show',
        `neigh show ${s.gateway} dev ${s.podIfName}`], { json: true, force: true, netns: s.netns }),
    ]);
    const hostOut = parseJsonLines(host.stdout);
    const hostLinkJ = hostOut[0]?.[0] as IpLink | undefined;
    if (!hostLinkJ || hostLinkJ.ifname !== s.hostIfName) {
      problems.push(`host veth ${s.hostIfName} is missing`);
    } else {
      if (!hostLinkJ.flags?.includes('UP')) problems.push(`host veth ${s.hostIfName} is down`);
      const routes = (hostOut[1] ?? []) as IpRoute[];
      if (!routes.some((r) => r.dev === s.hostIfName)) {
        problems.push(`host route ${s.ipv4}/32 dev ${s.hostIfName} is missing`);
      }
    }
    if (/Cannot open network namespace|No such file/.test(pod.stderr) && pod.stdout.trim() === '') {
      problems.push(`network namespace ${s.netns} is gone`);
      return problems;
    }
    const podOut = parseJsonLines(pod.stdout);
    const podLinkJ = podOut[0]?.[0] as IpLink | undefined;
    if (!podLinkJ || podLinkJ.ifname !== s.podIfName) {
      problems.push(`interface ${s.podIfName} is missing in ${s.netns}`);
      return problems;
    }
    if (!podLinkJ.flags?.includes('UP')) problems.push(`interface ${s.podIfName} is down`);
    if (podLinkJ.address && podLinkJ.address !== s.podMac) {
      problems.push(`interface ${s.podIfName} has MAC ${podLinkJ.address}, expected ${s.podMac}`);
    }
    const addrs = (podLinkJ.addr_info ?? [])
      .filter((a) => a.family === 'inet');
    if (!addrs.some((a) => a.local === s.ipv4 && a.prefixlen === 32)) {
      problems.push(`address ${s.ipv4}/32 is missing on ${s.podIfName}`);
    }
    const routes = (podOut[1] ?? []) as IpRoute[];
    if (!routes.some((r) => r.dst === s.gateway && r.dev === s.podIfName)) {
      problems.push(`route to gateway ${s.gateway} is missing`);
    }
    if (!routes.some((r) => r.dst === 'default' && r.gateway === s.gateway && r.dev === s.podIfName)) {
      problems.push(`default route via ${s.gateway} is missing`);
    }
    const neigh = (podOut[2] ?? []) as IpNeigh[];
    if (!neigh.some((n) => n.lladdr === s.hostMac && n.state?.includes('PERMANENT'))) {
      problems.push(`permanent neighbour ${s.gateway} -> ${s.hostMac} is missing`);
    }
    return problems;
  }

  async listHostLinks(prefix: string): Promise<string[]> {
    const r = await ipBatch(['link show type veth'], { json: true });
    if (r.code !== 0) throw new PodNetworkError(`listing veths: ${r.stderr}`);
    return ((parseJsonLines(r.stdout)[0] ?? []) as IpLink[])
      .map((l) => l.ifname).filter((n) => n.startsWith(prefix));
  }
}

/** The MTU of the device carrying the default route, or undefined when there is none. */
export async function defaultRouteMtu(): Promise<number | undefined> {
  const r = await ipBatch(['route show default'], { json: true });
  const dev = ((parseJsonLines(r.stdout)[0] ?? []) as IpRoute[])[0]?.dev;
  if (!dev) return undefined;
  const l = await ipBatch([`link show dev ${dev}`], { json: true });
  return ((parseJsonLines(l.stdout)[0] ?? []) as IpLink[])[0]?.mtu;
}

/** Turns on IPv4 forwarding in the caller's network namespace (pods route through it). */
export async function enableIpv4Forwarding(): Promise<void> {
  const file = '/proc/sys/net/ipv4/ip_forward';
  if ((await readFile(file, 'utf8')).trim() !== '1') await writeFile(file, '1');
}
