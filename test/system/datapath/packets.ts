/**
 * Crafted frames for BPF_PROG_TEST_RUN, described once and rendered both as bytes (for
 * the programs) and as a MemoryDatapath packet (for the model), so that every system
 * case also checks that the model and the kernel agree.
 */
import type { Packet } from '../../../pkg/datapath/memory/datapath.ts';
import type { Direction } from '../../../pkg/datapath/types.ts';

export interface FrameSpec {
  ifindex: number;
  direction: Direction;
  src: string;
  dst: string;
  protocol: number;
  sport?: number;
  dport?: number;
  tcpFlags?: number;
  icmpType?: number;
  icmpId?: number;
  /** ICMP error: the quoted packet (IPv4 header + 8 bytes of its L4 header). */
  inner?: { src: string; dst: string; protocol: number; sport: number; dport: number };
  /** IP options bytes (multiple of 4); makes IHL > 5. */
  ipOptions?: number[];
  fragment?: 'first' | 'later';
  ipId?: number;
  /** Ethertype; default IPv4. */
  ethertype?: number;
  /** Break the frame: cut it to N bytes, or corrupt a header field. */
  corrupt?: { truncateTo?: number; ihl?: number; version?: number; totLenDelta?: number; l4Bytes?: number };
  payload?: number;
}

function ip4(s: string): Buffer {
  return Buffer.from(s.split('.').map(Number));
}

function l4(spec: FrameSpec): Buffer {
  const p = spec.protocol;
  if (p === 6) {
    const b = Buffer.alloc(20);
    b.writeUInt16BE(spec.sport ?? 0, 0);
    b.writeUInt16BE(spec.dport ?? 0, 2);
    b[12] = 5 << 4;
    b[13] = spec.tcpFlags ?? 0x02;
    b.writeUInt16BE(65535, 14);
    return b;
  }
  if (p === 17 || p === 132) {
    const b = Buffer.alloc(p === 17 ? 8 : 12);
    b.writeUInt16BE(spec.sport ?? 0, 0);
    b.writeUInt16BE(spec.dport ?? 0, 2);
    if (p === 17) b.writeUInt16BE(8 + (spec.payload ?? 0), 4);
    return b;
  }
  if (p === 1) {
    const b = Buffer.alloc(8);
    b[0] = spec.icmpType ?? 8;
    b.writeUInt16BE(spec.icmpId ?? 0, 4);
    if (!spec.inner) return b;
    const i = spec.inner;
    const q = Buffer.alloc(28);
    q[0] = 0x45;
    q.writeUInt16BE(40, 2);
    q[8] = 64;
    q[9] = i.protocol;
    ip4(i.src).copy(q, 12);
    ip4(i.dst).copy(q, 16);
    q.writeUInt16BE(i.sport, 20);
    q.writeUInt16BE(i.dport, 22);
    return Buffer.concat([b, q]);
  }
  return Buffer.alloc(8);
}

/** The Ethernet frame. */
export function frame(spec: FrameSpec): Buffer {
  const eth = Buffer.alloc(14);
  eth.fill(0x02, 0, 12);
  eth.writeUInt16BE(spec.ethertype ?? 0x0800, 12);
  if ((spec.ethertype ?? 0x0800) !== 0x0800) return Buffer.concat([eth, Buffer.alloc(46)]);
  const opts = Buffer.from(spec.ipOptions ?? []);
  let body = spec.fragment === 'later' ? Buffer.alloc(16) : l4(spec);
  if (spec.corrupt?.l4Bytes !== undefined) body = body.subarray(0, spec.corrupt.l4Bytes);
  body = Buffer.concat([body, Buffer.alloc(spec.payload ?? 0)]);
  const ihl = spec.corrupt?.ihl ?? 5 + opts.length / 4;
  const h = Buffer.alloc(20);
  h[0] = ((spec.corrupt?.version ?? 4) << 4) | ihl;
  h.writeUInt16BE(20 + opts.length + body.length + (spec.corrupt?.totLenDelta ?? 0), 2);
  h.writeUInt16BE(spec.ipId ?? 1, 4);
  const fragOff = spec.fragment === 'first' ? 0x2000 : spec.fragment === 'later' ? 185 : 0x4000;
  h.writeUInt16BE(fragOff, 6);
  h[8] = 64;
  h[9] = spec.protocol;
  ip4(spec.src).copy(h, 12);
  ip4(spec.dst).copy(h, 16);
  const f = Buffer.concat([eth, h, opts, body]);
  return spec.corrupt?.truncateTo !== undefined ? f.subarray(0, spec.corrupt.truncateTo) : f;
}

/** The same packet as the in-memory model sees it. */
export function modelPacket(spec: FrameSpec): Packet {
  const et = spec.ethertype ?? 0x0800;
  const p: Packet = {
    ifindex: spec.ifindex, direction: spec.direction, srcIp: spec.src, dstIp: spec.dst,
    protocol: spec.protocol, srcPort: spec.sport, dstPort: spec.dport, tcpFlags: spec.tcpFlags ?? 0x02,
    icmpType: spec.protocol === 1 ? (spec.icmpType ?? 8) : undefined, icmpId: spec.icmpId,
    fragment: spec.fragment, ipId: spec.ipId ?? 1,
    l3: et === 0x0806 ? 'arp' : et === 0x0800 ? 'ipv4' : 'other',
    malformed: spec.corrupt !== undefined,
  };
  if (spec.inner) {
    p.inner = { srcIp: spec.inner.src, dstIp: spec.inner.dst, protocol: spec.inner.protocol,
      srcPort: spec.inner.sport, dstPort: spec.inner.dport };
  }
  return p;
}
