import { describe, expect, test } from 'vitest';
import { DatapathError } from '../../../pkg/datapath/codec.ts';
import {
  ServiceTable, decodeBackend, decodeSvc, serviceFlowHash, type ServiceWrites,
} from '../../../pkg/datapath/service-codec.ts';
import type { ServiceEntry } from '../../../pkg/datapath/types.ts';

const fe = (ip: string, backends: [string, number][], extra: Partial<ServiceEntry> = {}): ServiceEntry => ({
  name: `svc ${ip}`, ip, port: 80, protocol: 6, affinityTimeoutSec: 0,
  backends: backends.map(([i, p]) => ({ ip: i, port: p })), ...extra,
});

/** A fake kernel: the two maps as hex-keyed Maps, written in plan order. */
class Maps {
  frontends = new Map<string, Buffer>();
  backends = new Map<string, Buffer>();
  log: string[] = [];
  write(w: ServiceWrites): void {
    for (const [k, v] of w.backendsSet) { this.backends.set(k.toString('hex'), v); this.log.push('backend+'); }
    for (const [k, v] of w.frontendsSet) { this.frontends.set(k.toString('hex'), v); this.log.push(`slot${decodeSvc(k, v).slot}+`); }
    for (const k of w.frontendsDelete) { this.frontends.delete(k.toString('hex')); this.log.push('slot-'); }
    for (const k of w.backendsDelete) { this.backends.delete(k.toString('hex')); this.log.push('backend-'); }
  }
  entries(m: Map<string, Buffer>): [Buffer, Buffer][] {
    return [...m].map(([k, v]) => [Buffer.from(k, 'hex'), v]);
  }
  /** What a packet would see: frontend -> [backend ip:port by slot]. */
  view(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [k, v] of this.entries(this.frontends)) {
      const s = decodeSvc(k, v);
      if (s.slot !== 0) continue;
      out[`${s.ip}:${s.port}`] = Array.from({ length: s.count }, (_, i) => {
        const slot = [...this.entries(this.frontends)].map(([kk, vv]) => decodeSvc(kk, vv)).find((x) => x.ip === s.ip && x.port === s.port && x.slot === i + 1);
        const b = slot && this.backends.get(Buffer.from([slot.backendId & 255, (slot.backendId >> 8) & 255, 0, 0]).toString('hex'));
        return b ? `${decodeBackend(Buffer.alloc(4), b).ip}:${decodeBackend(Buffer.alloc(4), b).port}` : 'MISSING';
      });
    }
    return out;
  }
}

function apply(t: ServiceTable, m: Maps, desired: ServiceEntry[]): void {
  const { writes, commit } = t.plan(desired);
  m.write(writes);
  commit();
}

describe('ServiceTable', () => {
  test('writes backends, then slots, then the frontend; the kernel view is the desired set', () => {
    const t = new ServiceTable();
    const m = new Maps();
    apply(t, m, [fe('10.96.0.1', [['10.244.0.1', 8080], ['10.244.0.2', 9090]])]);
    expect(m.log).toEqual(['backend+', 'backend+', 'slot1+', 'slot2+', 'slot0+']);
    expect(m.view()).toEqual({ '10.96.0.1:80': ['10.244.0.1:8080', '10.244.0.2:9090'] });
  });

  test('removing a backend: the frontend shrinks before its last slot and the backend go', () => {
    const t = new ServiceTable();
    const m = new Maps();
    apply(t, m, [fe('10.96.0.1', [['10.244.0.1', 80], ['10.244.0.2', 80]])]);
    m.log = [];
    apply(t, m, [fe('10.96.0.1', [['10.244.0.2', 80]])]);
    expect(m.log).toEqual(['slot1+', 'slot0+', 'slot-', 'backend-']);
    expect(m.view()).toEqual({ '10.96.0.1:80': ['10.244.0.2:80'] });
    expect(m.backends.size).toBe(1);
  });

  test('an unchanged set writes nothing; a removed frontend is deleted whole', () => {
    const t = new ServiceTable();
    const m = new Maps();
    const set = [fe('10.96.0.1', [['10.244.0.1', 80]]), fe('10.96.0.2', [['10.244.0.1', 80]])];
    apply(t, m, set);
    const again = t.plan(set).writes;
    expect([again.backendsSet, again.frontendsSet, again.frontendsDelete, again.backendsDelete].map((x) => x.length)).toEqual([0, 0, 0, 0]);
    apply(t, m, [set[0]!]);
    expect(m.view()).toEqual({ '10.96.0.1:80': ['10.244.0.1:80'] });
    expect(m.frontends.size).toBe(2);
    expect(m.backends.size).toBe(1);
  });

  test('backend ids are never reused, and a table rebuilt from the maps continues above them', () => {
    const t = new ServiceTable();
    const m = new Maps();
    apply(t, m, [fe('10.96.0.1', [['10.244.0.1', 80]])]);
    apply(t, m, [fe('10.96.0.1', [['10.244.0.2', 80]])]);
    const ids = () => [...m.entries(m.backends)].map(([k]) => k.readUInt32LE(0));
    expect(ids()).toEqual([2]);
    const t2 = ServiceTable.fromMaps(m.entries(m.frontends), m.entries(m.backends));
    expect(t2.entries().map((e) => [e.ip, e.backends])).toEqual([['10.96.0.1', [{ ip: '10.244.0.2', port: 80 }]]]);
    apply(t2, m, [fe('10.96.0.1', [['10.244.0.2', 80], ['10.244.0.3', 80]])]);
    expect(ids().sort()).toEqual([2, 3]);
    expect(m.view()).toEqual({ '10.96.0.1:80': ['10.244.0.2:80', '10.244.0.3:80'] });
  });

  test.each([
    ['port 0', fe('10.96.0.1', [], { port: 0 })],
    ['bad ip', fe('10.96.0.300', [])],
    ['ICMP', fe('10.96.0.1', [], { protocol: 1 })],
    ['affinity above a day', fe('10.96.0.1', [], { affinityTimeoutSec: 86401 })],
    ['backend port 0', fe('10.96.0.1', [['10.244.0.1', 0]])],
    ['a backend twice', fe('10.96.0.1', [['10.244.0.1', 80], ['10.244.0.1', 80]])],
  ])('bad input (%s) throws and plans nothing', (_name, bad) => {
    const t = new ServiceTable();
    expect(() => t.plan([fe('10.96.0.9', []), bad])).toThrow(DatapathError);
    expect(t.entries()).toEqual([]);
  });

  test('an SCTP backend on another port than the Service is planned (the datapath updates the CRC32c)', () => {
    const t = new ServiceTable();
    const m = new Maps();
    apply(t, m, [fe('10.96.0.1', [['10.244.0.1', 81]], { protocol: 132 })]);
    expect(m.view()).toEqual({ '10.96.0.1:80': ['10.244.0.1:81'] });
  });

  test('two entries for one frontend are refused', () => {
    expect(() => new ServiceTable().plan([fe('10.96.0.1', []), fe('10.96.0.1', [])])).toThrow(/given twice/);
  });
});

describe('serviceFlowHash', () => {
  test('stable for a flow, spreads sequential source ports over two backends', () => {
    const h = (sport: number) => serviceFlowHash('10.244.0.1', '10.96.0.1', sport, 80, 6);
    expect(h(40000)).toBe(h(40000));
    const slots = new Set(Array.from({ length: 16 }, (_, i) => h(40000 + i) % 2));
    expect(slots.size).toBe(2);
    const counts = [0, 0, 0];
    for (let p = 32768; p < 32768 + 3000; p++) counts[h(p) % 3]!++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
  });
});
