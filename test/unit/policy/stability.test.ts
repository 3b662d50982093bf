/**
 * Stability: rule ids, identities and the whole state are functions of the inputs and the
 * allocators' state, so a recompile of unchanged inputs changes nothing and a small
 * change (one relabel) changes only the entries it must.
 */
import { describe, expect, test } from 'vitest';
import { changeSize, diffState } from '../../../pkg/datapath/diff.ts';
import { CidrIdentityAllocator, LabelIdentityAllocator } from '../../../pkg/identity/allocator.ts';
import { PolicyCompiler } from '../../../pkg/policy/compile.ts';
import { fnv1a32, ruleIdOf } from '../../../pkg/policy/ruleid.ts';
import type { ClusterSnapshot } from '../../../pkg/policy/snapshot.ts';
import { upstreamModel, type TestCluster } from './cluster.ts';

const pod = (name: string) => ({ matchLabels: { pod: name } });

function withPolicies(): TestCluster {
  const c = upstreamModel();
  c.policy('x', 'a', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }, { namespaceSelector: {} , podSelector: pod('c') }], ports: [{ port: 80 }, { port: 'serve-81-udp', protocol: 'UDP' }] }] });
  c.policy('x', 'eg', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: [`${c.ipOf('y/b')}/32`] } }] }, { to: [{ namespaceSelector: {} }], ports: [{ port: 'serve-80-tcp' }] }] });
  c.policy('y', 'deny', { podSelector: {} });
  return c;
}

function reversed(s: ClusterSnapshot): ClusterSnapshot {
  const rev = <K, V>(m: ReadonlyMap<K, V>) => new Map([...m].reverse());
  return { ...s, namespaces: rev(s.namespaces), pods: rev(s.pods), nodes: rev(s.nodes), policies: rev(s.policies), endpoints: [...s.endpoints].reverse() };
}

describe('rule ids', () => {
  test('FNV-1a 32 of policy/direction/index, never 0', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    expect(ruleIdOf('NetworkPolicy:x/p', 'ingress', 0)).toBe(fnv1a32('NetworkPolicy:x/p/ingress/0'));
    expect(ruleIdOf('NetworkPolicy:x/p', 'ingress', 0)).not.toBe(ruleIdOf('NetworkPolicy:x/p', 'egress', 0));
    expect(ruleIdOf('NetworkPolicy:x/p', 'ingress', 0)).not.toBe(ruleIdOf('NetworkPolicy:x/p', 'ingress', 1));
  });

  test('every entry is attributed to a rule in `rules`, with the same ids on every node and compile', () => {
    const c = withPolicies();
    for (const node of ['node-0', 'node-1']) {
      const r = c.result(node);
      for (const e of r.state.policy) {
        const o = r.rules.get(e.ruleId);
        expect(o, `rule ${e.ruleId}`).toBeDefined();
        expect(o!.ruleId).toBe(ruleIdOf(o!.policy, o!.direction, o!.ruleIndex));
        expect(o!.direction).toBe(e.direction);
      }
    }
    const v = c.verdict('x/a', 'ingress', c.ipOf('x/b'), 80);
    expect(c.result('node-0').rules.get(v.ruleId)).toEqual({ ruleId: v.ruleId, policy: 'NetworkPolicy:x/a', direction: 'ingress', ruleIndex: 0 });
  });
});

describe('determinism and stability', () => {
  test('recompiling unchanged inputs gives an identical result', () => {
    const c = withPolicies();
    const snap = c.snapshotFor('node-0');
    const comp = new PolicyCompiler();
    const one = comp.compile(snap);
    const two = comp.compile(snap);
    expect(two).toEqual(one);
    expect(changeSize(diffState(two.state, one.state))).toBe(0);
  });

  test('the order of objects in the snapshot does not matter', () => {
    const c = withPolicies();
    const snap = c.snapshotFor('node-1');
    const a = new PolicyCompiler().compile(snap);
    const b = new PolicyCompiler().compile(reversed(snap));
    expect(b.state).toEqual(a.state);
    expect(b.identities).toEqual(a.identities);
    expect(b.problems).toEqual(a.problems);
  });

  test('relabelling one pod changes only its ipcache entry and the entries naming its identities', () => {
    const c = withPolicies();
    const before = c.result('node-0');
    const ip = `${c.ipOf('z/b')}/32`;
    const oldId = before.state.ipcache.find((e) => e.cidr === ip)!.identity;
    c.relabel('z/b', { pod: 'b', extra: 'yes' });
    const after = c.result('node-0');
    const newId = after.state.ipcache.find((e) => e.cidr === ip)!.identity;
    expect(newId).not.toBe(oldId);
    const ch = diffState(after.state, before.state);
    expect(ch.upsert.ipcache).toEqual([{ cidr: ip, identity: newId }]);
    expect(ch.delete.ipcache).toEqual([]);
    expect(ch.upsert.endpoints).toEqual([]);
    expect(ch.upsert.cidrs).toEqual([]);
    expect(ch.delete.cidrs).toEqual([]);
    expect(ch.upsert.policy.length + ch.delete.policy.length).toBeGreaterThan(0);
    for (const e of ch.upsert.policy) expect(e.peer).toBe(newId);
    for (const e of ch.delete.policy) expect(e.peer).toBe(oldId);
    // Other pods keep their identities.
    const ids = (r: typeof before) => new Map(r.state.ipcache.filter((e) => e.cidr !== ip).map((e) => [e.cidr, e.identity]));
    expect(ids(after)).toEqual(ids(before));
  });

  test('identities survive an agent restart through toJSON/fromJSON', () => {
    const c = withPolicies();
    const snap = c.snapshotFor('node-0');
    const first = new PolicyCompiler();
    // Churn first so that numbers depend on history, not just on the current inputs.
    first.compile({ ...snap, pods: new Map([...snap.pods].filter(([k]) => k !== 'x/a')) });
    const a = first.compile(snap);
    const saved = JSON.stringify({ labels: first.labelIdentities.toJSON(), cidrs: first.cidrIdentities.toJSON() });
    const j = JSON.parse(saved);
    const restarted = new PolicyCompiler({
      labelIdentities: LabelIdentityAllocator.fromJSON(j.labels),
      cidrIdentities: CidrIdentityAllocator.fromJSON(j.cidrs),
    });
    const b = restarted.compile(reversed(snap));
    expect(b.state).toEqual(a.state);
    // Without the saved state, the numbering differs (which is why it is persisted).
    expect(new PolicyCompiler().compile(snap).state).not.toEqual(a.state);
  });

  test('a released identity is not reused by the next compile for another label set', () => {
    const c = upstreamModel();
    const idOf = (k: string) => c.result('node-0').state.ipcache.find((e) => e.cidr === `${c.ipOf(k)}/32`)!.identity;
    const old = idOf('z/c');
    c.relabel('z/c', { pod: 'c2' });
    const renamed = idOf('z/c');
    c.pod('z', 'd', { labels: { pod: 'd' } });
    const fresh = idOf('z/d');
    expect(new Set([old, renamed, fresh]).size).toBe(3);
  });
});
