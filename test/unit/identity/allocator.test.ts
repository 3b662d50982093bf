/**
 * Identity allocators: equal label sets share one number, numbers stay while in use, are
 * released when unused and reused only after a delay, and survive a restart via JSON.
 */
import { describe, expect, test } from 'vitest';
import {
  CidrIdentityAllocator, IdentityPool, LabelIdentityAllocator, cidrSetKey, identityLabels, labelSetKey,
} from '../../../pkg/identity/allocator.ts';
import { IDENTITY_FIRST_CIDR, IDENTITY_FIRST_LABEL } from '../../../pkg/identity/reserved.ts';

describe('IdentityPool', () => {
  test('new keys get numbers in sorted key order; kept keys keep theirs', () => {
    const p = new IdentityPool(100, 199);
    expect([...p.sync(['b', 'a', 'c'])]).toEqual([['a', 100], ['b', 101], ['c', 102]]);
    expect(Object.fromEntries(p.sync(['c', 'd', 'a']))).toEqual({ a: 100, c: 102, d: 103 });
    expect(p.idOf('b')).toBeUndefined();
    expect(p.keyOf(101)).toBeUndefined();
  });

  test('a released number is not reused while fresh numbers remain', () => {
    const p = new IdentityPool(1, 3, 0);
    p.sync(['a']);
    p.sync(['b']); // a (1) released
    expect(p.idOf('b')).toBe(2);
    p.sync(['c']);
    expect(p.idOf('c')).toBe(3);
  });

  test('reuse waits reuseDelay syncs, oldest first', () => {
    const p = new IdentityPool(1, 2, 2);
    p.sync(['a', 'b']); // gen 1
    p.sync([]); // gen 2: 1 and 2 released
    expect(() => p.sync(['c'])).toThrow(expect.objectContaining({ code: 'PAL_IDENTITY_EXHAUSTED' })); // gen 3 would be too early
    expect(p.generation).toBe(2); // the failed sync changed nothing
    p.sync([]); // gen 3
    expect(Object.fromEntries(p.sync(['d', 'c']))).toEqual({ c: 1, d: 2 }); // gen 4 = 2 + 2
  });

  test('never hands one number to two keys in one sync', () => {
    const p = new IdentityPool(1, 2, 0);
    p.sync(['a', 'b']);
    expect(() => p.sync(['c', 'd'])).toThrow(/exhausted/); // a and b are released by this very sync
    expect(p.idOf('a')).toBe(1);
  });

  test('toJSON/fromJSON round trip, with validation', () => {
    const p = new IdentityPool(10, 20, 1);
    p.sync(['x', 'y', 'z']);
    p.sync(['y', 'w']);
    const q = IdentityPool.fromJSON(JSON.parse(JSON.stringify(p)), 1);
    expect(q.toJSON()).toEqual(p.toJSON());
    expect(Object.fromEntries(q.sync(['y', 'w', 'v']))).toEqual(Object.fromEntries(p.sync(['y', 'w', 'v'])));
    const j = p.toJSON();
    expect(() => IdentityPool.fromJSON({ ...j, version: 2 })).toThrow(expect.objectContaining({ code: 'PAL_IDENTITY_STATE' }));
    expect(() => IdentityPool.fromJSON({ ...j, inUse: [['a', 999]] })).toThrow(/invalid entry/);
    expect(() => IdentityPool.fromJSON({ ...j, inUse: [['a', 10], ['b', 10]] })).toThrow(/duplicate/);
    expect(() => IdentityPool.fromJSON(null)).toThrow(/not an object/);
  });

  test('rejects an invalid range', () => {
    expect(() => new IdentityPool(0, 5)).toThrow(expect.objectContaining({ code: 'PAL_IDENTITY_RANGE' }));
    expect(() => new IdentityPool(5, 4)).toThrow(/invalid identity range/);
  });
});

describe('label identities', () => {
  test('the label set covers namespace, pod labels and namespace labels; key order does not matter', () => {
    const l1 = identityLabels('x', { app: 'web', tier: 'fe' }, { team: 'blue' });
    const l2 = identityLabels('x', { tier: 'fe', app: 'web' }, { team: 'blue' });
    expect(l1).toEqual({ namespace: 'x', 'pod:app': 'web', 'pod:tier': 'fe', 'ns:team': 'blue' });
    expect(labelSetKey(l1)).toBe(labelSetKey(l2));
    expect(labelSetKey(identityLabels('y', { app: 'web' }, {}))).not.toBe(labelSetKey(identityLabels('x', { app: 'web' }, {})));
    // A pod label and a namespace label with the same key are different labels.
    expect(labelSetKey(identityLabels('x', { a: '1' }, {}))).not.toBe(labelSetKey(identityLabels('x', {}, { a: '1' })));
  });

  test('numbers start at IDENTITY_FIRST_LABEL and map back to labels; JSON round trip', () => {
    const a = new LabelIdentityAllocator();
    const k = labelSetKey(identityLabels('x', { app: 'web' }, {}));
    const ids = a.sync([k]);
    expect(ids.get(k)).toBe(IDENTITY_FIRST_LABEL);
    expect(a.labelsOf(IDENTITY_FIRST_LABEL)).toEqual({ namespace: 'x', 'pod:app': 'web' });
    const b = LabelIdentityAllocator.fromJSON(JSON.parse(JSON.stringify(a)));
    expect(b.idOf(k)).toBe(IDENTITY_FIRST_LABEL);
    expect(b.labelsOf(IDENTITY_FIRST_LABEL)).toEqual({ namespace: 'x', 'pod:app': 'web' });
    expect(() => LabelIdentityAllocator.fromJSON({ kind: 'cidr-identities' })).toThrow(/wrong kind/);
  });
});

describe('CIDR identities', () => {
  test('keyed by the canonical set of ipBlock peers; numbers from IDENTITY_FIRST_CIDR', () => {
    expect(cidrSetKey(['10.0.0.0/8', '8.8.8.0/24', '10.0.0.0/8'])).toBe(cidrSetKey(['8.8.8.0/24', '10.0.0.0/8']));
    const a = new CidrIdentityAllocator();
    const k = cidrSetKey(['10.0.0.0/8 except 10.1.0.0/16', '8.8.8.0/24']);
    expect(a.sync([k]).get(k)).toBe(IDENTITY_FIRST_CIDR);
    expect(a.membersOf(IDENTITY_FIRST_CIDR)).toEqual(['10.0.0.0/8 except 10.1.0.0/16', '8.8.8.0/24']);
    const b = CidrIdentityAllocator.fromJSON(JSON.parse(JSON.stringify(a)));
    expect(b.idOf(k)).toBe(IDENTITY_FIRST_CIDR);
  });
});
