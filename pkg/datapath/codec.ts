/**
 * The byte layouts of bpf/lib/maps.h, mirrored: encoders and decoders for every map key
 * and value, with the C structs' field names. `layouts` declares every struct's size and
 * field offsets; test/unit/datapath/codec-drift.test.ts compiles maps.h and fails when
 * the C side says otherwise. Pure: no I/O.
 *
 * Conventions of the C side that the encoders reproduce:
 * - Addresses are 16 bytes, IPv4 as v4-mapped IPv6 (::ffff:a.b.c.d); an IPv4 /n is
 *   stored with prefixlen 96 + n (ipcache) or 64 + 96 + n (cidrs).
 * - `__be*` fields are big-endian, every other integer is little-endian (the host order
 *   of every architecture Palisade targets; the drift test runs on the host).
 * - A policy entry is one or more LPM keys (a port range is split into aligned
 *   prefixes); its value carries the original range so that a dump can rebuild it.
 */
import {
  PROTO_ANY, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
  type CidrEntry, type Direction, type DropReason, type EndpointEntry, type FlowEvent,
  type IpcacheEntry, type PolicyEntry,
} from './types.ts';

/** A bad entry handed to an encoder. Nothing was written. */
export class DatapathError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatapathError';
    this.code = code;
  }
}

export const ERR_INVALID_ENTRY = 'PAL_DATAPATH_INVALID_ENTRY';

function invalid(what: string): never {
  throw new DatapathError(ERR_INVALID_ENTRY, `invalid datapath entry: ${what}`);
}

// ---- constants of maps.h / drop.h (checked by the drift test) -------------------------

export const DIR_INGRESS = 0;
export const DIR_EGRESS = 1;
export const IPCACHE_V4_PREFIX = 96;
export const POLICY_PREFIX_FIXED = 72;
export const POLICY_PREFIX_PROTO = 80;
export const POLICY_PREFIX_FULL = 96;
export const CIDR_PREFIX_FIXED = 64;
export const VERDICT_ALLOWED = 0;
export const VERDICT_DROPPED = 1;
export const VERDICT_REDIRECTED = 2;

/** Drop reasons by their negative code in bpf/lib/drop.h. */
export const dropReasonCodes: Readonly<Record<DropReason, number>> = {
  'policy-denied': -1,
  'malformed': -2,
  'fragment': -3,
  'unsupported-l3': -4,
  'no-endpoint': -5,
};
export const DROP_REASON_COUNT = 5;
export const COUNTER_SLOTS = 1 + DROP_REASON_COUNT;

export function dropReasonOf(code: number): DropReason | undefined {
  for (const [name, c] of Object.entries(dropReasonCodes)) if (c === code) return name as DropReason;
  return undefined;
}

/** Map names as pinned under <bpffs-root>/palisade/maps. */
export const mapNames = {
  endpoints: 'pal_endpoints',
  ipcache: 'pal_ipcache',
  policy: 'pal_policy',
  cidrs: 'pal_cidrs',
  conntrack: 'pal_conntrack',
  fragments: 'pal_fragments',
  events: 'pal_events',
  counters: 'pal_counters',
  config: 'pal_config',
} as const;

// ---- layouts ----------------------------------------------------------------------------

export interface StructLayout {
  size: number;
  /** field name -> [offset, size in bytes] */
  fields: Readonly<Record<string, readonly [number, number]>>;
}

/** Every struct of bpf/lib/maps.h: size and field offsets. The one TS copy. */
export const layouts = {
  endpoint_key: { size: 4, fields: { ifindex: [0, 4] } },
  endpoint_value: {
    size: 16,
    fields: { endpointId: [0, 4], identity: [4, 4], ipv4: [8, 4], ingressEnforced: [12, 1],
      egressEnforced: [13, 1], pad: [14, 2] },
  },
  ipcache_key: { size: 20, fields: { prefixlen: [0, 4], addr: [4, 16] } },
  ipcache_value: { size: 4, fields: { identity: [0, 4] } },
  policy_key: {
    size: 16,
    fields: { prefixlen: [0, 4], endpointId: [4, 4], peer: [8, 4], direction: [12, 1],
      protocol: [13, 1], port: [14, 2] },
  },
  policy_value: {
    size: 12,
    fields: { ruleId: [0, 4], port: [4, 2], endPort: [6, 2], proxyPort: [8, 2], pad: [10, 2] },
  },
  cidr_key: {
    size: 28,
    fields: { prefixlen: [0, 4], endpointId: [4, 4], direction: [8, 1], pad: [9, 3], addr: [12, 16] },
  },
  cidr_value: { size: 4, fields: { identity: [0, 4] } },
  ct_key: {
    size: 20,
    fields: { endpointId: [0, 4], addrLo: [4, 4], addrHi: [8, 4], portLo: [12, 2], portHi: [14, 2],
      protocol: [16, 1], pad: [17, 3] },
  },
  ct_value: {
    size: 24,
    fields: { lastSeen: [0, 8], ruleId: [8, 4], generation: [12, 4], flags: [16, 1], direction: [17, 1],
      originLo: [18, 1], pad: [19, 5] },
  },
  config_value: { size: 8, fields: { policyGeneration: [0, 4], pad: [4, 4] } },
  frag_key: {
    size: 16,
    fields: { endpointId: [0, 4], saddr: [4, 4], daddr: [8, 4], id: [12, 2], direction: [14, 1],
      protocol: [15, 1] },
  },
  frag_value: { size: 8, fields: { sport: [0, 2], dport: [2, 2], ruleId: [4, 4] } },
  flow_event: {
    size: 40,
    fields: { time: [0, 8], endpointId: [8, 4], peerIdentity: [12, 4], ruleId: [16, 4],
      saddr: [20, 4], daddr: [24, 4], sport: [28, 2], dport: [30, 2], protocol: [32, 1],
      direction: [33, 1], verdict: [34, 1], reason: [35, 1], pad: [36, 4] },
  },
} as const satisfies Record<string, StructLayout>;

/** Integer constants of the C headers the codec relies on (checked by the drift test). */
export const cConstants: Readonly<Record<string, number>> = {
  DIR_INGRESS, DIR_EGRESS, IPCACHE_V4_PREFIX, POLICY_PREFIX_FIXED, POLICY_PREFIX_PROTO,
  POLICY_PREFIX_FULL, CIDR_PREFIX_FIXED, VERDICT_ALLOWED, VERDICT_DROPPED, VERDICT_REDIRECTED,
  COUNTER_SLOTS, DROP_REASON_COUNT,
  DROP_POLICY_DENIED: dropReasonCodes['policy-denied'],
  DROP_MALFORMED: dropReasonCodes.malformed,
  DROP_FRAGMENT: dropReasonCodes.fragment,
  DROP_UNSUPPORTED_L3: dropReasonCodes['unsupported-l3'],
  DROP_NO_ENDPOINT: dropReasonCodes['no-endpoint'],
  PROTO_ANY, PROTO_TCP, PROTO_UDP, PROTO_SCTP,
};

type Layout = StructLayout;
const off = (l: Layout, f: string): number => {
  const v = l.fields[f];
  if (!v) throw new Error(`codec: no field ${f}`);
  return v[0];
};

// ---- small helpers -------------------------------------------------------------------------

/** Dotted quad -> 32-bit unsigned number, or undefined. */
export function parseIpv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const b = Number(m[i]);
    if (b > 255) return undefined;
    n = n * 256 + b;
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** "a.b.c.d/n" -> address (host bits must be zero) and length. */
export function parseCidrV4(cidr: string): { addr: number; len: number } {
  const [a, l, extra] = cidr.split('/');
  const addr = a === undefined ? undefined : parseIpv4(a);
  const len = l === undefined || !/^\d{1,2}$/.test(l) ? NaN : Number(l);
  if (extra !== undefined || addr === undefined || !(len >= 0 && len <= 32)) {
    invalid(`cidr ${JSON.stringify(cidr)} is not an IPv4 prefix a.b.c.d/n`);
  }
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  if ((addr & ~mask) >>> 0 !== 0) invalid(`cidr ${cidr} has host bits set`);
  return { addr, len };
}

function writeV4Mapped(buf: Buffer, at: number, addr: number): void {
  buf.fill(0, at, at + 10);
  buf[at + 10] = 0xff;
  buf[at + 11] = 0xff;
  buf.writeUInt32BE(addr, at + 12);
}

function readV4Mapped(buf: Buffer, at: number): number | undefined {
  for (let i = 0; i < 10; i++) if (buf[at + i] !== 0) return undefined;
  if (buf[at + 10] !== 0xff || buf[at + 11] !== 0xff) return undefined;
  return buf.readUInt32BE(at + 12);
}

function dirCode(d: Direction): number {
  if (d === 'ingress') return DIR_INGRESS;
  if (d === 'egress') return DIR_EGRESS;
  return invalid(`direction ${JSON.stringify(d)}`);
}

export function directionOf(code: number): Direction {
  return code === DIR_EGRESS ? 'egress' : 'ingress';
}

function u32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) invalid(`${what} ${v} is not a u32`);
  return v;
}

function u16(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) invalid(`${what} ${v} is not a u16`);
  return v;
}

// ---- endpoints ---------------------------------------------------------------------------

export function encodeEndpointKey(ifindex: number): Buffer {
  const b = Buffer.alloc(layouts.endpoint_key.size);
  b.writeUInt32LE(u32(ifindex, 'ifindex'), 0);
  return b;
}

export function encodeEndpointValue(e: EndpointEntry): Buffer {
  const l = layouts.endpoint_value;
  const b = Buffer.alloc(l.size);
  const ip = parseIpv4(e.ipv4);
  if (ip === undefined) invalid(`endpoint ipv4 ${JSON.stringify(e.ipv4)}`);
  b.writeUInt32LE(u32(e.endpointId, 'endpointId'), off(l, 'endpointId'));
  b.writeUInt32LE(u32(e.identity, 'identity'), off(l, 'identity'));
  b.writeUInt32BE(ip, off(l, 'ipv4'));
  b[off(l, 'ingressEnforced')] = e.ingressEnforced ? 1 : 0;
  b[off(l, 'egressEnforced')] = e.egressEnforced ? 1 : 0;
  return b;
}

export function decodeEndpoint(key: Buffer, value: Buffer): EndpointEntry {
  const l = layouts.endpoint_value;
  return {
    ifindex: key.readUInt32LE(0),
    endpointId: value.readUInt32LE(off(l, 'endpointId')),
    identity: value.readUInt32LE(off(l, 'identity')),
    ipv4: formatIpv4(value.readUInt32BE(off(l, 'ipv4'))),
    ingressEnforced: value[off(l, 'ingressEnforced')] !== 0,
    egressEnforced: value[off(l, 'egressEnforced')] !== 0,
  };
}

// ---- ipcache -------------------------------------------------------------------------------

export function encodeIpcacheKey(cidr: string): Buffer {
  const { addr, len } = parseCidrV4(cidr);
  const b = Buffer.alloc(layouts.ipcache_key.size);
  b.writeUInt32LE(IPCACHE_V4_PREFIX + len, 0);
  writeV4Mapped(b, off(layouts.ipcache_key, 'addr'), addr);
  return b;
}

export function encodeIdentityValue(identity: number): Buffer {
  const b = Buffer.alloc(layouts.ipcache_value.size);
  b.writeUInt32LE(u32(identity, 'identity'), 0);
  return b;
}

/** undefined for a key that is not an IPv4 entry (not written by Palisade). */
export function decodeIpcache(key: Buffer, value: Buffer): IpcacheEntry | undefined {
  const plen = key.readUInt32LE(0);
  const addr = readV4Mapped(key, off(layouts.ipcache_key, 'addr'));
  if (addr === undefined || plen < IPCACHE_V4_PREFIX || plen > IPCACHE_V4_PREFIX + 32) return undefined;
  return { cidr: `${formatIpv4(addr)}/${plen - IPCACHE_V4_PREFIX}`, identity: value.readUInt32LE(0) };
}

// ---- cidrs ---------------------------------------------------------------------------------

export function encodeCidrKey(e: Pick<CidrEntry, 'endpointId' | 'direction' | 'cidr'>): Buffer {
  const l = layouts.cidr_key;
  const { addr, len } = parseCidrV4(e.cidr);
  const b = Buffer.alloc(l.size);
  b.writeUInt32LE(CIDR_PREFIX_FIXED + IPCACHE_V4_PREFIX + len, 0);
  b.writeUInt32LE(u32(e.endpointId, 'endpointId'), off(l, 'endpointId'));
  b[off(l, 'direction')] = dirCode(e.direction);
  writeV4Mapped(b, off(l, 'addr'), addr);
  return b;
}

export function decodeCidr(key: Buffer, value: Buffer): CidrEntry | undefined {
  const l = layouts.cidr_key;
  const plen = key.readUInt32LE(0) - CIDR_PREFIX_FIXED - IPCACHE_V4_PREFIX;
  const addr = readV4Mapped(key, off(l, 'addr'));
  if (addr === undefined || plen < 0 || plen > 32) return undefined;
  return {
    endpointId: key.readUInt32LE(off(l, 'endpointId')),
    direction: directionOf(key[off(l, 'direction')]!),
    cidr: `${formatIpv4(addr)}/${plen}`,
    identity: value.readUInt32LE(0),
  };
}

// ---- policy ----------------------------------------------------------------------------------

/** A port range as the aligned prefixes that cover it: [first port, prefix bits]. */
export function rangeToPrefixes(lo: number, hi: number): [number, number][] {
  const out: [number, number][] = [];
  let cur = lo;
  while (cur <= hi) {
    // The largest aligned block starting at `cur` that stays within `hi`.
    let bits = 0;
    while (bits < 16) {
      const size = 1 << (bits + 1);
      if (cur % size !== 0 || cur + size - 1 > hi) break;
      bits++;
    }
    out.push([cur, 16 - bits]);
    cur += 1 << bits;
  }
  return out;
}

/** Validates a policy entry; returns it normalized (a protocol-any entry has no ports). */
export function checkPolicyEntry(e: PolicyEntry): void {
  u32(e.endpointId, 'endpointId');
  dirCode(e.direction);
  u32(e.peer, 'peer');
  u32(e.ruleId, 'ruleId');
  u16(e.proxyPort, 'proxyPort');
  u16(e.port, 'port');
  u16(e.endPort, 'endPort');
  if (e.protocol === PROTO_ANY) {
    if (e.port !== 0 || e.endPort !== 0) invalid('protocol any (0) carries no ports');
    return;
  }
  if (e.protocol !== PROTO_TCP && e.protocol !== PROTO_UDP && e.protocol !== PROTO_SCTP) {
    // Other protocols have no ports; only protocol-any entries match them (NETPOL 20).
    invalid(`protocol ${e.protocol}: only 0 (any), 6, 17, 132 have policy entries`);
  }
  if (e.port === 0 && e.endPort !== 0) invalid('endPort without port');
  if (e.port !== 0 && e.endPort < e.port) invalid(`endPort ${e.endPort} below port ${e.port}`);
}

/** The LPM keys of one policy entry (one for exact/any, a few for a range). */
export function encodePolicyKeys(e: PolicyEntry): Buffer[] {
  checkPolicyEntry(e);
  const base = (plen: number, port: number): Buffer => {
    const l = layouts.policy_key;
    const b = Buffer.alloc(l.size);
    b.writeUInt32LE(plen, 0);
    b.writeUInt32LE(e.endpointId, off(l, 'endpointId'));
    b.writeUInt32LE(e.peer, off(l, 'peer'));
    b[off(l, 'direction')] = dirCode(e.direction);
    b[off(l, 'protocol')] = e.protocol;
    b.writeUInt16BE(port, off(l, 'port'));
    return b;
  };
  if (e.protocol === PROTO_ANY) return [base(POLICY_PREFIX_FIXED, 0)];
  if (e.port === 0) return [base(POLICY_PREFIX_PROTO, 0)];
  return rangeToPrefixes(e.port, e.endPort).map(([p, bits]) => base(POLICY_PREFIX_PROTO + bits, p));
}

export function encodePolicyValue(e: PolicyEntry): Buffer {
  const l = layouts.policy_value;
  const b = Buffer.alloc(l.size);
  b.writeUInt32LE(e.ruleId, off(l, 'ruleId'));
  b.writeUInt16LE(e.port, off(l, 'port'));
  b.writeUInt16LE(e.endPort, off(l, 'endPort'));
  b.writeUInt16LE(e.proxyPort, off(l, 'proxyPort'));
  return b;
}

/** The entry a (key, value) pair belongs to; its range comes from the value. */
export function decodePolicy(key: Buffer, value: Buffer): PolicyEntry {
  const k = layouts.policy_key;
  const v = layouts.policy_value;
  return {
    endpointId: key.readUInt32LE(off(k, 'endpointId')),
    direction: directionOf(key[off(k, 'direction')]!),
    peer: key.readUInt32LE(off(k, 'peer')),
    protocol: key[off(k, 'protocol')]!,
    port: value.readUInt16LE(off(v, 'port')),
    endPort: value.readUInt16LE(off(v, 'endPort')),
    ruleId: value.readUInt32LE(off(v, 'ruleId')),
    proxyPort: value.readUInt16LE(off(v, 'proxyPort')),
  };
}

// ---- conntrack (read-only, for inspection and tests) ----------------------------------------

/** A conntrack entry, with the flow in the direction it was opened. */
export interface CtEntry {
  endpointId: number;
  /** The endpoint's direction the flow was opened in. */
  direction: Direction;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  protocol: number;
  /** Kernel monotonic (coarse) nanoseconds. */
  lastSeen: bigint;
  ruleId: number;
  /** Policy generation the verdict was cached under. */
  generation: number;
  flags: number;
}

export function decodeCt(key: Buffer, value: Buffer): CtEntry {
  const k = layouts.ct_key;
  const v = layouts.ct_value;
  const lo = { addr: key.readUInt32BE(off(k, 'addrLo')), port: key.readUInt16BE(off(k, 'portLo')) };
  const hi = { addr: key.readUInt32BE(off(k, 'addrHi')), port: key.readUInt16BE(off(k, 'portHi')) };
  const [src, dst] = value[off(v, 'originLo')] ? [lo, hi] : [hi, lo];
  return {
    endpointId: key.readUInt32LE(off(k, 'endpointId')),
    direction: directionOf(value[off(v, 'direction')]!),
    saddr: formatIpv4(src.addr),
    daddr: formatIpv4(dst.addr),
    sport: src.port,
    dport: dst.port,
    protocol: key[off(k, 'protocol')]!,
    lastSeen: value.readBigUInt64LE(off(v, 'lastSeen')),
    ruleId: value.readUInt32LE(off(v, 'ruleId')),
    generation: value.readUInt32LE(off(v, 'generation')),
    flags: value[off(v, 'flags')]!,
  };
}

// ---- events and counters --------------------------------------------------------------------

/**
 * A flow_event record. `monoToEpochMs` converts the kernel's monotonic nanoseconds to
 * milliseconds since the epoch.
 */
export function decodeFlowEvent(buf: Buffer, monoToEpochMs: (ns: bigint) => number): FlowEvent {
  const l = layouts.flow_event;
  const verdictCode = buf[off(l, 'verdict')]!;
  const reasonCode = buf.readInt8(off(l, 'reason'));
  const ev: FlowEvent = {
    time: monoToEpochMs(buf.readBigUInt64LE(off(l, 'time'))),
    verdict: verdictCode === VERDICT_DROPPED ? 'dropped'
      : verdictCode === VERDICT_REDIRECTED ? 'redirected' : 'allowed',
    direction: directionOf(buf[off(l, 'direction')]!),
    endpointId: buf.readUInt32LE(off(l, 'endpointId')),
    srcIp: formatIpv4(buf.readUInt32BE(off(l, 'saddr'))),
    dstIp: formatIpv4(buf.readUInt32BE(off(l, 'daddr'))),
    srcPort: buf.readUInt16BE(off(l, 'sport')),
    dstPort: buf.readUInt16BE(off(l, 'dport')),
    protocol: buf[off(l, 'protocol')]!,
    peerIdentity: buf.readUInt32LE(off(l, 'peerIdentity')),
    ruleId: buf.readUInt32LE(off(l, 'ruleId')),
  };
  const reason = dropReasonOf(reasonCode);
  if (reason) ev.reason = reason;
  return ev;
}

/** The config map's single value. */
export function encodeConfig(policyGeneration: number): Buffer {
  const b = Buffer.alloc(layouts.config_value.size);
  b.writeUInt32LE(policyGeneration >>> 0, off(layouts.config_value, 'policyGeneration'));
  return b;
}

export function decodeConfig(value: Buffer): { policyGeneration: number } {
  return { policyGeneration: value.readUInt32LE(off(layouts.config_value, 'policyGeneration')) };
}

/** Index in the counters array of (direction, slot); slot 0 = allowed, -code = a drop. */
export function counterIndex(direction: Direction, reason?: DropReason): number {
  return (direction === 'egress' ? COUNTER_SLOTS : 0) + (reason ? -dropReasonCodes[reason] : 0);
}
