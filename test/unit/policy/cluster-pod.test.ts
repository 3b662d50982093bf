/**
 * `namespaceSelector: {}` (NETPOL 9: every pod of the cluster, not nodes, not outside
 * addresses) compiles to one "any pod" entry (IDENTITY_CLUSTER_POD) per port instead of
 * one entry per label identity; the datapath matches it for label identities only.
 * Checked against the same peer written so that it goes through per-identity selection
 * (`kubernetes.io/metadata.name Exists`, which every namespace carries).
 */
import { describe, expect, test } from 'vitest';
import { IDENTITY_CLUSTER_POD } from '../../../pkg/identity/reserved.ts';
import { evaluate } from '../../../pkg/policy/evaluate.ts';
import type { NetworkPolicyPeer } from '../../../pkg/policy/snapshot.ts';
import { TestCluster } from './cluster.ts';

const OUTSIDE = '172.16.5.5';
const ALL_BY_EXPRESSION: NetworkPolicyPeer = {
  namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'Exists' }] },
};

function cluster(peer: NetworkPolicyPeer): TestCluster {
  const c = new TestCluster(2);
  for (const ns of ['x', 'y', 'z']) {
    for (let i = 0; i < 8; i++) c.pod(ns, `p${i}`, { labels: { app: `a${i}` }, node: i % 2, ports: [{ name: 'web', containerPort: 8080 }] });
  }
  c.pod('x', 'hostnet', { hostNetwork: true, node: 1 });
  c.policy('x', 'in', { podSelector: { matchLabels: { app: 'a0' } }, policyTypes: ['Ingress'], ingress: [{ from: [peer], ports: [{ port: 80 }] }] });
  c.policy('x', 'out', { podSelector: { matchLabels: { app: 'a0' } }, policyTypes: ['Egress'], egress: [{ to: [peer], ports: [{ port: 80 }, { port: 'web' }] }] });
  return c;
}

describe('namespaceSelector {}', () => {
  test('one any-pod entry per port, instead of one per identity', () => {
    const c = cluster({ namespaceSelector: {} });
    const ep = c.endpointOf('x/p0');
    const r = c.result(c.nodeOf('x/p0'));
    const ingress = r.state.policy.filter((e) => e.endpointId === ep && e.direction === 'ingress');
    expect(ingress.map((e) => [e.peer, e.protocol, e.port])).toEqual([[IDENTITY_CLUSTER_POD, 6, 80]]);
    const old = cluster(ALL_BY_EXPRESSION).result(c.nodeOf('x/p0')).state.policy
      .filter((e) => e.endpointId === ep && e.direction === 'ingress');
    // 24 pods with 24 distinct label sets: 24 entries the per-identity way.
    expect(old).toHaveLength(24);
  });

  test('with podSelector {} too it is the same any-pod entry', () => {
    const c = cluster({ namespaceSelector: {}, podSelector: {} });
    const r = c.result(c.nodeOf('x/p0'));
    expect(r.state.policy.filter((e) => e.endpointId === c.endpointOf('x/p0') && e.direction === 'ingress')
      .map((e) => e.peer)).toEqual([IDENTITY_CLUSTER_POD]);
  });

  test('a podSelector with labels still selects per identity', () => {
    const c = cluster({ namespaceSelector: {}, podSelector: { matchLabels: { app: 'a3' } } });
    const peers = c.result(c.nodeOf('x/p0')).state.policy
      .filter((e) => e.endpointId === c.endpointOf('x/p0') && e.direction === 'ingress').map((e) => e.peer);
    expect(peers).toHaveLength(3);
    expect(peers).not.toContain(IDENTITY_CLUSTER_POD);
  });

  test('pods in every namespace pass; nodes, hostNetwork pods and outside addresses do not', () => {
    const c = cluster({ namespaceSelector: {} });
    for (const from of ['x/p1', 'y/p0', 'z/p7']) {
      expect(c.can(from, 'x/p0', 80), `${from} -> x/p0`).toBe(true);
      expect(c.can('x/p0', from, 80), `x/p0 -> ${from}`).toBe(true);
      expect(c.can(from, 'x/p0', 81)).toBe(false);
    }
    const other = c.nodeOf('x/p0') === 'node-0' ? 1 : 0;
    // Ingress from the other node (remote-node) and from outside: denied. From this node:
    // always allowed (NETPOL 22), whatever the policy.
    expect(c.canBeReachedFrom(c.nodeIp(other), 'x/p0', 80)).toBe(false);
    expect(c.canBeReachedFrom(OUTSIDE, 'x/p0', 80)).toBe(false);
    // Egress to either node (host, remote-node), the hostNetwork pod (a node address) and
    // outside: denied.
    for (const ip of [c.nodeIp(0), c.nodeIp(1), c.ipOf('x/hostnet'), OUTSIDE]) {
      expect(c.canReachIp('x/p0', ip, 80), ip).toBe(false);
    }
  });

  test('same verdicts as the per-identity form for every pair, port and address', () => {
    const a = cluster({ namespaceSelector: {} });
    const b = cluster(ALL_BY_EXPRESSION);
    const pods = [...a.pods.keys()].filter((k) => k !== 'x/hostnet');
    const addrs = [...pods.map((k) => a.ipOf(k)), a.nodeIp(0), a.nodeIp(1), OUTSIDE];
    for (const p of pods) {
      const node = a.nodeOf(p);
      for (const direction of ['ingress', 'egress'] as const) {
        for (const remoteIp of addrs) {
          for (const port of [80, 8080, 443]) {
            const q = { endpointId: a.endpointOf(p), direction, remoteIp, protocol: 6, port };
            expect(evaluate(a.result(node).state, q).allowed, JSON.stringify(q))
              .toBe(evaluate(b.result(node).state, q).allowed);
          }
        }
      }
    }
  });
});
