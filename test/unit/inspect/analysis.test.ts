/**
 * `kubectl palisade trace` and `policy` against an in-memory cluster view: the verdict and
 * the deciding policy (or default deny) as the agents' compiler decides them.
 */
import { describe, expect, it } from 'vitest';
import { InspectError, effectivePolicy, trace, type ClusterView } from '../../../pkg/inspect/analysis.ts';
import type { Namespace, NetworkPolicy, NetworkPolicySpec, Node, Pod } from '../../../pkg/policy/snapshot.ts';

function view(policies: { kind?: string; ns: string; name: string; spec: NetworkPolicySpec }[] = []): ClusterView {
  const namespaces = new Map<string, Namespace>();
  for (const ns of ['x', 'y']) namespaces.set(ns, { metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns, team: ns } } });
  const nodes = new Map<string, Node>();
  for (const i of [0, 1]) {
    nodes.set(`n${i}`, {
      metadata: { name: `n${i}` }, spec: { podCIDR: `10.244.${i}.0/24` },
      status: { addresses: [{ type: 'InternalIP', address: `10.89.0.${10 + i}` }] },
    });
  }
  const pods = new Map<string, Pod>();
  const pod = (ns: string, name: string, node: number, ip: string, extra: Partial<Pod['spec']> = {}): void => {
    pods.set(`${ns}/${name}`, {
      metadata: { name, namespace: ns, labels: { pod: name } },
      spec: { nodeName: `n${node}`, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }], ...extra },
      status: { phase: 'Running', podIP: ip },
    });
  };
  pod('x', 'a', 0, '10.244.0.10');
  pod('x', 'b', 1, '10.244.1.10');
  pod('y', 'a', 1, '10.244.1.11');
  pod('kube-system', 'agent', 0, '10.89.0.10', { hostNetwork: true });
  pods.set('x/pending', { metadata: { name: 'pending', namespace: 'x' }, spec: { containers: [] } });
  const pmap = new Map<string, NetworkPolicy>();
  for (const p of policies) {
    const kind = p.kind ?? 'NetworkPolicy';
    pmap.set(`${kind}:${p.ns}/${p.name}`, { kind, metadata: { name: p.name, namespace: p.ns }, spec: p.spec });
  }
  return { namespaces, pods, nodes, policies: pmap, resourceVersion: '1' };
}

const denyAll = { ns: 'x', name: 'default-deny', spec: { podSelector: {}, policyTypes: ['Ingress'] } };
const allowB = {
  ns: 'x', name: 'allow-b',
  spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 'http' }] }] },
};

describe('trace', () => {
  it('no policy: allowed, nothing isolates either side', () => {
    const t = trace(view(), { src: 'x/b', dst: 'x/a', port: 80, protocol: 'TCP' });
    expect(t.verdict).toBe('allowed');
    expect(t.steps.map((s) => [s.direction, s.pod, s.node, s.policy])).toEqual([
      ['egress', 'x/b', 'n1', 'none'], ['ingress', 'x/a', 'n0', 'none'],
    ]);
    expect(t.srcIp).toBe('10.244.1.10');
  });

  it('default deny: denied, decided by default-deny, naming the isolating policy', () => {
    const t = trace(view([denyAll]), { src: 'y/a', dst: 'x/a', port: 80, protocol: 'TCP' });
    expect(t.verdict).toBe('denied');
    expect(t.decidedBy).toMatchObject({ direction: 'ingress', pod: 'x/a', policy: 'default-deny', isolatedBy: ['NetworkPolicy:x/default-deny'] });
    expect(t.decidedBy!.explanation).toMatch(/^denied: no rule allows peer .*isolated for ingress by NetworkPolicy:x\/default-deny/);
  });

  it('an allow policy: allowed by it (named port resolved), other ports and peers still denied', () => {
    const v = view([denyAll, allowB]);
    const ok = trace(v, { src: 'x/b', dst: 'x/a', port: 80, protocol: 'TCP' });
    expect(ok.verdict).toBe('allowed');
    expect(ok.decidedBy).toMatchObject({ direction: 'ingress', policy: 'NetworkPolicy:x/allow-b', ruleIndex: 0 });
    expect(trace(v, { src: 'x/b', dst: 'x/a', port: 81, protocol: 'TCP' }).decidedBy?.policy).toBe('default-deny');
    expect(trace(v, { src: 'x/b', dst: 'x/a', port: 80, protocol: 'UDP' }).verdict).toBe('denied');
    expect(trace(v, { src: 'y/a', dst: 'x/a', port: 80, protocol: 'TCP' }).verdict).toBe('denied');
  });

  it('egress is decided on the source side, before ingress', () => {
    const egressDeny = { ns: 'x', name: 'no-egress', spec: { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Egress'] } };
    const t = trace(view([egressDeny]), { src: 'x/b', dst: 'x/a', port: 80, protocol: 'TCP' });
    expect(t.verdict).toBe('denied');
    expect(t.decidedBy).toMatchObject({ direction: 'egress', pod: 'x/b', node: 'n1', policy: 'default-deny' });
  });

  it('an address outside the cluster as the source: only the destination ingress applies', () => {
    const cidr = {
      ns: 'x', name: 'from-outside',
      spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '192.0.2.0/24' } }] }] },
    };
    const t = trace(view([cidr]), { src: '192.0.2.7', dst: 'x/a', port: 443, protocol: 'TCP' });
    expect(t.steps).toHaveLength(1);
    expect(t.decidedBy).toMatchObject({ policy: 'NetworkPolicy:x/from-outside' });
    expect(trace(view([cidr]), { src: '198.51.100.1', dst: 'x/a', port: 443, protocol: 'TCP' }).verdict).toBe('denied');
  });

  it('unknown, hostNetwork and IP-less pods are clear errors', () => {
    const v = view();
    expect(() => trace(v, { src: 'x/nope', dst: 'x/a', port: 80, protocol: 'TCP' })).toThrow(new InspectError('PAL_INSPECT_NOT_FOUND', 'pod x/nope not found'));
    expect(() => trace(v, { src: 'kube-system/agent', dst: 'x/a', port: 80, protocol: 'TCP' })).toThrow(/host network/);
    expect(() => trace(v, { src: 'x/pending', dst: 'x/a', port: 80, protocol: 'TCP' })).toThrow(/not scheduled/);
  });
});

describe('effective policy', () => {
  it('lists each allow with its peer pods, ports and contributing policy', () => {
    const p = effectivePolicy(view([denyAll, allowB]), 'x/a');
    expect(p).toMatchObject({ pod: 'x/a', node: 'n0', ip: '10.244.0.10' });
    expect(p.ingress.enforced).toBe(true);
    expect(p.ingress.policies).toEqual(['NetworkPolicy:x/allow-b', 'NetworkPolicy:x/default-deny']);
    expect(p.ingress.rules.map((r) => [r.peer.text, r.ports, r.policy, r.ruleIndex])).toEqual([
      ['x/b', 'TCP/80', 'NetworkPolicy:x/allow-b', 0],
    ]);
    expect(p.egress).toEqual({ enforced: false, policies: [], rules: [] });
  });

  it('an isolated pod with no allow rules: enforced, nothing listed', () => {
    const p = effectivePolicy(view([denyAll]), 'x/b');
    expect(p.ingress).toEqual({ enforced: true, policies: ['NetworkPolicy:x/default-deny'], rules: [] });
  });

  it('PalisadeNetworkPolicy http rules: the port redirects to the L7 proxy (with the default proxy port)', () => {
    const pnp = {
      kind: 'PalisadeNetworkPolicy', ns: 'x', name: 'api',
      spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 80, http: [{ method: 'GET', path: '/public' }] }] }] },
    };
    const p = effectivePolicy(view([pnp]), 'x/a');
    expect(p.ingress.rules.map((r) => [r.peer.kind, r.ports, r.policy, r.l7])).toEqual([['any', 'TCP/80', 'PalisadeNetworkPolicy:x/api', true]]);
    const t = trace(view([pnp]), { src: 'y/a', dst: 'x/a', port: 80, protocol: 'TCP' });
    expect(t.decidedBy).toMatchObject({ policy: 'PalisadeNetworkPolicy:x/api', l7: true });
    // Without a proxy on the nodes, http rules fail closed: a problem, nothing allowed.
    const closed = effectivePolicy(view([pnp]), 'x/a', { l7ProxyPort: 0 });
    expect(closed.ingress.rules).toEqual([]);
    expect(closed.problems[0]).toMatchObject({ policy: 'PalisadeNetworkPolicy:x/api', message: expect.stringContaining('no proxy') });
  });

  it('namespace-wide peers and any-peer rules', () => {
    const ns = {
      ns: 'x', name: 'from-y',
      spec: {
        podSelector: {}, policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'y' } } }] }],
        egress: [{ ports: [{ protocol: 'UDP', port: 53 }] }],
      },
    };
    const p = effectivePolicy(view([ns]), 'x/a');
    expect(p.ingress.rules.map((r) => [r.peer.text, r.ports])).toEqual([['y/a', 'any']]);
    const everyNs = { ns: 'x', name: 'from-all', spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 80 }] }] } };
    const all = effectivePolicy(view([everyNs]), 'x/a');
    expect(all.ingress.rules.map((r) => [r.peer.text, r.ports])).toEqual([['any pod (every namespace)', 'TCP/80']]);
    expect(trace(view([everyNs]), { src: 'y/a', dst: 'x/a', port: 80, protocol: 'TCP' }).decidedBy?.policy).toBe('NetworkPolicy:x/from-all');
    expect(trace(view([everyNs]), { src: '192.0.2.1', dst: 'x/a', port: 80, protocol: 'TCP' }).verdict).toBe('denied');
    expect(p.egress.rules.map((r) => [r.peer.kind, r.ports, r.policy])).toEqual([['any', 'UDP/53', 'NetworkPolicy:x/from-y']]);
  });
});
