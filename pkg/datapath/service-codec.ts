/**
 * The byte layouts of bpf/lib/service.h, mirrored (as codec.ts mirrors maps.h), and the
 * plan that turns a desired set of ServiceEntry into map writes. Pure: no I/O.
 *
 * test/unit/service/service-codec-drift.test.ts compiles service.h and fails when a size,
 * an offset or a constant differs from `serviceLayouts` / `serviceConstants`.
 *
 * Ids: every frontend gets a service id (the affinity table's key) and every backend of a
 * frontend a backend id. Both are allocated here, kept while the frontend (or the backend
 * in that frontend) stays, and never reused while the table lives; a table rebuilt from
 * the maps after a restart continues above the highest id found. So a stale id (an
 * affinity entry of a removed backend) misses in the kernel instead of naming another
 * backend.
 */
import { DatapathError, ERR_INVALID_ENTRY as ERR_INVALID, formatIpv4, parseIpv4, type StructLayout } from './codec.ts';
import {
  PROTO_SCTP, PROTO_TCP, PROTO_UDP, type BackendEntry, type ServiceCounters, type ServiceEntry,
} from './types.ts';

export const SVC_BACKENDS_PER_FRONTEND_MAX = 4096;
/** Kubernetes' own bound on sessionAffinityConfig.clientIP.timeoutSeconds. */
export const SVC_AFFINITY_TIMEOUT_MAX = 86400;
export const SVC_F_AFFINITY = 1;
export const SVC_NAT_REVERSE = 1;
export const SVC_NAT_HAIRPIN = 2;
export const SVC_NAT_CLOSING = 4;
/** 169.254.42.1: the source a pod sees on its hairpin flows. */
export const SVC_HAIRPIN_IPV4 = '169.254.42.1';
export const SVC_COUNTERS_MAX = 6;

export const serviceMapNames = {
  frontends: 'pal_svc_frontends',
  backends: 'pal_svc_backends',
  nat: 'pal_svc_nat',
  affinity: 'pal_svc_affinity',
  frags: 'pal_svc_frags',
  counters: 'pal_svc_counters',
} as const;

export const serviceLayouts = {
  svc_key: {
    size: 12,
    fields: { addr: [0, 4], port: [4, 2], protocol: [6, 1], pad: [7, 1], slot: [8, 2], pad2: [10, 2] },
  },
  svc_value: {
    size: 16,
    fields: { backendId: [0, 4], serviceId: [4, 4], affinityTimeout: [8, 4], count: [12, 2], flags: [14, 2] },
  },
  svc_backend: { size: 8, fields: { addr: [0, 4], port: [4, 2], protocol: [6, 1], pad: [7, 1] } },
  svc_nat_key: {
    size: 16,
    fields: { saddr: [0, 4], daddr: [4, 4], sport: [8, 2], dport: [10, 2], protocol: [12, 1], pad: [13, 3] },
  },
  svc_nat_value: {
    size: 16,
    fields: { lastSeen: [0, 8], addr: [8, 4], port: [12, 2], flags: [14, 1], pad: [15, 1] },
  },
  svc_affinity_key: { size: 8, fields: { serviceId: [0, 4], client: [4, 4] } },
  svc_affinity_value: { size: 16, fields: { lastUsed: [0, 8], backendId: [8, 4], pad: [12, 4] } },
  svc_frag_key: {
    size: 12,
    fields: { saddr: [0, 4], daddr: [4, 4], id: [8, 2], protocol: [10, 1], reverse: [11, 1] },
  },
  svc_frag_value: { size: 8, fields: { addr: [0, 4], pad: [4, 4] } },
} as const satisfies Record<string, StructLayout>;

/** Constants of service.h the codec relies on (checked by the drift test). */
export const serviceConstants: Readonly<Record<string, number>> = {
  SVC_BACKENDS_PER_FRONTEND_MAX, SVC_F_AFFINITY, SVC_NAT_REVERSE, SVC_NAT_HAIRPIN,
  SVC_NAT_CLOSING, SVC_COUNTERS_MAX,
  SVC_HAIRPIN_IPV4_HOST: parseIpv4(SVC_HAIRPIN_IPV4)!,
  SVC_CNT_TRANSLATED: 0, SVC_CNT_NEW_FLOWS: 1, SVC_CNT_REVERSED: 2, SVC_CNT_NO_BACKEND: 3,
  SVC_CNT_HAIRPIN: 4, SVC_CNT_ERRORS: 5,
};

/** Counter slots in pal_svc_counters order. */
export const serviceCounterSlots: readonly (keyof ServiceCounters)[] =
  ['translated', 'newFlows', 'reversed', 'noBackend', 'hairpin', 'errors'];

function invalid(what: string): never {
  throw new DatapathError(ERR_INVALID, `invalid service entry: ${what}`);
}

function ipOf(s: string, what: string): number {
  const n = parseIpv4(s);
  if (n === undefined) invalid(`${what} ${JSON.stringify(s)} is not an IPv4 address`);
  return n;
}

function portOf(p: number, what: string): number {
  if (!Number.isInteger(p) || p < 1 || p > 0xffff) invalid(`${what} ${p} is not a port (1-65535)`);
  return p;
}

/** The identity of a frontend: ClusterIP, port, protocol. */
export function frontendKey(e: Pick<ServiceEntry, 'ip' | 'port' | 'protocol'>): string {
  return `${e.ip}:${e.port}/${e.protocol}`;
}

const backendKey = (b: BackendEntry): string => `${b.ip}:${b.port}`;

/** Validates one entry; throws a DatapathError naming the problem. */
export function checkServiceEntry(e: ServiceEntry): void {
  const where = `${e.name || frontendKey(e)}`;
  ipOf(e.ip, `${where}: ip`);
  portOf(e.port, `${where}: port`);
  if (e.protocol !== PROTO_TCP && e.protocol !== PROTO_UDP && e.protocol !== PROTO_SCTP) {
    invalid(`${where}: protocol ${e.protocol} (only 6, 17, 132)`);
  }
  if (!Number.isInteger(e.affinityTimeoutSec) || e.affinityTimeoutSec < 0
    || e.affinityTimeoutSec > SVC_AFFINITY_TIMEOUT_MAX) {
    invalid(`${where}: affinityTimeoutSec ${e.affinityTimeoutSec} (0-${SVC_AFFINITY_TIMEOUT_MAX})`);
  }
  if (e.backends.length > SVC_BACKENDS_PER_FRONTEND_MAX) {
    invalid(`${where}: ${e.backends.length} backends (at most ${SVC_BACKENDS_PER_FRONTEND_MAX})`);
  }
  const seen = new Set<string>();
  for (const b of e.backends) {
    ipOf(b.ip, `${where}: backend ip`);
    portOf(b.port, `${where}: backend port`);
    if (seen.has(backendKey(b))) invalid(`${where}: backend ${backendKey(b)} listed twice`);
    seen.add(backendKey(b));
  }
}

// ---- encoders / decoders -----------------------------------------------------------------

export function encodeSvcKey(e: Pick<ServiceEntry, 'ip' | 'port' | 'protocol'>, slot: number): Buffer {
  const b = Buffer.alloc(serviceLayouts.svc_key.size);
  b.writeUInt32BE(ipOf(e.ip, 'ip'), 0);
  b.writeUInt16BE(e.port, 4);
  b[6] = e.protocol;
  b.writeUInt16LE(slot, 8);
  return b;
}

export interface SvcValue {
  backendId: number;
  serviceId: number;
  affinityTimeout: number;
  count: number;
  flags: number;
}

export function encodeSvcValue(v: SvcValue): Buffer {
  const b = Buffer.alloc(serviceLayouts.svc_value.size);
  b.writeUInt32LE(v.backendId, 0);
  b.writeUInt32LE(v.serviceId, 4);
  b.writeUInt32LE(v.affinityTimeout, 8);
  b.writeUInt16LE(v.count, 12);
  b.writeUInt16LE(v.flags, 14);
  return b;
}

export function decodeSvc(key: Buffer, value: Buffer): { ip: string; port: number; protocol: number; slot: number } & SvcValue {
  return {
    ip: formatIpv4(key.readUInt32BE(0)), port: key.readUInt16BE(4), protocol: key[6]!,
    slot: key.readUInt16LE(8),
    backendId: value.readUInt32LE(0), serviceId: value.readUInt32LE(4),
    affinityTimeout: value.readUInt32LE(8), count: value.readUInt16LE(12), flags: value.readUInt16LE(14),
  };
}

export function encodeBackendId(id: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(id, 0);
  return b;
}

export function encodeBackend(b: BackendEntry, protocol: number): Buffer {
  const out = Buffer.alloc(serviceLayouts.svc_backend.size);
  out.writeUInt32BE(ipOf(b.ip, 'backend ip'), 0);
  out.writeUInt16BE(b.port, 4);
  out[6] = protocol;
  return out;
}

export function decodeBackend(key: Buffer, value: Buffer): { id: number; ip: string; port: number; protocol: number } {
  return {
    id: key.readUInt32LE(0), ip: formatIpv4(value.readUInt32BE(0)), port: value.readUInt16BE(4),
    protocol: value[6]!,
  };
}

/** A NAT table entry, decoded (inspection and tests). */
export interface NatEntry {
  /** The tuple of the packet the entry matches. */
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  protocol: number;
  /** Forward: the backend. Reverse: the ClusterIP and Service port. */
  addr: string;
  port: number;
  reverse: boolean;
  hairpin: boolean;
  closing: boolean;
  lastSeen: bigint;
}

export function decodeNat(key: Buffer, value: Buffer): NatEntry {
  const flags = value[14]!;
  return {
    saddr: formatIpv4(key.readUInt32BE(0)), daddr: formatIpv4(key.readUInt32BE(4)),
    sport: key.readUInt16BE(8), dport: key.readUInt16BE(10), protocol: key[12]!,
    lastSeen: value.readBigUInt64LE(0), addr: formatIpv4(value.readUInt32BE(8)),
    port: value.readUInt16BE(12),
    reverse: (flags & SVC_NAT_REVERSE) !== 0, hairpin: (flags & SVC_NAT_HAIRPIN) !== 0,
    closing: (flags & SVC_NAT_CLOSING) !== 0,
  };
}

// ---- the plan ------------------------------------------------------------------------------

/** Map writes, in the order they must be made (add before delete). */
export interface ServiceWrites {
  backendsSet: [Buffer, Buffer][];
  /** Backend slots (1..count) first, then the frontends' slot 0. */
  frontendsSet: [Buffer, Buffer][];
  frontendsDelete: Buffer[];
  backendsDelete: Buffer[];
}

interface Applied {
  entry: ServiceEntry;
  serviceId: number;
  /** Backend id per backend key. */
  ids: Map<string, number>;
}

/**
 * What is in the service maps and which ids it used. `plan` computes the writes from the
 * applied set to a desired one without changing anything; `commit` adopts the desired set
 * once the writes succeeded.
 */
export class ServiceTable {
  #applied = new Map<string, Applied>();
  #nextServiceId = 1;
  #nextBackendId = 1;

  /** Rebuilds the table from the maps' contents (agent restart). */
  static fromMaps(frontends: Iterable<[Buffer, Buffer]>, backends: Iterable<[Buffer, Buffer]>): ServiceTable {
    const t = new ServiceTable();
    const bk = new Map<number, ReturnType<typeof decodeBackend>>();
    for (const [k, v] of backends) {
      const b = decodeBackend(k, v);
      bk.set(b.id, b);
      t.#nextBackendId = Math.max(t.#nextBackendId, b.id + 1);
    }
    const slots = new Map<string, ReturnType<typeof decodeSvc>[]>();
    for (const [k, v] of frontends) {
      const s = decodeSvc(k, v);
      const key = frontendKey(s);
      if (!slots.has(key)) slots.set(key, []);
      slots.get(key)!.push(s);
    }
    for (const [key, list] of slots) {
      const head = list.find((s) => s.slot === 0);
      if (!head) continue;
      t.#nextServiceId = Math.max(t.#nextServiceId, head.serviceId + 1);
      const ids = new Map<string, number>();
      const backendsOut: BackendEntry[] = [];
      for (const s of list.filter((x) => x.slot > 0 && x.slot <= head.count).sort((a, b) => a.slot - b.slot)) {
        const b = bk.get(s.backendId);
        if (!b) continue;
        const be = { ip: b.ip, port: b.port };
        ids.set(backendKey(be), s.backendId);
        backendsOut.push(be);
      }
      t.#applied.set(key, {
        serviceId: head.serviceId, ids,
        entry: {
          name: key, ip: head.ip, port: head.port, protocol: head.protocol,
          affinityTimeoutSec: (head.flags & SVC_F_AFFINITY) ? head.affinityTimeout : 0,
          backends: backendsOut,
        },
      });
    }
    return t;
  }

  /** The applied frontends (names are the desired ones, or ip:port/proto after a restart). */
  entries(): ServiceEntry[] {
    return [...this.#applied.values()].map((a) => a.entry);
  }

  /**
   * The writes that turn the applied set into `desired`, and the table to commit after
   * they succeeded. Validates everything first: a bad entry or two entries for one
   * frontend throw before any write is planned.
   */
  plan(desired: readonly ServiceEntry[]): { writes: ServiceWrites; commit: () => void } {
    const want = new Map<string, ServiceEntry>();
    for (const e of desired) {
      checkServiceEntry(e);
      const k = frontendKey(e);
      if (want.has(k)) invalid(`frontend ${k} given twice (${want.get(k)!.name}, ${e.name})`);
      want.set(k, e);
    }
    let nextService = this.#nextServiceId;
    let nextBackend = this.#nextBackendId;
    const next = new Map<string, Applied>();
    const w: ServiceWrites = { backendsSet: [], frontendsSet: [], frontendsDelete: [], backendsDelete: [] };
    const heads: [Buffer, Buffer][] = [];

    for (const [k, e] of want) {
      const old = this.#applied.get(k);
      const serviceId = old?.serviceId ?? nextService++;
      const ids = new Map<string, number>();
      e.backends.forEach((b, i) => {
        const bk = backendKey(b);
        let id = old?.ids.get(bk);
        if (id === undefined) {
          id = nextBackend++;
          w.backendsSet.push([encodeBackendId(id), encodeBackend(b, e.protocol)]);
        }
        ids.set(bk, id);
        const oldSlot = old ? old.entry.backends.findIndex((x) => backendKey(x) === bk) : -1;
        if (oldSlot !== i) {
          w.frontendsSet.push([encodeSvcKey(e, i + 1), encodeSvcValue({
            backendId: id, serviceId: 0, affinityTimeout: 0, count: 0, flags: 0,
          })]);
        }
      });
      const affinity = e.affinityTimeoutSec > 0;
      if (!old || old.entry.backends.length !== e.backends.length
        || old.entry.affinityTimeoutSec !== e.affinityTimeoutSec) {
        heads.push([encodeSvcKey(e, 0), encodeSvcValue({
          backendId: 0, serviceId, affinityTimeout: e.affinityTimeoutSec,
          count: e.backends.length, flags: affinity ? SVC_F_AFFINITY : 0,
        })]);
      }
      if (old) {
        for (let s = e.backends.length + 1; s <= old.entry.backends.length; s++) w.frontendsDelete.push(encodeSvcKey(e, s));
        for (const [bk, id] of old.ids) if (!ids.has(bk)) w.backendsDelete.push(encodeBackendId(id));
      }
      next.set(k, { entry: { ...e, backends: e.backends.map((b) => ({ ...b })) }, serviceId, ids });
    }
    for (const [k, old] of this.#applied) {
      if (want.has(k)) continue;
      w.frontendsDelete.push(encodeSvcKey(old.entry, 0));
      for (let s = 1; s <= old.entry.backends.length; s++) w.frontendsDelete.push(encodeSvcKey(old.entry, s));
      for (const id of old.ids.values()) w.backendsDelete.push(encodeBackendId(id));
    }
    // Slot 0 after the backend slots: a frontend never counts a slot not yet written.
    w.frontendsSet.push(...heads);
    return {
      writes: w,
      commit: () => {
        this.#applied = next;
        this.#nextServiceId = nextService;
        this.#nextBackendId = nextBackend;
      },
    };
  }
}

/**
 * The flow hash of bpf/lib/service.h svc_hash(), for the in-memory model: addresses and
 * ports are mixed as the kernel sees them, i.e. network-order bytes read as little-endian
 * words.
 */
export function serviceFlowHash(saddr: string, daddr: string, sport: number, dport: number, protocol: number): number {
  const le32 = (ip: string): number => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(parseIpv4(ip) ?? 0, 0);
    return b.readUInt32LE(0);
  };
  const le16 = (p: number): number => ((p & 0xff) << 8) | ((p >> 8) & 0xff);
  let h = (le32(saddr) ^ Math.imul(le32(daddr), 0x9e3779b1)
    ^ Math.imul(((le16(sport) << 16) | le16(dport)) >>> 0, 0x85ebca6b) ^ protocol) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return h;
}
