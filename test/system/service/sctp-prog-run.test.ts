/**
 * SCTP port translation in the real from_pod/to_pod programs under BPF_PROG_TEST_RUN:
 * the output frames' ports and a CRC32c recomputed in full over the output bytes
 * (test/helpers/crc32c.ts), forward, reverse and hairpin. The CRC is updated
 * incrementally in the datapath (bpf/lib/crc32c.h); these tests would fail on a stale
 * CRC, on a recomputed one (a corrupt packet must stay corrupt), and on a wrong length.
 * No socket test: this kernel has no SCTP sockets (CONFIG_IP_SCTP off), so frames are
 * crafted here.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { SVC_HAIRPIN_IPV4 } from '../../../pkg/datapath/service-codec.ts';
import { emptyState, type ServiceEntry } from '../../../pkg/datapath/types.ts';
import { sctpChecksumExpected, sctpChecksumOf } from '../../helpers/crc32c.ts';
import { describePrivileged } from '../../helpers/privileged.ts';
import { TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, useProgRun } from '../../helpers/progrun.ts';

const POD = '10.244.0.20';
const B1 = '10.244.1.21';
const VIP = '10.96.0.60';
const VIP_HAIRPIN = '10.96.0.61';

const ip4 = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
const ipStr = (b: Buffer): string => [...b].join('.');

function ipChecksum(h: Buffer): number {
  let sum = 0;
  for (let i = 0; i < h.length; i += 2) sum += h.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

interface SctpSpec {
  src: string; dst: string; sport: number; dport: number; chunks: Buffer;
  /** 'valid' (default), 'zero' (not yet computed), or a bit mask XORed into the valid CRC. */
  crc?: 'valid' | 'zero' | number;
  firstFragment?: boolean;
}

const INIT = (): Buffer => {
  const c = Buffer.alloc(20);
  c[0] = 1; // INIT
  c.writeUInt16BE(20, 2);
  randomBytes(4).copy(c, 4); // initiate tag
  c.writeUInt32BE(106496, 8);
  c.writeUInt16BE(10, 12);
  c.writeUInt16BE(10, 14);
  randomBytes(4).copy(c, 16);
  return c;
};

const DATA = (payload: number): Buffer => {
  const c = Buffer.alloc(16 + payload + ((4 - (payload % 4)) % 4));
  c[0] = 0; // DATA
  c[1] = 3; // B and E: a whole message
  c.writeUInt16BE(16 + payload, 2);
  randomBytes(12 + payload).copy(c, 4);
  return c;
};

function sctpFrame(s: SctpSpec): Buffer {
  const sctp = Buffer.concat([Buffer.alloc(12), s.chunks]);
  sctp.writeUInt16BE(s.sport, 0);
  sctp.writeUInt16BE(s.dport, 2);
  randomBytes(4).copy(sctp, 4); // verification tag
  const crc = sctpChecksumExpected(sctp);
  sctp.writeUInt32LE(s.crc === 'zero' ? 0 : typeof s.crc === 'number' ? (crc ^ s.crc) >>> 0 : crc, 8);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + sctp.length, 2);
  ip.writeUInt16BE(0x1234, 4);
  ip.writeUInt16BE(s.firstFragment ? 0x2000 : 0x4000, 6);
  ip[8] = 64;
  ip[9] = 132;
  ip4(s.src).copy(ip, 12);
  ip4(s.dst).copy(ip, 16);
  ip.writeUInt16BE(ipChecksum(ip), 10);
  const eth = Buffer.alloc(14, 0x02);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, ip, sctp]);
}

interface Parsed { src: string; dst: string; sport: number; dport: number; crc: number; crcValid: boolean; ipValid: boolean; sctp: Buffer }

function parse(f: Buffer): Parsed {
  const ihl = (f[14]! & 0x0f) * 4;
  const ip = f.subarray(14, 14 + ihl);
  const sctp = f.subarray(14 + ihl, 14 + ip.readUInt16BE(2));
  return {
    src: ipStr(ip.subarray(12, 16)), dst: ipStr(ip.subarray(16, 20)),
    sport: sctp.readUInt16BE(0), dport: sctp.readUInt16BE(2),
    crc: sctpChecksumOf(sctp), crcValid: sctpChecksumOf(sctp) === sctpChecksumExpected(sctp),
    ipValid: ipChecksum(ip) === 0, sctp: Buffer.from(sctp),
  };
}

describePrivileged('SCTP port translation (CRC32c updated incrementally)', () => {
  const rig = useProgRun('ssc', { reload: true });
  let ifPod = 0;

  const services: ServiceEntry[] = [
    { name: 'sctp', ip: VIP, port: 5000, protocol: 132, affinityTimeoutSec: 0, backends: [{ ip: B1, port: 6000 }] },
    { name: 'self', ip: VIP_HAIRPIN, port: 7000, protocol: 132, affinityTimeoutSec: 0, backends: [{ ip: POD, port: 7001 }] },
  ];

  beforeAll(async () => {
    ifPod = rig.ifPod;
    const up = {
      ...emptyState(),
      endpoints: [{ ifindex: ifPod, endpointId: 9, identity: 1009, ipv4: POD, ingressEnforced: false, egressEnforced: false }],
      ipcache: [{ cidr: `${POD}/32`, identity: 1009 }, { cidr: `${B1}/32`, identity: 2021 }],
    };
    await rig.apply({ upsert: up, delete: emptyState() });
    await rig.dp.applyServices(services);
    await rig.model.applyServices(services);
  });

  const egress = (f: Buffer): { retval: number; out: Parsed; bytes: Buffer } => {
    const r = rig.runBytes(f, 'egress', ifPod);
    return { retval: r.retval, out: parse(r.out), bytes: r.out };
  };
  const ingress = (f: Buffer): { retval: number; out: Parsed } => {
    const r = rig.runBytes(f, 'ingress', ifPod);
    return { retval: r.retval, out: parse(r.out) };
  };

  describe('forward and reverse', () => {
    test('an INIT to the ClusterIP leaves with the backend port and a valid CRC32c; the INIT-ACK comes back from the Service port, valid', () => {
      const f = egress(sctpFrame({ src: POD, dst: VIP, sport: 40000, dport: 5000, chunks: INIT() }));
      expect(f.retval).toBe(TC_ACT_OK);
      expect(f.out).toMatchObject({ src: POD, dst: B1, sport: 40000, dport: 6000, crcValid: true, ipValid: true });

      const r = ingress(sctpFrame({ src: B1, dst: POD, sport: 6000, dport: 40000, chunks: Buffer.concat([INIT(), DATA(3)]) }));
      expect(r.retval).toBe(TC_ACT_OK);
      expect(r.out).toMatchObject({ src: VIP, dst: POD, sport: 5000, dport: 40000, crcValid: true, ipValid: true });
    });

    test('DATA of many sizes (odd lengths, near the MTU) keeps a valid CRC32c both ways', () => {
      for (const [i, payload] of [1, 2, 3, 4, 5, 63, 100, 511, 1000, 1423].entries()) {
        const sport = 40100 + i;
        const f = egress(sctpFrame({ src: POD, dst: VIP, sport, dport: 5000, chunks: DATA(payload) }));
        expect(f.retval).toBe(TC_ACT_OK);
        expect(f.out, `payload ${payload}`).toMatchObject({ dst: B1, sport, dport: 6000, crcValid: true });
        const r = ingress(sctpFrame({ src: B1, dst: POD, sport: 6000, dport: sport, chunks: DATA(payload) }));
        expect(r.out, `reply payload ${payload}`).toMatchObject({ src: VIP, sport: 5000, dport: sport, crcValid: true });
      }
    });

    test('a corrupt CRC stays corrupt, by the same error (not recomputed)', () => {
      const f = egress(sctpFrame({ src: POD, dst: VIP, sport: 40200, dport: 5000, chunks: DATA(200), crc: 0x00010000 }));
      expect(f.retval).toBe(TC_ACT_OK);
      expect(f.out).toMatchObject({ dst: B1, dport: 6000, crcValid: false });
      expect((f.out.crc ^ sctpChecksumExpected(f.out.sctp)) >>> 0).toBe(0x00010000);

      const r = ingress(sctpFrame({ src: B1, dst: POD, sport: 6000, dport: 40200, chunks: DATA(200), crc: 0x80000001 }));
      expect(r.out).toMatchObject({ src: VIP, sport: 5000, crcValid: false });
      expect((r.out.crc ^ sctpChecksumExpected(r.out.sctp)) >>> 0).toBe(0x80000001);
    });

    test('a CRC field of 0 (left to checksum offload) stays 0, the port is rewritten', () => {
      const f = egress(sctpFrame({ src: POD, dst: VIP, sport: 40300, dport: 5000, chunks: INIT(), crc: 'zero' }));
      expect(f.retval).toBe(TC_ACT_OK);
      expect(f.out).toMatchObject({ dst: B1, dport: 6000, crc: 0 });
    });

    test('a first fragment that needs a port rewrite is dropped and counted as an error', async () => {
      const before = (await rig.dp.serviceCounters()).errors;
      const f = egress(sctpFrame({ src: POD, dst: VIP, sport: 40400, dport: 5000, chunks: DATA(100), firstFragment: true }));
      expect(f.retval).toBe(TC_ACT_SHOT);
      expect((await rig.dp.serviceCounters()).errors).toBe(before + 1);
      // The model agrees.
      const m = rig.model.send({ ifindex: ifPod, direction: 'egress', srcIp: POD, dstIp: VIP, protocol: 132, srcPort: 40400, dstPort: 5000, fragment: 'first', ipId: 0x1234, now: Date.now() });
      expect(m.translation.action).toBe('error');
    });
  });

  test('hairpin: the pod through its own Service, both legs with a valid CRC32c', () => {
    const f = egress(sctpFrame({ src: POD, dst: VIP_HAIRPIN, sport: 41000, dport: 7000, chunks: INIT() }));
    expect(f.retval).toBe(TC_ACT_REDIRECT);
    expect(f.out).toMatchObject({ src: SVC_HAIRPIN_IPV4, dst: POD, sport: 41000, dport: 7001, crcValid: true, ipValid: true });

    const r = egress(sctpFrame({ src: POD, dst: SVC_HAIRPIN_IPV4, sport: 7001, dport: 41000, chunks: DATA(77) }));
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    expect(r.out).toMatchObject({ src: VIP_HAIRPIN, dst: POD, sport: 7000, dport: 41000, crcValid: true, ipValid: true });
  });
});
