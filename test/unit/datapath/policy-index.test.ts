/**
 * Overlapping port ranges share LPM keys; removing one entry must leave the other fully
 * covered (the key is rewritten, not deleted).
 */
import { describe, expect, test } from 'vitest';
import { decodePolicy } from '../../../pkg/datapath/codec.ts';
import { PolicyKeyIndex } from '../../../pkg/datapath/linux/policy-index.ts';
import type { PolicyEntry } from '../../../pkg/datapath/types.ts';

const pol = (port: number, endPort: number, ruleId: number): PolicyEntry => ({
  endpointId: 1, direction: 'ingress', peer: 300, protocol: 6, port, endPort, ruleId, proxyPort: 0,
});

/** Applies writes to a fake map (hex key -> value) the way the kernel would. */
function applyTo(map: Map<string, Buffer>, w: { set: [Buffer, Buffer][]; delete: Buffer[] }) {
  for (const [k, v] of w.set) map.set(k.toString('hex'), v);
  for (const k of w.delete) map.delete(k.toString('hex'));
}

describe('PolicyKeyIndex', () => {
  test('removing [80-95] keeps the shared 80/12 key for [80-100], with its value', () => {
    const idx = new PolicyKeyIndex();
    const map = new Map<string, Buffer>();
    const a = pol(80, 95, 1);
    const b = pol(80, 100, 2);
    applyTo(map, idx.upsert(a));
    applyTo(map, idx.upsert(b));
    expect(map.size).toBe(3); // 80/12, 96/14, 100/16
    applyTo(map, idx.remove(a));
    expect(map.size).toBe(3);
    for (const [k, v] of map) expect(decodePolicy(Buffer.from(k, 'hex'), v)).toEqual(b);
    applyTo(map, idx.remove(b));
    expect(map.size).toBe(0);
  });

  test('removing an entry nobody shares deletes all its keys; removing twice is harmless', () => {
    const idx = new PolicyKeyIndex();
    const map = new Map<string, Buffer>();
    applyTo(map, idx.upsert(pol(1000, 2000, 5)));
    expect(map.size).toBeGreaterThan(1);
    applyTo(map, idx.remove(pol(1000, 2000, 5)));
    expect(map.size).toBe(0);
    expect(idx.remove(pol(1000, 2000, 5)).set).toEqual([]);
  });

  test('upserting the same entry with a new rule id rewrites its values only', () => {
    const idx = new PolicyKeyIndex();
    const w1 = idx.upsert(pol(80, 80, 1));
    const w2 = idx.upsert(pol(80, 80, 9));
    expect(w2.set.map(([k]) => k)).toEqual(w1.set.map(([k]) => k));
    expect(idx.size).toBe(1);
    expect(idx.values()[0]!.ruleId).toBe(9);
  });
});
