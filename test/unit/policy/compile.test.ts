/**
 * What the compiler emits besides verdicts: the ipcache (pods, nodes, hostNetwork pods),
 * endpoint entries and summaries, endpoints whose Pod object is missing, identities.
 */
import { describe, expect, test } from 'vitest';
import { diffState } from '../../../pkg/datapath/diff.ts';
import { IDENTITY_FIRST_LABEL, IDENTITY_HOST, IDENTITY_REMOTE_NODE } from '../../../pkg/identity/reserved.ts';
import { PolicyCompiler } from '../../../pkg/policy/compile.ts';
import { evaluate } from '../../../pkg/policy/evaluate.ts';
import { TestCluster, upstreamModel } from './cluster.ts';

const ipcacheOf = (c: TestCluster, node = 'node-0') =>
  new Map(c.result(node).state.ipcache.map((e) => [e.cidr, e.identity]));

describe('ipcache', () => {
  test('every pod IP of the cluster maps to its label identity; nodes to host / remote-node', () => {
    const c = upstreamModel();
    const ipc = ipcacheOf(c);
    expect(ipc.size).toBe(9 + 2);
    expect(ipc.get('192.168.0.10/32')).toBe(IDENTITY_HOST);
    expect(ipc.get('192.168.0.11/32')).toBe(IDENTITY_REMOTE_NODE);
    expect(ipcacheOf(c, 'node-1').get('192.168.0.11/32')).toBe(IDENTITY_HOST);
    const r = c.result('node-0');
    for (const k of c.podKeys()) {
      const id = ipc.get(`${c.ipOf(k)}/32`)!;
      expect(id).toBeGreaterThanOrEqual(IDENTITY_FIRST_LABEL);
      const [ns, name] = k.split('/');
      expect(r.identities.get(id)).toEqual({
        namespace: ns, 'pod:pod': name, 'ns:kubernetes.io/metadata.name': ns,
      });
    }
  });

  test('hostNetwork pods are not in the ipcache and have no endpoint', () => {
    const c = upstreamModel();
    c.pod('x', 'h', { hostNetwork: true, node: 0, labels: { pod: 'h' } });
    const r = c.result('node-0');
    expect(ipcacheOf(c).get('192.168.0.10/32')).toBe(IDENTITY_HOST);
    expect([...r.identities.values()].some((l) => l['pod:pod'] === 'h')).toBe(false);
    expect(r.state.endpoints).toHaveLength(5);
  });

  test("a local pod's endpoint address wins over its status", () => {
    const c = upstreamModel();
    const snap = c.snapshotFor('node-0');
    const ep = snap.endpoints.find((e) => e.podName === 'a' && e.podNamespace === 'x')!;
    const r = new PolicyCompiler().compile({ ...snap, endpoints: snap.endpoints.map((e) => (e === ep ? { ...e, ipv4: '10.244.0.99' } : e)) });
    const ipc = new Map(r.state.ipcache.map((e) => [e.cidr, e.identity]));
    expect(ipc.has('10.244.0.99/32')).toBe(true);
    expect(ipc.has(`${c.ipOf('x/a')}/32`)).toBe(false);
  });

  test('terminated pods release their IP; a running pod wins over a terminating one', () => {
    const c = upstreamModel();
    const ip = c.ipOf('y/b');
    // A completed Job pod keeps its podIP in status after the node reused the address.
    c.pod('a', 'done', { ip, labels: { pod: 'done' }, node: 0 });
    const done = c.pods.get('a/done')!;
    c.pods.set('a/done', { ...done, status: { ...done.status, phase: 'Succeeded' } });
    c.changed();
    const owner = (node: string) => c.result(node).identities.get(ipcacheOf(c, node).get(`${ip}/32`)!)!['pod:pod'];
    expect([owner('node-0'), owner('node-1')]).toEqual(['b', 'b']);
    // Seen from another node, a pod being deleted that still claims the IP loses to the
    // running owner.
    c.pods.set('a/done', { ...done, metadata: { ...done.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } });
    c.changed();
    expect(owner('node-1')).toBe('b');
  });

  test('pods without an IP yet get an identity but no ipcache entry', () => {
    const c = upstreamModel();
    const p = c.pods.get('z/c')!;
    c.pods.set('z/c', { ...p, status: { phase: 'Pending' } });
    c.changed();
    const ipc = ipcacheOf(c, 'node-1');
    expect(ipc.size).toBe(8 + 2);
    expect([...c.result('node-1').identities.values()].some((l) => l.namespace === 'z' && l['pod:pod'] === 'c')).toBe(true);
  });

  test('dual-stack pods contribute their IPv4 address only', () => {
    const c = upstreamModel();
    const p = c.pods.get('z/c')!;
    c.pods.set('z/c', { ...p, status: { ...p.status, podIP: 'fd00::5', podIPs: [{ ip: 'fd00::5' }, { ip: '10.244.0.200' }] } });
    c.changed();
    const ipc = ipcacheOf(c, 'node-1');
    expect(ipc.has('10.244.0.200/32')).toBe(true);
    expect([...ipc.keys()].some((k) => k.includes(':'))).toBe(false);
  });

  test('hostAddresses map to host', () => {
    const c = new TestCluster(1, { hostAddresses: ['10.244.0.1'] });
    c.pod('x', 'a');
    expect(ipcacheOf(c).get('10.244.0.1/32')).toBe(IDENTITY_HOST);
    c.policy('x', 'deny', { podSelector: {} });
    expect(c.canBeReachedFrom('10.244.0.1', 'x/a', 80)).toBe(true);
  });

  test('invalid options are rejected', () => {
    expect(() => new PolicyCompiler({ l7ProxyPort: 70000 })).toThrow(/l7ProxyPort/);
    expect(() => new PolicyCompiler({ hostAddresses: ['nope'] })).toThrow(/host address/);
  });
});

describe('endpoints', () => {
  test('one entry per local endpoint with identity and enforcement; summaries name the policies', () => {
    const c = upstreamModel();
    c.policy('x', 'ing', { podSelector: { matchLabels: { pod: 'a' } } });
    c.policy('x', 'eg', { podSelector: {}, policyTypes: ['Egress'] });
    const r = c.result('node-0');
    expect(r.state.endpoints.map((e) => e.endpointId)).toEqual(
      c.podKeys().filter((k) => c.nodeOf(k) === 'node-0').map((k) => c.endpointOf(k)).sort((a, b) => a - b));
    const xa = r.state.endpoints.find((e) => e.endpointId === c.endpointOf('x/a'))!;
    expect(xa).toMatchObject({ ingressEnforced: true, egressEnforced: true, ipv4: c.ipOf('x/a') });
    expect(xa.identity).toBe(ipcacheOf(c).get(`${c.ipOf('x/a')}/32`));
    expect(r.endpoints.get(xa.endpointId)).toEqual({
      endpointId: xa.endpointId, pod: 'x/a', identity: xa.identity, ingressEnforced: true, egressEnforced: true,
      ingressPolicies: ['NetworkPolicy:x/ing'], egressPolicies: ['NetworkPolicy:x/eg'],
    });
    const xc = r.endpoints.get(c.endpointOf('x/c'))!;
    expect(xc).toMatchObject({ ingressEnforced: false, egressEnforced: true, ingressPolicies: [] });
    const yb = r.endpoints.get(c.endpointOf('y/b'))!;
    expect(yb).toMatchObject({ ingressEnforced: false, egressEnforced: false });
  });

  test('an endpoint whose Pod object is missing fails closed with a namespace-only identity', () => {
    const c = upstreamModel();
    c.policy('x', 'allow-all-from-y', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }] }] });
    c.policy('x', 'only-a', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{}] });
    const snap = c.snapshotFor('node-0');
    const ghost = { endpointId: 77, ifindex: 1077, ifname: 'pal77', containerId: 'c77', podNamespace: 'x', podName: 'ghost', ipv4: '10.244.0.77' };
    const r = new PolicyCompiler().compile({ ...snap, endpoints: [...snap.endpoints, ghost] });
    const e = r.state.endpoints.find((x) => x.endpointId === 77)!;
    expect(e).toMatchObject({ ingressEnforced: true, egressEnforced: true });
    expect(r.identities.get(e.identity)).toEqual({ namespace: 'x', 'ns:kubernetes.io/metadata.name': 'x' });
    expect(r.state.ipcache.find((x) => x.cidr === '10.244.0.77/32')?.identity).toBe(e.identity);
    const q = (direction: 'ingress' | 'egress', remoteIp: string) =>
      evaluate(r.state, { endpointId: 77, direction, remoteIp, protocol: 6, port: 80 }).allowed;
    expect(q('ingress', c.ipOf('y/a'))).toBe(true); // podSelector {} still applies
    expect(q('ingress', c.ipOf('z/a'))).toBe(false);
    expect(q('egress', c.ipOf('z/a'))).toBe(false); // isolated, nothing selects it for egress
    expect(q('ingress', '192.168.0.10')).toBe(true); // its node still reaches it
  });
});

describe('identities', () => {
  test('pods with equal label sets share one identity; pod churn touches only the ipcache', () => {
    const c = upstreamModel();
    c.policy('x', 'from-b', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: 'b' } } }] }] });
    const before = c.result('node-0');
    c.pod('y', 'b2', { labels: { pod: 'b' }, node: 1 });
    const after = c.result('node-0');
    const change = diffState(after.state, before.state);
    expect(change.upsert.ipcache).toEqual([{ cidr: `${c.ipOf('y/b2')}/32`, identity: before.state.ipcache.find((e) => e.cidr === `${c.ipOf('y/b')}/32`)!.identity }]);
    expect([change.upsert.policy, change.delete.policy, change.upsert.cidrs, change.upsert.endpoints, change.delete.ipcache])
      .toEqual([[], [], [], [], []]);
    expect(c.can('y/b2', 'x/a', 80)).toBe(true);
  });

  test('the same labels in different namespaces are different identities', () => {
    const c = upstreamModel();
    const ipc = ipcacheOf(c);
    expect(ipc.get(`${c.ipOf('x/a')}/32`)).not.toBe(ipc.get(`${c.ipOf('y/a')}/32`));
  });

  test('namespace labels are part of the identity', () => {
    const c = upstreamModel();
    const id1 = ipcacheOf(c).get(`${c.ipOf('y/a')}/32`);
    c.relabelNs('y', { team: 'blue' });
    const id2 = ipcacheOf(c).get(`${c.ipOf('y/a')}/32`);
    expect(id2).not.toBe(id1);
    expect(c.result('node-0').identities.get(id2!)).toMatchObject({ 'ns:team': 'blue' });
  });
});
