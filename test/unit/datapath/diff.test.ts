/** diffState: fewest upserts and deletes; the policy key includes the range. */
import { describe, expect, test } from 'vitest';
import { changeSize, diffState } from '../../../pkg/datapath/diff.ts';
import { emptyState, type PolicyEntry } from '../../../pkg/datapath/types.ts';

const pol = (over: Partial<PolicyEntry> = {}): PolicyEntry => ({
  endpointId: 1, direction: 'ingress', peer: 300, protocol: 6, port: 80, endPort: 80, ruleId: 1, proxyPort: 0, ...over,
});

describe('diffState', () => {
  test('equal states give an empty change', () => {
    const s = { ...emptyState(), policy: [pol()] };
    expect(changeSize(diffState(s, structuredClone(s)))).toBe(0);
  });

  test('a changed rule id is an upsert of the same key, not a delete + add', () => {
    const c = diffState({ ...emptyState(), policy: [pol({ ruleId: 2 })] }, { ...emptyState(), policy: [pol()] });
    expect(c.upsert.policy).toEqual([pol({ ruleId: 2 })]);
    expect(c.delete.policy).toEqual([]);
  });

  test('a changed range is a new key: upsert the new, delete the old', () => {
    const c = diffState({ ...emptyState(), policy: [pol({ endPort: 90 })] }, { ...emptyState(), policy: [pol()] });
    expect(c.upsert.policy).toEqual([pol({ endPort: 90 })]);
    expect(c.delete.policy).toEqual([pol()]);
  });
});
