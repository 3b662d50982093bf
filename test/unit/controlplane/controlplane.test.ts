import { afterEach, describe, expect, it } from 'vitest';
import { ControlPlane, ControlPlaneError } from '../../../pkg/controlplane/controlplane.ts';
import { MemoryRouting } from '../../../pkg/controlplane/routes.ts';
import { changeSize } from '../../../pkg/datapath/diff.ts';
import { IDENTITY_WORLD } from '../../../pkg/identity/reserved.ts';
import type { Cluster, Coverage } from '../../../pkg/k8s/cluster.ts';
import { MemoryCluster } from '../../../pkg/k8s/memory.ts';
import { PolicyCompiler } from '../../../pkg/policy/compile.ts';
import { CidrIdentityAllocator, LabelIdentityAllocator } from '../../../pkg/identity/allocator.ts';
import { canonical, MapDatapath, RecordingLogger } from './fakes.ts';
import {
  allowFrom, denyAll, endpoint, EP_XA, EP_XB, expected, namespace, node, NODE, pod, seed,
} from './fixtures.ts';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

function setup(opts: { synced?: boolean; datapath?: MapDatapath; compiler?: PolicyCompiler; routing?: MemoryRouting; cluster?: MemoryCluster } = {}) {
  const cluster = opts.cluster ?? new MemoryCluster({ syncOnStart: opts.synced ?? true });
  const datapath = opts.datapath ?? new MapDatapath();
  const compiler = opts.compiler ?? new PolicyCompiler();
  const log = new RecordingLogger();
  const cp = new ControlPlane({
    cluster, datapath, compiler, nodeName: NODE, log, routing: opts.routing,
    minIntervalMs: 1, maxDelayMs: 10, retry: { baseMs: 5, maxMs: 10 }, endpointTimeoutMs: 3000,
  });
  stops.push(() => cp.stop());
  return { cluster, datapath, compiler, cp, log };
}

async function state(dp: MapDatapath) {
  return canonical(await dp.dump());
}

describe('ControlPlane reconciler', () => {
  it('realizes what the compiler says, and coalesces a burst of 100 changes into few reconciles', async () => {
    const { cluster, datapath, compiler, cp } = setup();
    seed(cluster);
    await cp.start();
    await Promise.all([cp.upsertEndpoint(EP_XA), cp.upsertEndpoint(EP_XB)]);
    await cp.waitFor(cluster.resourceVersion, 2000);
    expect(cp.ready).toBe(true);
    expect(await state(datapath)).toEqual(expected(cluster, compiler, [EP_XA, EP_XB]));

    const before = cp.reconciles;
    let rv = '';
    for (let i = 0; i < 100; i++) {
      // 50 policies, then 50 relabels of x/b between two label values.
      if (i < 50) rv = cluster.apply(allowFrom('x', `p${i}`, 'a', `peer${i}`, 1000 + i));
      else rv = cluster.apply(pod('x', 'b', '10.244.0.12', { pod: i % 2 ? 'peer7' : 'peer8' }));
    }
    const res = await cp.waitFor(rv, 2000);
    const reconciles = cp.reconciles - before;
    expect(reconciles).toBeGreaterThanOrEqual(1);
    expect(reconciles).toBeLessThanOrEqual(3);
    expect(res.revision).toBe(cp.revision);
    const want = expected(cluster, compiler, [EP_XA, EP_XB]);
    expect(await state(datapath)).toEqual(want);
    // The last relabel (i = 99) leaves x/b as peer7: policy p7 selects it as a peer, p8 not.
    expect(cluster.store.get('pods', 'x/b')!.metadata.labels).toEqual({ pod: 'peer7' });
    const xb = datapath.maps.ipcache.get('10.244.0.12/32') as { identity: number };
    const peersOn = (port: number) => want.policy.filter((e) => e.endpointId === 1 && e.port === port).map((e) => e.peer);
    expect(peersOn(1007)).toContain(xb.identity);
    expect(peersOn(1008)).not.toContain(xb.identity);
  });

  it('waitFor resolves only once the datapath holds the state at that resourceVersion', async () => {
    const { cluster, datapath, compiler, cp } = setup();
    seed(cluster);
    await cp.start();
    await cp.upsertEndpoint(EP_XA);
    datapath.applyDelayMs = 20;
    const rv = cluster.apply(denyAll('x'));
    const seen: boolean[] = [];
    const res = await cp.waitFor(rv, 2000).then((r) => {
      seen.push(datapath.maps.endpoints.get(String(EP_XA.ifindex)) !== undefined);
      return r;
    });
    expect(seen).toEqual([true]);
    const ep = [...datapath.maps.endpoints.values()][0] as { ingressEnforced: boolean; egressEnforced: boolean };
    expect(ep).toMatchObject({ ingressEnforced: true, egressEnforced: true });
    expect(res.resourceVersion).toBe(rv);
    expect(await state(datapath)).toEqual(expected(cluster, compiler, [EP_XA]));
  });

  it('a change made during a running reconcile is realized by the next one before waitFor resolves', async () => {
    const { cluster, datapath, compiler, cp } = setup();
    seed(cluster);
    await cp.start();
    await cp.upsertEndpoint(EP_XA);
    datapath.applyDelayMs = 30;
    cluster.apply(denyAll('x'));
    await new Promise((r) => setTimeout(r, 10)); // reconcile for deny-all is now applying
    const rv = cluster.apply(allowFrom('x', 'allow-b', 'a', 'b', 80));
    await cp.waitFor(rv, 3000);
    const want = expected(cluster, compiler, [EP_XA]);
    expect(want.policy.some((e) => e.port === 80)).toBe(true);
    expect(await state(datapath)).toEqual(want);
  });

  it('waitFor: future resourceVersions wait; bad input and timeouts reject with codes', async () => {
    const { cluster, cp } = setup();
    seed(cluster);
    await cp.start();
    await cp.whenReady();
    const future = BigInt(cluster.resourceVersion) + 1n;
    let done = false;
    const p = cp.waitFor(future, 2000).then(() => { done = true; });
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    cluster.bookmark();
    await p;
    await expect(cp.waitFor('abc', 10)).rejects.toMatchObject({ code: 'PAL_BAD_RESOURCE_VERSION' });
    await expect(cp.waitFor(future + 5n, 20)).rejects.toMatchObject({ code: 'PAL_WAIT_TIMEOUT' });
  });

  it('confirms a quiet-based coverage only after pending I/O had a chance to run', async () => {
    // A cluster whose coverage answer the test controls.
    const inner = new MemoryCluster();
    let cov: Coverage = { covered: true, exact: false };
    const listeners = new Set<() => void>();
    const cluster: Cluster = {
      store: inner.store, start: () => inner.start(), stop: () => inner.stop(),
      get synced() { return inner.synced; }, whenSynced: () => inner.whenSynced(),
      onProgress: (l) => { listeners.add(l); return () => listeners.delete(l); },
      coverage: () => cov,
    };
    seed(inner);
    const { cp } = setup({ cluster: cluster as never });
    await cp.start();
    await cp.whenReady();
    let resolved = false;
    const p = cp.waitFor('1', 2000).then(() => { resolved = true; });
    // Data that was already waiting in a socket shows up in the next I/O phase.
    setImmediate(() => { cov = { covered: false }; });
    await new Promise((r) => setTimeout(r, 30));
    expect(resolved).toBe(false);
    cov = { covered: true, exact: true };
    for (const l of listeners) l();
    await p;
    expect(resolved).toBe(true);
  });

  it('never compiles before the initial sync: new endpoints are isolated both ways until then', async () => {
    const { cluster, datapath, compiler, cp } = setup({ synced: false });
    seed(cluster);
    await cp.start();
    await cp.upsertEndpoint(EP_XA); // resolves with the fail-closed entry in place
    expect(cp.ready).toBe(false);
    const s = await state(datapath);
    expect(s.endpoints).toEqual([{
      ifindex: EP_XA.ifindex, endpointId: 1, identity: IDENTITY_WORLD, ipv4: EP_XA.ipv4,
      ingressEnforced: true, egressEnforced: true,
    }]);
    expect(s.policy).toEqual([]);
    let waited = false;
    const w = cp.waitFor(cluster.resourceVersion, 2000).then(() => { waited = true; });
    await new Promise((r) => setTimeout(r, 20));
    expect(waited).toBe(false);
    cluster.markSynced();
    await w;
    expect(cp.ready).toBe(true);
    expect(await state(datapath)).toEqual(expected(cluster, compiler, [EP_XA]));
  });

  it('re-derives the applied state from the datapath on restart: the first diff is empty', async () => {
    const datapath = new MapDatapath();
    const cluster = new MemoryCluster();
    seed(cluster);
    cluster.apply(denyAll('x'));
    cluster.apply(allowFrom('x', 'ab', 'a', 'b', 80));
    const first = setup({ datapath, cluster });
    await first.cp.start();
    await Promise.all([first.cp.upsertEndpoint(EP_XA), first.cp.upsertEndpoint(EP_XB)]);
    // History that moves identity numbers around: a relabel back and forth.
    cluster.apply(pod('x', 'b', '10.244.0.12', { pod: 'tmp' }));
    await first.cp.waitFor(cluster.resourceVersion, 2000);
    cluster.apply(pod('x', 'b', '10.244.0.12', { pod: 'b' }));
    await first.cp.waitFor(cluster.resourceVersion, 2000);
    await first.cp.stop();
    const applied = await state(datapath);
    const changesBefore = datapath.changes.length;

    // The agent restores its identity allocators (persisted) and re-registers endpoints.
    const compiler = new PolicyCompiler({
      labelIdentities: LabelIdentityAllocator.fromJSON(JSON.parse(JSON.stringify(first.compiler.labelIdentities.toJSON()))),
      cidrIdentities: CidrIdentityAllocator.fromJSON(JSON.parse(JSON.stringify(first.compiler.cidrIdentities.toJSON()))),
    });
    const second = setup({ datapath, cluster: new MemoryCluster({ syncOnStart: false }), compiler });
    for (const o of [...cluster.store.list('namespaces'), ...cluster.store.list('pods'), ...cluster.store.list('nodes'), ...cluster.store.list('policies')]) {
      second.cluster.apply(o as never);
    }
    void second.cp.upsertEndpoint(EP_XA);
    void second.cp.upsertEndpoint(EP_XB);
    // Registered before start: nothing may run until start() has read the datapath.
    await new Promise((r) => setTimeout(r, 20));
    expect(datapath.changes.length).toBe(changesBefore);
    await second.cp.start();
    await new Promise((r) => setTimeout(r, 20));
    // Before sync: nothing disturbed (the restored endpoints keep their realized policy).
    expect(datapath.changes.length).toBe(changesBefore);
    second.cluster.markSynced();
    await second.cp.whenReady();
    expect(await state(datapath)).toEqual(applied);
    expect(datapath.changes.slice(changesBefore).every((c) => changeSize(c) === 0)).toBe(true);
    expect(second.cp.status().lastReconcile?.operations).toBe(0);
  });

  it('recovers from a failed apply by re-reading the datapath and retrying', async () => {
    const { cluster, datapath, compiler, cp } = setup();
    seed(cluster);
    await cp.start();
    await cp.upsertEndpoint(EP_XA);
    datapath.failNext = new Error('map full');
    const rv = cluster.apply(denyAll('x'));
    const res = await cp.waitFor(rv, 3000);
    expect(res.resourceVersion).toBe(rv);
    expect(await state(datapath)).toEqual(expected(cluster, compiler, [EP_XA]));
  });

  it('removes an endpoint and everything keyed by it; removal is idempotent', async () => {
    const { cluster, datapath, compiler, cp } = setup();
    seed(cluster);
    cluster.apply(denyAll('x'));
    await cp.start();
    await Promise.all([cp.upsertEndpoint(EP_XA), cp.upsertEndpoint(EP_XB)]);
    await cp.removeEndpoint(EP_XA.endpointId);
    await cp.removeEndpoint(EP_XA.endpointId);
    const s = await state(datapath);
    expect(s.endpoints.map((e) => e.endpointId)).toEqual([2]);
    expect(s.policy.some((e) => e.endpointId === 1)).toBe(false);
    expect(s).toEqual(expected(cluster, compiler, [EP_XB]));
    expect(cp.status().endpoints.map((e) => e.endpointId)).toEqual([2]);
  });

  it('rejects a bad endpoint with a code and changes nothing', async () => {
    const { cluster, cp } = setup();
    seed(cluster);
    await cp.start();
    await cp.whenReady();
    const rev = cp.revision;
    await expect(cp.upsertEndpoint({ ...EP_XA, ipv4: '10.0.0.300' })).rejects.toBeInstanceOf(ControlPlaneError);
    await expect(cp.upsertEndpoint({ ...EP_XA, ifindex: 0 })).rejects.toMatchObject({ code: 'PAL_BAD_ENDPOINT' });
    expect(cp.revision).toBe(rev);
    expect(cp.status().endpoints).toEqual([]);
  });

  it('reports per-endpoint realized revisions, policy summaries and problems (logged once)', async () => {
    const { cluster, cp, log } = setup();
    seed(cluster);
    await cp.start();
    await cp.upsertEndpoint(EP_XA);
    const bad = { kind: 'NetworkPolicy', metadata: { name: 'bad', namespace: 'x' }, spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 'nope' } }] }] } };
    cluster.apply(bad);
    await cp.waitFor(cluster.resourceVersion, 2000);
    cluster.apply(namespace('z'));
    const rv = cluster.apply(pod('x', 'c', '10.244.0.13'));
    await cp.waitFor(rv, 2000);
    const st = cp.status();
    expect(st.problems).toEqual([expect.objectContaining({ policy: 'NetworkPolicy:x/bad', field: expect.stringContaining('ipBlock') })]);
    expect(log.count('policy problem (fails closed)')).toBe(1);
    expect(st.endpoints[0]).toMatchObject({ endpointId: 1, pod: 'x/a', realizedRevision: st.realizedRevision });
    expect(st.endpoints[0]!.policy).toMatchObject({ ingressEnforced: true, ingressPolicies: ['NetworkPolicy:x/bad'] });
    expect(st.realizedResourceVersion).toBe(rv);
    expect(st.ready && st.synced).toBe(true);
  });

  it('emits a realized event per reconcile with its latency', async () => {
    const { cluster, cp } = setup();
    seed(cluster);
    const events: { revision: number; latencyMs: number; operations: number }[] = [];
    cp.onRealized((e) => events.push(e));
    await cp.start();
    await cp.upsertEndpoint(EP_XA);
    const rv = cluster.apply(denyAll('x'));
    await cp.waitFor(rv, 2000);
    const last = events.at(-1)!;
    expect(last.revision).toBe(cp.realizedRevision);
    expect(last.operations).toBeGreaterThan(0);
    expect(last.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it('applies cross-node routes from Node objects and follows node changes', async () => {
    const routing = new MemoryRouting();
    const { cluster, cp } = setup({ routing });
    seed(cluster);
    await cp.start();
    await cp.waitFor(cluster.resourceVersion, 2000);
    expect(routing.state.routes).toEqual([{ dst: '10.244.1.0/24', via: '10.89.0.11', node: 'node-1' }]);
    expect(routing.state.masquerade).toEqual({ podCIDRs: ['10.244.0.0/24'], clusterCIDRs: ['10.244.0.0/24', '10.244.1.0/24'] });
    cluster.apply(node('node-2', '10.244.2.0/24', '10.89.0.12'));
    await cp.waitFor(cluster.resourceVersion, 2000);
    expect(routing.state.routes.map((r) => r.dst)).toEqual(['10.244.1.0/24', '10.244.2.0/24']);
    cluster.delete('nodes', 'node-1');
    const applies = routing.applies;
    await cp.waitFor(cluster.resourceVersion, 2000);
    expect(routing.state.routes.map((r) => r.dst)).toEqual(['10.244.2.0/24']);
    // A pod change does not touch routing.
    await cp.waitFor(cluster.apply(pod('x', 'z', '10.244.0.99')), 2000);
    expect(routing.applies).toBe(applies + 1);
  });

  it('an endpoint whose ifindex is reused replaces the stale one', async () => {
    const { cluster, datapath, cp } = setup();
    seed(cluster);
    await cp.start();
    await cp.upsertEndpoint(EP_XA);
    const reuse = { ...endpoint(9, 'x', 'b', '10.244.0.12'), ifindex: EP_XA.ifindex };
    await cp.upsertEndpoint(reuse);
    const s = await state(datapath);
    expect(s.endpoints.map((e) => [e.ifindex, e.endpointId])).toEqual([[EP_XA.ifindex, 9]]);
  });
});
