/** IPv4 prefixes as integers. Pure. */

export interface Ipv4Prefix {
  /** Network address as an unsigned 32-bit integer. */
  network: number;
  bits: number;
}

export function parseIpv4(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) throw new Error(`invalid IPv4 address "${s}"`);
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) throw new Error(`invalid IPv4 address "${s}"`);
  return (((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!) >>> 0;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses "a.b.c.d/n"; the address must be the network address. */
export function parseCidr(s: string): Ipv4Prefix {
  const [addr, len, extra] = s.split('/');
  if (addr === undefined || len === undefined || extra !== undefined || !/^\d{1,2}$/.test(len)) {
    throw new Error(`invalid CIDR "${s}"`);
  }
  const bits = Number(len);
  if (bits > 32) throw new Error(`invalid CIDR "${s}": prefix length > 32`);
  const ip = parseIpv4(addr);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  if ((ip & mask) >>> 0 !== ip) throw new Error(`invalid CIDR "${s}": host bits set`);
  return { network: ip, bits };
}

export function formatCidr(p: Ipv4Prefix): string {
  return `${formatIpv4(p.network)}/${p.bits}`;
}

export function broadcast(p: Ipv4Prefix): number {
  return (p.network + 2 ** (32 - p.bits) - 1) >>> 0;
}

export function contains(p: Ipv4Prefix, ip: number): boolean {
  return ip >= p.network && ip <= broadcast(p);
}
