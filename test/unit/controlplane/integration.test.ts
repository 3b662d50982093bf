/**
 * The control plane end to end without root: real informers (client-node) against the
 * in-memory API server, the real compiler, a map-backed datapath. After every API change,
 * `waitFor(<rv of the change>)` must leave the datapath equal to what the compiler says
 * for the API's state at that moment.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../../pkg/apiserver/index.ts';
import { createKubernetesControlPlane, type KubernetesControlPlane } from '../../../pkg/controlplane/kubernetes.ts';
import { MemoryRouting } from '../../../pkg/controlplane/routes.ts';
import type { DatapathState } from '../../../pkg/datapath/types.ts';
import type { LocalEndpoint, NetworkPolicy, Node, Namespace, Pod } from '../../../pkg/policy/snapshot.ts';
import { MemoryDatapath } from '../../../pkg/datapath/memory/index.ts';
import { PROTO_TCP } from '../../../pkg/datapath/types.ts';
import { putObject, startControlPlane, tempDir, teardown } from './apirig.ts';
import { canonical, RecordingLogger } from './fakes.ts';
import { allowFrom, denyAll, endpoint, namespace, node, NODE, pod } from './fixtures.ts';

const CRDS = new URL('../../../manifests/crds.yaml', import.meta.url).pathname;

type Obj = Record<string, unknown> & { metadata: { name: string; namespace?: string } };

class Api {
  readonly server: ApiServer;
  constructor(server: ApiServer) {
    this.server = server;
  }

  apply(o: Obj): void {
    const apiVersion = (o.apiVersion as string | undefined) ?? (o.kind === 'NetworkPolicy' ? 'networking.k8s.io/v1' : o.kind === 'PalisadeNetworkPolicy' ? 'palisade.dev/v1alpha1' : 'v1');
    // Pods and Nodes get their status the way the kubelet sets it.
    putObject(this.server, { ...structuredClone(o), apiVersion, kind: String(o.kind) }, o.kind === 'Pod' || o.kind === 'Node');
  }

  delete(kind: string, ns: string | undefined, name: string): void {
    const apiVersion = kind === 'NetworkPolicy' ? 'networking.k8s.io/v1' : kind === 'PalisadeNetworkPolicy' ? 'palisade.dev/v1alpha1' : 'v1';
    this.server.delete(apiVersion, kind, ns, name);
  }

  get rv(): string {
    return this.server.resourceVersion();
  }
}

/** What the compiler says for the API server's current objects (raw, unslimmed). */
function expectedFromApi(server: ApiServer, cp: KubernetesControlPlane, endpoints: LocalEndpoint[], crd = true): DatapathState {
  const namespaces = new Map(server.list('v1', 'Namespace').map((o) => [o.metadata.name!, o as unknown as Namespace]));
  const pods = new Map(server.list('v1', 'Pod').map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, o as unknown as Pod]));
  const nodes = new Map(server.list('v1', 'Node').map((o) => [o.metadata.name!, o as unknown as Node]));
  const policies = new Map<string, NetworkPolicy>();
  for (const o of server.list('networking.k8s.io/v1', 'NetworkPolicy')) policies.set(`NetworkPolicy:${o.metadata.namespace}/${o.metadata.name}`, o as unknown as NetworkPolicy);
  if (crd) {
    for (const o of server.list('palisade.dev/v1alpha1', 'PalisadeNetworkPolicy')) policies.set(`PalisadeNetworkPolicy:${o.metadata.namespace}/${o.metadata.name}`, o as unknown as NetworkPolicy);
  }
  return canonical(cp.compiler.compile({
    revision: 0, nodeName: NODE, namespaces, pods, nodes, policies,
    endpoints: [...endpoints].sort((a, b) => a.endpointId - b.endpointId),
  }).state);
}

describe('control plane against the in-memory API server', () => {
  let server: ApiServer;
  let api: Api;
  let dir: string;
  let cp: KubernetesControlPlane;
  const datapath = new MemoryDatapath();
  const routing = new MemoryRouting();
  const log = new RecordingLogger();
  const eps = [endpoint(1, 'x', 'a', '10.244.0.11'), endpoint(2, 'x', 'b', '10.244.0.12'), endpoint(3, 'y', 'a', '10.244.0.21')];
  let live = [...eps];

  async function converged(): Promise<void> {
    const rv = api.rv;
    const res = await cp.waitFor(rv, 10_000);
    expect(BigInt(res.resourceVersion)).toBeGreaterThanOrEqual(BigInt(rv));
    expect(canonical(await datapath.dump())).toEqual(expectedFromApi(server, cp, live));
  }

  beforeAll(async () => {
    dir = await tempDir('pal-cp-');
    server = await startApiServer({ crdFiles: [CRDS] });
    api = new Api(server);
    api.apply(namespace('x'));
    api.apply(namespace('y', { team: 'blue' }));
    api.apply(pod('x', 'a', '10.244.0.11'));
    api.apply(pod('x', 'b', '10.244.0.12'));
    api.apply(pod('y', 'a', '10.244.0.21'));
    api.apply(pod('y', 'b', '10.244.1.22', { pod: 'b' }, 'node-1'));
    api.apply(node(NODE, '10.244.0.0/24', '10.89.0.10'));
    api.apply(node('node-1', '10.244.1.0/24', '10.89.0.11'));
    // Present before start, so the initial list (not the watch) delivers it: `from` peers
    // and `to` peers must survive the list path exactly.
    api.apply(allowFrom('y', 'listed', 'a', 'b', 7070));
    api.apply({ kind: 'NetworkPolicy', metadata: { name: 'listed-egress', namespace: 'y' }, spec: { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 7071 }] }] } });
    cp = await startControlPlane(server, dir, {
      nodeName: NODE, datapath, routing, log,
      identityStatePath: join(dir, 'state', 'identities.json'), minIntervalMs: 1, maxDelayMs: 10,
    }, eps);
  });

  afterAll(() => teardown(cp, server, dir));

  it('realizes the initial state after sync', async () => {
    expect(cp.cluster.synced).toBe(true);
    await converged();
    // y/a (endpoint 3) accepts 7070 only from pod=b peers, not from any peer.
    const listed = [...datapath.policy.values()].filter((e) => (e as { port: number }).port === 7070) as { peer: number }[];
    expect(listed.length).toBeGreaterThan(0);
    expect(listed.every((e) => e.peer !== 0)).toBe(true);
    expect(routing.state.routes).toEqual([{ dst: '10.244.1.0/24', via: '10.89.0.11', node: 'node-1' }]);
  });

  it('applies, updates and deletes NetworkPolicies', async () => {
    api.apply(denyAll('x'));
    await converged();
    const ep = [...datapath.endpoints.values()].find((e) => (e as { endpointId: number }).endpointId === 1);
    expect(ep).toMatchObject({ ingressEnforced: true, egressEnforced: true });
    // A new TCP connection from x/b (10.244.0.12) entering x/a (endpoint 1) on `port`.
    const syn = (port: number) => datapath.verdict({
      ifindex: eps[0]!.ifindex, direction: 'ingress', srcIp: '10.244.0.12', dstIp: '10.244.0.11',
      protocol: PROTO_TCP, srcPort: 40000 + port, dstPort: port, tcpFlags: 0x02,
    }).verdict;
    expect(syn(80)).toBe('dropped');
    api.apply(allowFrom('x', 'ab', 'a', 'b', 80));
    await converged();
    expect(syn(80)).toBe('allowed');
    expect(syn(81)).toBe('dropped');
    api.apply(allowFrom('x', 'ab', 'a', 'b', 8080));
    await converged();
    expect(syn(8080)).toBe('allowed');
    expect(syn(80)).toBe('dropped');
    expect([...datapath.policy.values()].some((e) => (e as { port: number }).port === 8080)).toBe(true);
    expect([...datapath.policy.values()].some((e) => (e as { port: number }).port === 80)).toBe(false);
    api.delete('NetworkPolicy', 'x', 'deny');
    await converged();
  });

  it('follows pod and namespace relabels in both roles', async () => {
    api.apply(allowFrom('y', 'from-blue', 'a', 'b', 81));
    api.apply({ kind: 'NetworkPolicy', metadata: { name: 'ns-peer', namespace: 'x' }, spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] } });
    await converged();
    api.apply(pod('x', 'b', '10.244.0.12', { pod: 'a' })); // x/b becomes a subject of ns-peer
    await converged();
    api.apply(namespace('y', { team: 'red' })); // y no longer a peer of ns-peer
    await converged();
    api.apply(namespace('y', { team: 'blue' }));
    api.apply(pod('y', 'a', '10.244.0.21', { pod: 'zzz' })); // y/a no longer selected by from-blue
    await converged();
  });

  it('adds and removes pods and namespaces', async () => {
    api.apply(namespace('z'));
    api.apply(pod('z', 'c', '10.244.1.30', { pod: 'c' }, 'node-1'));
    api.apply({ kind: 'NetworkPolicy', metadata: { name: 'from-z', namespace: 'x' }, spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }] }] } });
    await converged();
    api.delete('Pod', 'z', 'c');
    await converged();
    api.delete('NetworkPolicy', 'x', 'from-z');
    api.delete('Namespace', undefined, 'z');
    await converged();
    // A local pod goes away (CNI DEL) and comes back.
    await cp.removeEndpoint(3);
    live = live.filter((e) => e.endpointId !== 3);
    api.delete('Pod', 'y', 'a');
    await converged();
    api.apply(pod('y', 'a', '10.244.0.23'));
    const back = { ...endpoint(4, 'y', 'a', '10.244.0.23') };
    await cp.upsertEndpoint(back);
    live.push(back);
    await converged();
  });

  it('realizes PalisadeNetworkPolicies (CRD installed)', async () => {
    api.apply({
      kind: 'PalisadeNetworkPolicy', apiVersion: 'palisade.dev/v1alpha1', metadata: { name: 'l7', namespace: 'x' },
      spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 80, protocol: 'TCP', http: [{ method: 'GET', path: '/public' }] }] }] },
    });
    await converged();
    expect(cp.status().endpoints.find((e) => e.endpointId === 1)?.policy?.ingressPolicies).toContain('PalisadeNetworkPolicy:x/l7');
  });

  it('coalesces a burst of 100 API changes into a few reconciles', async () => {
    const before = cp.reconciles;
    for (let i = 0; i < 100; i++) {
      if (i % 2) api.apply(allowFrom('x', `burst-${i}`, 'a', 'b', 20000 + i));
      else api.apply(pod('x', 'b', '10.244.0.12', { pod: 'b', round: String(i) }));
    }
    await converged();
    // Events arrive over several socket reads; the runner still batches them.
    expect(cp.reconciles - before).toBeLessThanOrEqual(10);
    expect([...datapath.policy.values()].some((e) => (e as { port: number }).port === 20099)).toBe(true);
  });

  it('relists after 410 Gone and catches up with what happened meanwhile', async () => {
    server.compact();
    server.closeWatches();
    api.apply(allowFrom('x', 'after-gone', 'b', 'a', 9090));
    api.delete('Pod', 'y', 'b');
    await converged();
    expect(log.records.some((r) => r.msg.includes('410 Gone'))).toBe(true);
  });

  it('reports status the agent API serves', async () => {
    await converged();
    const st = cp.status();
    expect(st.ready).toBe(true);
    expect(st.realizedResourceVersion).not.toBe('');
    expect(BigInt(st.resourceVersion)).toBeGreaterThanOrEqual(BigInt(st.realizedResourceVersion));
    expect(st.endpoints.map((e) => e.endpointId)).toEqual([1, 2, 4]);
    expect(st.endpoints.every((e) => e.realizedRevision === st.realizedRevision)).toBe(true);
  });
});

describe('control plane without the PalisadeNetworkPolicy CRD', () => {
  it('logs once and becomes ready on NetworkPolicies alone', async () => {
    const dir = await tempDir('pal-cp-');
    const server = await startApiServer();
    const api = new Api(server);
    const log = new RecordingLogger();
    const datapath = new MemoryDatapath();
    let cp: KubernetesControlPlane | undefined;
    try {
      await server.writeKubeconfig(join(dir, 'kubeconfig'));
      api.apply(namespace('x'));
      api.apply(pod('x', 'a', '10.244.0.11'));
      api.apply(denyAll('x'));
      cp = await createKubernetesControlPlane({ kubeconfig: join(dir, 'kubeconfig'), nodeName: NODE, datapath, log });
      const ep = endpoint(1, 'x', 'a', '10.244.0.11');
      void cp.upsertEndpoint(ep);
      await cp.start();
      await cp.waitFor(api.rv, 10_000);
      expect(canonical(await datapath.dump())).toEqual(expectedFromApi(server, cp, [ep], false));
      expect(log.count('resource not served (CRD not installed); continuing without it')).toBe(1);
    } finally {
      await teardown(cp, server, dir);
    }
  });

  it('rejects a missing kubeconfig with a clear error', async () => {
    await expect(createKubernetesControlPlane({ kubeconfig: '/nonexistent/kubeconfig', nodeName: NODE, datapath: new MemoryDatapath() }))
      .rejects.toThrow(/loading kubeconfig \/nonexistent\/kubeconfig/);
  });
});
