/**
 * The in-memory datapath: holds the entries, records attach/detach, and judges packets
 * with the same per-packet algorithm as bpf/lib/verdict.h (docs/datapath.md), conntrack
 * included, so that everything above the kernel is testable unprivileged.
 *
 * It validates entries with the codec, exactly as the Linux datapath does, so a change
 * one rejects the other rejects too.
 */
import {
  checkPolicyEntry, encodeCidrKey, encodeEndpointValue, encodeIpcacheKey, parseCidrV4, parseIpv4,
  rangeToPrefixes, POLICY_PREFIX_FIXED, POLICY_PREFIX_PROTO,
} from '../codec.ts';
import { entryKey } from '../diff.ts';
import { Fanout } from '../fanout.ts';
import { MemoryServices, type SvcTuple, type Translation } from './services.ts';
import {
  PROTO_ANY, PROTO_ICMP, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
  type CidrEntry, type Datapath, type DatapathChange, type DatapathCounters, type DatapathState,
  type Direction, type DropReason, type EndpointEntry, type FlowEvent, type IpcacheEntry,
  type PolicyEntry, type ServiceCounters, type ServiceEntry,
} from '../types.ts';

const IDENTITY_ANY = 0;
const IDENTITY_HOST = 1;
const IDENTITY_WORLD = 2;
/** Policy peer "any pod": matches label identities (pkg/identity/reserved.ts). */
const IDENTITY_CLUSTER_POD = 8;
const isLabelIdentity = (id: number) => id >= 256 && id < 0x01000000;

export const ICMP_ECHOREPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_ECHO = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAMETERPROB = 12;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

/** Conntrack lifetimes, as in bpf/lib/conntrack.h (milliseconds). */
export const ctLifetimeMs = {
  tcp: 6 * 3600_000,
  closing: 10_000,
  udp: 120_000,
  icmp: 30_000,
} as const;

/** The addresses and ports of a packet (or of the packet an ICMP error quotes). */
export interface Tuple {
  srcIp: string;
  dstIp: string;
  protocol: number;
  /** TCP, UDP, SCTP ports; for ICMP echo both are the echo id. */
  srcPort?: number;
  dstPort?: number;
}

/** A packet crossing a pod's host-side veth, as the programs would parse it. */
export interface Packet extends Tuple {
  /** The host-side veth it crosses. */
  ifindex: number;
  /** From the pod's point of view: egress = leaving the pod (from_pod), ingress = to_pod. */
  direction: Direction;
  /** L3 protocol; default ipv4. */
  l3?: 'ipv4' | 'arp' | 'other';
  /** Headers the parser would reject (truncated, bad lengths). */
  malformed?: boolean;
  tcpFlags?: number;
  icmpType?: number;
  /** ICMP echo id (used as both ports). */
  icmpId?: number;
  /** For ICMP errors: the quoted packet. */
  inner?: Tuple;
  /** IPv4 fragment position: absent = a whole datagram. */
  fragment?: 'first' | 'later';
  /** IPv4 identification (fragments). */
  ipId?: number;
  /** Clock in ms for conntrack expiry; default Date.now(). */
  now?: number;
}

export interface Verdict {
  verdict: 'allowed' | 'dropped';
  reason?: DropReason;
  /** The rule that allowed a new flow; 0 for replies, node traffic, unenforced, drops. */
  ruleId: number;
  /** ipcache identity of the remote side (0 when not looked up). */
  peerIdentity: number;
  /** Which step decided. */
  by: 'arp' | 'parse' | 'no-endpoint' | 'unsupported-l3' | 'fragment' | 'reply' | 'host'
    | 'unenforced' | 'policy' | 'cidr' | 'default-deny';
}

interface CtValue { lastSeen: number; ruleId: number; closing: boolean }

function hasPorts(proto: number): boolean {
  return proto === PROTO_TCP || proto === PROTO_UDP || proto === PROTO_SCTP;
}

function lifetime(proto: number, closing: boolean): number {
  if (closing) return ctLifetimeMs.closing;
  if (proto === PROTO_TCP || proto === PROTO_SCTP) return ctLifetimeMs.tcp;
  if (proto === PROTO_ICMP) return ctLifetimeMs.icmp;
  return ctLifetimeMs.udp;
}

/** Longest-prefix match over IPv4 prefixes. */
function lpm<T>(entries: Iterable<[string, T]>, ip: number): T | undefined {
  let best: T | undefined;
  let bestLen = -1;
  for (const [cidr, v] of entries) {
    const { addr, len } = parseCidrV4(cidr);
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    if (((ip & mask) >>> 0) === addr && len > bestLen) {
      best = v;
      bestLen = len;
    }
  }
  return best;
}

export class MemoryDatapath implements Datapath {
  readonly endpoints = new Map<string, EndpointEntry>();
  readonly ipcache = new Map<string, IpcacheEntry>();
  readonly policy = new Map<string, PolicyEntry>();
  readonly cidrs = new Map<string, CidrEntry>();
  /** ifindexes with programs attached. */
  readonly attached = new Set<number>();
  /** Every attach/detach call, in order. */
  readonly attachLog: { op: 'attach' | 'detach'; ifindex: number }[] = [];
  readonly conntrack = new Map<string, CtValue>();
  private readonly frags = new Set<string>();
  private initialized = false;
  private readonly fanout = new Fanout<FlowEvent>();
  private readonly count: DatapathCounters = {
    allowed: { ingress: 0, egress: 0 }, dropped: { ingress: {}, egress: {} },
  };
  /** How many apply() calls were made (tests of the reconciler). */
  applyCount = 0;
  /** ClusterIP translation (bpf/lib/service.h), modelled. */
  readonly services = new MemoryServices();

  constructor(_opts: Record<string, unknown> = {}) {}

  async init(): Promise<void> {
    this.initialized = true;
  }

  get isInitialized(): boolean {
    return this.initialized;
  }

  async apply(change: DatapathChange): Promise<void> {
    // Validate everything first: a bad entry changes nothing.
    for (const e of change.upsert.endpoints) encodeEndpointValue(e);
    for (const e of [...change.upsert.ipcache, ...change.delete.ipcache]) encodeIpcacheKey(e.cidr);
    for (const e of [...change.upsert.cidrs, ...change.delete.cidrs]) encodeCidrKey(e);
    for (const e of [...change.upsert.policy, ...change.delete.policy]) checkPolicyEntry(e);
    this.applyCount++;
    const up = change.upsert;
    const del = change.delete;
    for (const e of up.ipcache) this.ipcache.set(entryKey.ipcache(e), { ...e });
    for (const e of up.cidrs) this.cidrs.set(entryKey.cidrs(e), { ...e });
    for (const e of up.policy) this.policy.set(entryKey.policy(e), { ...e });
    for (const e of up.endpoints) this.endpoints.set(entryKey.endpoints(e), { ...e });
    const upPolicy = new Set(up.policy.map(entryKey.policy));
    for (const e of del.endpoints) this.endpoints.delete(entryKey.endpoints(e));
    for (const e of del.policy) if (!upPolicy.has(entryKey.policy(e))) this.policy.delete(entryKey.policy(e));
    for (const e of del.cidrs) this.cidrs.delete(entryKey.cidrs(e));
    for (const e of del.ipcache) this.ipcache.delete(entryKey.ipcache(e));
  }

  async dump(): Promise<DatapathState> {
    return {
      endpoints: [...this.endpoints.values()].map((e) => ({ ...e })),
      ipcache: [...this.ipcache.values()].map((e) => ({ ...e })),
      policy: [...this.policy.values()].map((e) => ({ ...e })),
      cidrs: [...this.cidrs.values()].map((e) => ({ ...e })),
    };
  }

  async attach(ifindex: number): Promise<void> {
    this.attachLog.push({ op: 'attach', ifindex });
    this.attached.add(ifindex);
  }

  async detach(ifindex: number): Promise<void> {
    this.attachLog.push({ op: 'detach', ifindex });
    this.attached.delete(ifindex);
  }

  events(): AsyncIterable<FlowEvent> {
    return { [Symbol.asyncIterator]: () => this.fanout.subscribe() };
  }

  async counters(): Promise<DatapathCounters> {
    return structuredClone(this.count);
  }

  async close(): Promise<void> {
    this.fanout.end(true);
  }

  async applyServices(services: readonly ServiceEntry[]): Promise<void> {
    this.services.apply(services);
  }

  async dumpServices(): Promise<ServiceEntry[]> {
    return this.services.entries();
  }

  async serviceCounters(): Promise<ServiceCounters> {
    return { ...this.services.counters };
  }

  /**
   * A packet through the whole program of its direction, Service translation included
   * (from_pod: translate, verdict, record; to_pod: verdict, reverse). `packet` is what
   * leaves the program; `verdict` is undefined when translation alone decided (a reject,
   * a hairpin reply, an 'error': a rewrite the datapath cannot do, so the packet is
   * dropped). See bpf/from_pod.c, bpf/to_pod.c.
   */
  send(p: Packet): { verdict?: Verdict; translation: Translation; packet: Packet } {
    const now = p.now ?? Date.now();
    const hasL4 = (p.l3 ?? 'ipv4') === 'ipv4' && !p.malformed && p.fragment !== 'later'
      && p.srcPort !== undefined && p.dstPort !== undefined;
    const tuple = (q: Packet): SvcTuple => ({
      srcIp: q.srcIp, dstIp: q.dstIp, srcPort: q.srcPort!, dstPort: q.dstPort!, protocol: q.protocol, tcpFlags: q.tcpFlags,
      firstFragment: q.fragment === 'first', ipId: q.ipId ?? 0,
    });
    const laterFragment = (l3Ok: boolean) => l3Ok && p.fragment === 'later'
      && (p.protocol === PROTO_TCP || p.protocol === PROTO_UDP || p.protocol === PROTO_SCTP);
    const ipv4Ok = (p.l3 ?? 'ipv4') === 'ipv4' && !p.malformed;
    if (laterFragment(ipv4Ok)) {
      const reverse = p.direction === 'ingress';
      if (!reverse) {
        const addr = this.services.fragment(p.srcIp, p.dstIp, p.ipId ?? 0, p.protocol, false);
        const out = addr ? { ...p, dstIp: addr } : p;
        return { verdict: this.verdict(out), translation: { action: 'none' }, packet: out };
      }
      const v = this.verdict(p);
      const addr = v.verdict === 'allowed' ? this.services.fragment(p.srcIp, p.dstIp, p.ipId ?? 0, p.protocol, true) : undefined;
      return { verdict: v, translation: { action: 'none' }, packet: addr ? { ...p, srcIp: addr } : p };
    }
    if (p.direction === 'egress') {
      const x: Translation = hasL4 ? this.services.translate(tuple(p), now) : { action: 'none' };
      if (x.action === 'reject' || x.action === 'error') return { translation: x, packet: p };
      if (x.action === 'hairpin-reply') return { translation: x, packet: { ...p, ...x.packet } };
      const out = x.action === 'translated' ? { ...p, ...x.packet } : p;
      const v = this.verdict(out);
      this.services.egressDone(x, v.verdict === 'allowed', now);
      return { verdict: v, translation: x, packet: out };
    }
    const v = this.verdict(p);
    if (v.verdict === 'allowed' && p.protocol === PROTO_ICMP && p.inner?.srcPort !== undefined && p.inner.dstPort !== undefined
      && (p.icmpType === ICMP_DEST_UNREACH || p.icmpType === ICMP_TIME_EXCEEDED)) {
      const r = this.services.reverseIcmp(p.srcIp, tuple({ ...p, ...p.inner }), now);
      if (r) return { verdict: v, translation: { action: 'none' }, packet: { ...p, srcIp: r.srcIp, inner: { ...p.inner, dstIp: r.quoted.dstIp, dstPort: r.quoted.dstPort } } };
    }
    if (v.verdict !== 'allowed' || !hasL4) return { verdict: v, translation: { action: 'none' }, packet: p };
    const r = this.services.reverse(tuple(p), now);
    if (!r) return { translation: { action: 'error' }, packet: p };
    return { verdict: v, translation: { action: 'none' }, packet: { ...p, srcIp: r.srcIp, srcPort: r.srcPort } };
  }

  // ---- the per-packet algorithm ------------------------------------------------------------

  /**
   * Judges one packet as the program on `p.ifindex` would, updating conntrack, counters
   * and events. The interface need not be attached (the model judges what the program
   * would do if it were).
   */
  verdict(p: Packet): Verdict {
    const now = p.now ?? Date.now();
    const dir = p.direction;
    if ((p.l3 ?? 'ipv4') === 'arp') return { verdict: 'allowed', ruleId: 0, peerIdentity: 0, by: 'arp' };
    const ep = this.endpoints.get(String(p.ifindex));
    const t = this.normalize(p);
    if (!ep) return this.drop(0, p, t, 0, 'no-endpoint', 'no-endpoint', now);
    const enforced = dir === 'ingress' ? ep.ingressEnforced : ep.egressEnforced;
    if (p.malformed) return this.drop(ep.endpointId, p, t, 0, 'malformed', 'parse', now);
    if ((p.l3 ?? 'ipv4') === 'other') {
      if (enforced) return this.drop(ep.endpointId, p, t, 0, 'unsupported-l3', 'unsupported-l3', now);
      this.count.allowed[dir]++;
      return { verdict: 'allowed', ruleId: 0, peerIdentity: 0, by: 'unsupported-l3' };
    }
    const remote = dir === 'ingress' ? t.srcIp : t.dstIp;

    if (p.fragment === 'later') {
      if (!this.frags.has(this.fragKey(ep.endpointId, p))) {
        return this.drop(ep.endpointId, p, t, 0, 'fragment', 'fragment', now);
      }
      this.count.allowed[dir]++;
      return { verdict: 'allowed', ruleId: 0, peerIdentity: 0, by: 'fragment' };
    }

    if (this.isReply(ep.endpointId, p, t, now)) {
      if (p.fragment === 'first') this.frags.add(this.fragKey(ep.endpointId, p));
      this.count.allowed[dir]++;
      return { verdict: 'allowed', ruleId: 0, peerIdentity: 0, by: 'reply' };
    }

    const peer = this.identityOf(remote);
    if (dir === 'ingress' && peer === IDENTITY_HOST) return this.allow(ep.endpointId, p, t, peer, 0, 'host', now);
    if (!enforced) return this.allow(ep.endpointId, p, t, peer, 0, 'unenforced', now);

    // bpf/lib/policy.h: the first lookup that answers decides, unless its entry redirects
    // to the L7 proxy and a later lookup finds one that does not (that one wins).
    const peers = [peer, IDENTITY_ANY];
    // Pods also match "any pod" entries.
    if (isLabelIdentity(peer)) peers.push(IDENTITY_CLUSTER_POD);
    let rule: PolicyEntry | undefined;
    let by: Verdict['by'] = 'policy';
    const consider = (e: PolicyEntry | undefined, how: Verdict['by']) => {
      if (e && (!rule || (rule.proxyPort !== 0 && e.proxyPort === 0))) {
        rule = e;
        by = how;
      }
    };
    for (const id of peers) {
      consider(this.lookup(ep.endpointId, dir, id, t), 'policy');
      if (rule && rule.proxyPort === 0) break;
    }
    if (!rule || rule.proxyPort !== 0) {
      const ip = parseIpv4(remote);
      const own = [...this.cidrs.values()].filter((c) => c.endpointId === ep.endpointId && c.direction === dir);
      const cidrId = ip === undefined ? undefined : lpm(own.map((c) => [c.cidr, c.identity]), ip);
      if (cidrId) consider(this.lookup(ep.endpointId, dir, cidrId, t), 'cidr');
    }
    if (!rule) {
      // A flow the current policy no longer allows loses its reply path too.
      this.conntrack.delete(this.ctKey(ep.endpointId, dir, t));
      return this.drop(ep.endpointId, p, t, peer, 'policy-denied', 'default-deny', now);
    }
    return this.allow(ep.endpointId, p, t, peer, rule.ruleId, by, now);
  }

  /** ipcache identity of an address (miss = world). */
  identityOf(ip: string): number {
    const n = parseIpv4(ip);
    if (n === undefined) return IDENTITY_WORLD;
    return lpm([...this.ipcache.values()].map((e) => [e.cidr, e.identity]), n) ?? IDENTITY_WORLD;
  }

  /** ICMP echo: the id plays both ports, as in bpf/lib/parse.h. */
  private normalize(p: Packet): Tuple {
    if (p.protocol === PROTO_ICMP) {
      const echo = p.icmpType === ICMP_ECHO || p.icmpType === ICMP_ECHOREPLY;
      const id = echo ? (p.icmpId ?? 0) : 0;
      return { srcIp: p.srcIp, dstIp: p.dstIp, protocol: p.protocol, srcPort: id, dstPort: id };
    }
    const ports = hasPorts(p.protocol);
    return {
      srcIp: p.srcIp, dstIp: p.dstIp, protocol: p.protocol,
      srcPort: ports ? (p.srcPort ?? 0) : 0, dstPort: ports ? (p.dstPort ?? 0) : 0,
    };
  }

  /**
   * The entry the policy LPM would return for (ep, dir, peer, packet), or undefined:
   * the longest matching prefix (exact port > range block > all ports > any protocol).
   */
  private lookup(ep: number, dir: Direction, peer: number, t: Tuple): PolicyEntry | undefined {
    let best: PolicyEntry | undefined;
    let bestLen = -1;
    for (const e of this.policy.values()) {
      if (e.endpointId !== ep || e.direction !== dir || e.peer !== peer) continue;
      let len = -1;
      if (e.protocol === PROTO_ANY) {
        len = POLICY_PREFIX_FIXED;
      } else if (hasPorts(t.protocol) && e.protocol === t.protocol) {
        if (e.port === 0) {
          len = POLICY_PREFIX_PROTO;
        } else {
          const dport = t.dstPort ?? 0;
          const block = rangeToPrefixes(e.port, e.endPort)
            .find(([start, bits]) => dport >= start && dport < start + 2 ** (16 - bits));
          if (block) len = POLICY_PREFIX_PROTO + block[1];
        }
      }
      if (len >= bestLen && len >= 0) {
        best = e;
        bestLen = len;
      }
    }
    return best;
  }

  private ctKey(ep: number, dir: Direction, t: Tuple): string {
    return `${ep}/${dir}/${t.protocol}/${t.srcIp}:${t.srcPort ?? 0}>${t.dstIp}:${t.dstPort ?? 0}`;
  }

  private live(key: string, proto: number, now: number): CtValue | undefined {
    const v = this.conntrack.get(key);
    return v && now - v.lastSeen <= lifetime(proto, v.closing) ? v : undefined;
  }

  private isReply(ep: number, p: Packet, t: Tuple, now: number): boolean {
    const other: Direction = p.direction === 'ingress' ? 'egress' : 'ingress';
    const errTypes = [ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB];
    if (p.protocol === PROTO_ICMP && p.inner && errTypes.includes(p.icmpType ?? -1)) {
      const i = p.inner;
      const it: Tuple = {
        srcIp: i.srcIp, dstIp: i.dstIp, protocol: i.protocol,
        srcPort: i.srcPort ?? 0, dstPort: i.dstPort ?? 0,
      };
      const rev: Tuple = { srcIp: it.dstIp, dstIp: it.srcIp, protocol: it.protocol, srcPort: it.dstPort, dstPort: it.srcPort };
      return !!(this.live(this.ctKey(ep, other, it), it.protocol, now) ||
        this.live(this.ctKey(ep, p.direction, rev), it.protocol, now));
    }
    if (p.protocol === PROTO_ICMP && p.icmpType !== ICMP_ECHOREPLY) return false;
    const rev: Tuple = { srcIp: t.dstIp, dstIp: t.srcIp, protocol: t.protocol, srcPort: t.dstPort, dstPort: t.srcPort };
    const v = this.live(this.ctKey(ep, other, rev), t.protocol, now);
    if (!v) return false;
    v.lastSeen = now;
    if (this.closingFlag(p)) v.closing = true;
    return true;
  }

  private closingFlag(p: Packet): boolean {
    return p.protocol === PROTO_TCP && ((p.tcpFlags ?? 0) & (TCP_FIN | TCP_RST)) !== 0;
  }

  private fragKey(ep: number, p: Packet): string {
    return `${ep}/${p.direction}/${p.protocol}/${p.srcIp}>${p.dstIp}/${p.ipId ?? 0}`;
  }

  private allow(ep: number, p: Packet, t: Tuple, peer: number, ruleId: number, by: Verdict['by'], now: number): Verdict {
    const key = this.ctKey(ep, p.direction, t);
    const v = this.live(key, t.protocol, now);
    if (v) {
      v.lastSeen = now;
      v.ruleId = ruleId;
      if (this.closingFlag(p)) v.closing = true;
    } else {
      this.conntrack.set(key, { lastSeen: now, ruleId, closing: this.closingFlag(p) });
      this.emit(ep, p, t, peer, ruleId, 'allowed', undefined, now);
    }
    if (p.fragment === 'first') this.frags.add(this.fragKey(ep, p));
    this.count.allowed[p.direction]++;
    return { verdict: 'allowed', ruleId, peerIdentity: peer, by };
  }

  private drop(ep: number, p: Packet, t: Tuple, peer: number, reason: DropReason, by: Verdict['by'], now: number): Verdict {
    const d = this.count.dropped[p.direction];
    d[reason] = (d[reason] ?? 0) + 1;
    this.emit(ep, p, t, peer, 0, 'dropped', reason, now);
    return { verdict: 'dropped', reason, ruleId: 0, peerIdentity: peer, by };
  }

  private emit(ep: number, p: Packet, t: Tuple, peer: number, ruleId: number,
    verdict: FlowEvent['verdict'], reason: DropReason | undefined, now: number): void {
    if (this.fanout.size === 0) return;
    const e: FlowEvent = {
      time: now, verdict, direction: p.direction, endpointId: ep, srcIp: t.srcIp, dstIp: t.dstIp,
      srcPort: t.srcPort ?? 0, dstPort: t.dstPort ?? 0, protocol: t.protocol, peerIdentity: peer, ruleId,
    };
    if (reason) e.reason = reason;
    this.fanout.publish(e);
  }
}
