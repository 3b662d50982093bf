/**
 * IPv4 addresses and prefixes as unsigned 32-bit integers. Parsing is strict: dotted quads
 * of decimal octets without leading zeros (Go's net.ParseIP has rejected them since 1.17,
 * because "010" is octal to some parsers and decimal to others).
 */

export interface Prefix {
  /** Network address with the host bits cleared, as an unsigned 32-bit integer. */
  addr: number;
  /** Prefix length, 0..32. */
  len: number;
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** Parses "10.1.2.3"; returns undefined when it is not a canonical IPv4 address. */
export function parseIpv4(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!OCTET.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function isIpv6(s: string): boolean {
  return s.includes(':');
}

export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The netmask of a prefix length as an unsigned 32-bit integer. */
export function maskOf(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

export interface ParsedCidr {
  prefix: Prefix;
  /** True when the text had host bits set ("10.0.0.1/24"), which were cleared. */
  hostBits: boolean;
}

/**
 * Parses "10.0.0.0/8". Host bits are cleared and reported rather than rejected: the API
 * server accepts "10.0.0.1/24" in ipBlock.cidr (Go's net.ParseCIDR masks it), so the
 * compiler must give it the meaning Kubernetes gives it, 10.0.0.0/24.
 */
export function parseCidr(s: string): ParsedCidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIpv4(s.slice(0, slash));
  const lenText = s.slice(slash + 1);
  if (ip === undefined || !/^(0|[1-9][0-9]?)$/.test(lenText)) return undefined;
  const len = Number(lenText);
  if (len > 32) return undefined;
  const addr = (ip & maskOf(len)) >>> 0;
  return { prefix: { addr, len }, hostBits: addr !== ip };
}

export function formatPrefix(p: Prefix): string {
  return `${formatIpv4(p.addr)}/${p.len}`;
}

/** True when `outer` contains `inner` (equal prefixes contain each other). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  return outer.len <= inner.len && ((inner.addr & maskOf(outer.len)) >>> 0) === outer.addr;
}

export function prefixContainsAddr(p: Prefix, addr: number): boolean {
  return ((addr & maskOf(p.len)) >>> 0) === p.addr;
}

/** Last address of a prefix. */
export function prefixLast(p: Prefix): number {
  return (p.addr | (~maskOf(p.len) >>> 0)) >>> 0;
}

/**
 * A longest-prefix-match table, one hash map per prefix length: a lookup is at most 33
 * map probes, which is what an LPM trie costs too and is simpler to get right.
 */
export class LpmTable<V> {
  readonly #byLen = new Map<number, Map<number, V>>();
  #lens: number[] = [];

  set(p: Prefix, v: V): void {
    let m = this.#byLen.get(p.len);
    if (!m) {
      m = new Map();
      this.#byLen.set(p.len, m);
      this.#lens = [...this.#byLen.keys()].sort((a, b) => b - a);
    }
    m.set(p.addr, v);
  }

  /** The value of the longest prefix containing `addr`, with that prefix. */
  lookup(addr: number): { prefix: Prefix; value: V } | undefined {
    for (const len of this.#lens) {
      const net = (addr & maskOf(len)) >>> 0;
      const v = this.#byLen.get(len)!.get(net);
      if (v !== undefined) return { prefix: { addr: net, len }, value: v };
    }
    return undefined;
  }
}
