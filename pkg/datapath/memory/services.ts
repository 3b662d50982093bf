/**
 * The in-memory model of bpf/lib/service.h: the same frontends (validated and planned by
 * the same ServiceTable as the Linux datapath), the same flow hash and slot choice, the
 * same affinity, NAT lifetimes, hairpin and reject rules, so that everything above the
 * kernel can be tested unprivileged and the kernel can be cross-checked against it
 * (test/system/service/prog-run.test.ts).
 *
 * The model works on tuples: `translate` is svc_translate (before the egress verdict),
 * `egressDone` is svc_egress_done (after it), `reverse` is svc_reverse (after the ingress
 * verdict). MemoryDatapath.send() chains them around its verdict.
 */
import {
  SVC_HAIRPIN_IPV4, ServiceTable, frontendKey, serviceFlowHash,
} from '../service-codec.ts';
import {
  PROTO_SCTP, PROTO_TCP, PROTO_UDP, type BackendEntry, type ServiceCounters, type ServiceEntry,
} from '../types.ts';

/** NAT lifetimes as bpf/lib/service.h (milliseconds). */
export const natLifetimeMs = { tcp: 6 * 3600_000, closing: 10_000, udp: 120_000 } as const;
const REFRESH_MS = 1000;
const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_ACK = 0x10;

export interface SvcTuple {
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  protocol: number;
  tcpFlags?: number;
  /** A first fragment (offset 0, more follow): its translation is kept for the later ones. */
  firstFragment?: boolean;
  ipId?: number;
}

interface NatValue { ip: string; port: number; lastSeen: number; reverse: boolean; hairpin: boolean; closing: boolean }

/** What svc_translate did. */
export type Translation =
  | { action: 'none' }
  /** No ready backend: ICMP port unreachable from the ClusterIP back to the client. */
  | { action: 'reject' }
  /** A hairpin reply, rewritten and handed back into the pod (no verdict). */
  | { action: 'hairpin-reply'; packet: SvcTuple }
  /** A rewrite the datapath does not do (sctpFragmentPortRewrite): dropped, counted in errors. */
  | { action: 'error' }
  | {
    action: 'translated'; packet: SvcTuple; orig: SvcTuple; backend: BackendEntry;
    hairpin: boolean; record: 'none' | 'new'; closing: boolean;
  };

const natKey = (t: Pick<SvcTuple, 'srcIp' | 'dstIp' | 'srcPort' | 'dstPort' | 'protocol'>): string =>
  `${t.srcIp}:${t.srcPort}>${t.dstIp}:${t.dstPort}/${t.protocol}`;

function lifetime(protocol: number, closing: boolean): number {
  if (closing) return natLifetimeMs.closing;
  return protocol === PROTO_UDP ? natLifetimeMs.udp : natLifetimeMs.tcp;
}

/**
 * An SCTP first fragment whose port would change: its CRC32c covers the whole datagram,
 * whose length it does not carry, so the datapath cannot update it and drops the packet
 * (bpf/lib/service.h svc_sctp_port_csum).
 */
export function sctpFragmentPortRewrite(t: SvcTuple, from: number, to: number): boolean {
  return t.protocol === PROTO_SCTP && t.firstFragment === true && from !== to;
}

export class MemoryServices {
  readonly #table = new ServiceTable();
  readonly frontends = new Map<string, ServiceEntry>();
  readonly nat = new Map<string, NatValue>();
  /** (frontend, client) -> backend, lastUsed. */
  readonly affinity = new Map<string, { backend: BackendEntry; lastUsed: number }>();
  /** svc_frag_*: (saddr, daddr, IP id, protocol, reverse) -> the address later fragments get. */
  readonly frags = new Map<string, string>();
  readonly counters: ServiceCounters = { translated: 0, newFlows: 0, reversed: 0, noBackend: 0, hairpin: 0, errors: 0 };

  /** As LinuxDatapath.applyServices: validated by the same plan, then adopted. */
  apply(desired: readonly ServiceEntry[]): void {
    const { commit } = this.#table.plan(desired);
    commit();
    this.frontends.clear();
    for (const e of desired) this.frontends.set(frontendKey(e), structuredClone(e));
  }

  entries(): ServiceEntry[] {
    return this.#table.entries();
  }

  #pick(fe: ServiceEntry, t: SvcTuple, now: number): BackendEntry {
    const akey = `${frontendKey(fe)}|${t.srcIp}`;
    if (fe.affinityTimeoutSec > 0) {
      const a = this.affinity.get(akey);
      if (a && now - a.lastUsed <= fe.affinityTimeoutSec * 1000
        && fe.backends.some((b) => b.ip === a.backend.ip && b.port === a.backend.port)) {
        a.lastUsed = now;
        return a.backend;
      }
    }
    const h = serviceFlowHash(t.srcIp, t.dstIp, t.srcPort, t.dstPort, t.protocol);
    const b = fe.backends[h % fe.backends.length]!;
    if (fe.affinityTimeoutSec > 0) this.affinity.set(akey, { backend: b, lastUsed: now });
    return b;
  }

  /** svc_translate: a packet leaving a pod, before its egress verdict. */
  translate(t: SvcTuple, now: number): Translation {
    if (t.protocol !== PROTO_TCP && t.protocol !== PROTO_UDP && t.protocol !== PROTO_SCTP) return { action: 'none' };
    if (t.dstIp === SVC_HAIRPIN_IPV4) {
      const v = this.nat.get(natKey(t));
      if (!v || !v.reverse || !v.hairpin) return { action: 'none' };
      if (sctpFragmentPortRewrite(t, t.srcPort, v.port)) {
        this.counters.errors++;
        return { action: 'error' };
      }
      if (t.protocol === PROTO_TCP && (t.tcpFlags ?? 0) & (TCP_FIN | TCP_RST)) v.closing = true;
      this.counters.reversed++;
      this.counters.hairpin++;
      return { action: 'hairpin-reply', packet: { ...t, srcIp: v.ip, srcPort: v.port, dstIp: t.srcIp } };
    }
    const fe = this.frontends.get(`${t.dstIp}:${t.dstPort}/${t.protocol}`);
    if (!fe) {
      this.#forgetStale(t);
      return { action: 'none' };
    }
    if (fe.backends.length === 0) {
      this.counters.noBackend++;
      return { action: 'reject' };
    }
    const flags = t.protocol === PROTO_TCP ? t.tcpFlags ?? 0 : 0;
    const closing = (flags & (TCP_FIN | TCP_RST)) !== 0;
    const nv = this.nat.get(natKey(t));
    let backend: BackendEntry;
    let hairpin: boolean;
    let record: 'none' | 'new';
    if (nv && !nv.reverse && now - nv.lastSeen <= lifetime(t.protocol, nv.closing)
      && !(nv.closing && (flags & (TCP_SYN | TCP_ACK)) === TCP_SYN)) {
      backend = { ip: nv.ip, port: nv.port };
      hairpin = nv.hairpin;
      record = 'none';
      if (now - nv.lastSeen > REFRESH_MS || (closing && !nv.closing)) {
        // svc_refresh: both entries, in place; the reverse one again if it was lost.
        nv.lastSeen = now;
        nv.closing ||= closing;
        const rkey = this.#reverseKey(t, backend, hairpin);
        const rv = this.nat.get(rkey);
        if (rv) {
          rv.lastSeen = now;
          rv.closing ||= closing;
        } else {
          this.nat.set(rkey, { ip: t.dstIp, port: t.dstPort, lastSeen: now, reverse: true, hairpin, closing: nv.closing });
        }
      }
    } else {
      backend = this.#pick(fe, t, now);
      hairpin = backend.ip === t.srcIp;
      record = 'new';
    }
    if (sctpFragmentPortRewrite(t, t.dstPort, backend.port)) {
      this.counters.errors++;
      return { action: 'error' };
    }
    const packet: SvcTuple = { ...t, dstIp: backend.ip, dstPort: backend.port };
    if (hairpin) packet.srcIp = SVC_HAIRPIN_IPV4;
    return { action: 'translated', packet, orig: { ...t }, backend, hairpin, record, closing };
  }

  #reverseKey(orig: SvcTuple, backend: BackendEntry, hairpin: boolean): string {
    return natKey({
      srcIp: backend.ip, srcPort: backend.port, dstIp: hairpin ? SVC_HAIRPIN_IPV4 : orig.srcIp,
      dstPort: orig.srcPort, protocol: orig.protocol,
    });
  }

  /** svc_forget_stale: a direct flow on a tuple a finished translated flow still claims. */
  #forgetStale(t: SvcTuple): void {
    if (t.protocol === PROTO_TCP && ((t.tcpFlags ?? 0) & (TCP_SYN | TCP_ACK)) !== TCP_SYN) return;
    const rkey = natKey({ srcIp: t.dstIp, srcPort: t.dstPort, dstIp: t.srcIp, dstPort: t.srcPort, protocol: t.protocol });
    const v = this.nat.get(rkey);
    if (!v || !v.reverse || v.hairpin) return;
    this.nat.delete(natKey({ srcIp: t.srcIp, srcPort: t.srcPort, dstIp: v.ip, dstPort: v.port, protocol: t.protocol }));
    this.nat.delete(rkey);
  }

  /**
   * svc_frag_translate: a later fragment (no ports). Returns the address its first
   * fragment's translation gave (destination forward, source reverse), or undefined.
   */
  fragment(srcIp: string, dstIp: string, ipId: number, protocol: number, reverse: boolean): string | undefined {
    const addr = this.frags.get(`${srcIp}>${dstIp}#${ipId}/${protocol}/${reverse ? 1 : 0}`);
    if (addr !== undefined) {
      if (reverse) this.counters.reversed++;
      else this.counters.translated++;
    }
    return addr;
  }

  /** svc_egress_done: after the egress verdict on the translated packet. */
  egressDone(x: Translation, allowed: boolean, now: number): void {
    if (x.action !== 'translated' || !allowed) return;
    if (x.record === 'new') {
      this.nat.set(this.#reverseKey(x.orig, x.backend, x.hairpin),
        { ip: x.orig.dstIp, port: x.orig.dstPort, lastSeen: now, reverse: true, hairpin: x.hairpin, closing: x.closing });
      this.nat.set(natKey(x.orig), { ip: x.backend.ip, port: x.backend.port, lastSeen: now, reverse: false, hairpin: x.hairpin, closing: x.closing });
      this.counters.newFlows++;
    }
    if (x.orig.firstFragment && !x.hairpin) {
      this.frags.set(`${x.orig.srcIp}>${x.orig.dstIp}#${x.orig.ipId ?? 0}/${x.orig.protocol}/0`, x.backend.ip);
    }
    this.counters.translated++;
    if (x.hairpin) this.counters.hairpin++;
  }

  /**
   * svc_reverse_icmp: an ICMP error entering a pod that quotes a translated flow's packet
   * (`quoted`, as the client's program sent it). Returns the quote with the ClusterIP
   * and Service port back, and the error's new source (the ClusterIP when the backend
   * itself sent it), or undefined when it is about no translated flow.
   */
  reverseIcmp(errorSrc: string, quoted: SvcTuple, now: number): { srcIp: string; quoted: SvcTuple } | undefined {
    void now;
    if (quoted.protocol !== PROTO_TCP && quoted.protocol !== PROTO_UDP) return undefined;
    const v = this.nat.get(natKey({ srcIp: quoted.dstIp, srcPort: quoted.dstPort, dstIp: quoted.srcIp, dstPort: quoted.srcPort, protocol: quoted.protocol }));
    if (!v || !v.reverse || v.hairpin) return undefined;
    this.counters.reversed++;
    return { srcIp: errorSrc === quoted.dstIp ? v.ip : errorSrc, quoted: { ...quoted, dstIp: v.ip, dstPort: v.port } };
  }

  /**
   * svc_reverse: a packet entering a pod, after an ingress verdict that allowed it.
   * Undefined when the datapath drops it instead (sctpFragmentPortRewrite).
   */
  reverse(t: SvcTuple, now: number): SvcTuple | undefined {
    const v = this.nat.get(natKey(t));
    if (!v || !v.reverse || v.hairpin || now - v.lastSeen > lifetime(t.protocol, v.closing)) return t;
    if (sctpFragmentPortRewrite(t, t.srcPort, v.port)) {
      this.counters.errors++;
      return undefined;
    }
    if (t.protocol === PROTO_TCP && (t.tcpFlags ?? 0) & (TCP_FIN | TCP_RST) && !v.closing) {
      v.closing = true;
      const f = this.nat.get(natKey({ srcIp: t.dstIp, srcPort: t.dstPort, dstIp: v.ip, dstPort: v.port, protocol: t.protocol }));
      if (f) f.closing = true;
    }
    this.counters.reversed++;
    if (t.firstFragment) this.frags.set(`${t.srcIp}>${t.dstIp}#${t.ipId ?? 0}/${t.protocol}/1`, v.ip);
    return { ...t, srcIp: v.ip, srcPort: v.port };
  }
}
