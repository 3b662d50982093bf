/**
 * Status objects against the in-repo API server through @kubernetes/client-node (the
 * agent's own StatusApi): PalisadeEndpoint/PalisadeNode appear with the right fields and
 * printer columns, a burst of 200 endpoint changes makes bounded writes, a removed
 * endpoint's object is deleted, stale objects of this node are collected at start.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../../pkg/apiserver/index.ts';
import { loadApiConfig } from '../../../pkg/k8s/kubeconfig.ts';
import { NODE_LABEL } from '../../../pkg/status/api.ts';
import { TokenBucket, type BucketClock } from '../../../pkg/status/bucket.ts';
import { KubeStatusApi } from '../../../pkg/status/kube.ts';
import { mapUsage } from '../../../pkg/status/maps.ts';
import { startStatusPublisher, type StatusPublisher } from '../../../pkg/status/publisher.ts';
import type { EndpointFacts, ReporterSources } from '../../../pkg/status/reporter.ts';

const CRDS = ['palisadeendpoints', 'palisadenodes'].map((n) => new URL(`../../../charts/palisade/crds/${n}.palisade.dev.yaml`, import.meta.url).pathname);
const NODE = 'node-a';
const PEP = 'palisade.dev/v1alpha1';

let server: ApiServer;
let dir: string;
let kubeconfig: string;
/** Write requests (POST/PATCH/PUT/DELETE) the API server answered for Palisade status objects. */
let writeLog: string[] = [];
let api: KubeStatusApi;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pal-status-'));
  server = await startApiServer({
    crdFiles: CRDS,
    log: (line) => {
      if (/^(POST|PATCH|PUT|DELETE) \/apis\/palisade\.dev\//.test(line)) writeLog.push(line);
    },
  });
  kubeconfig = join(dir, 'kubeconfig');
  await server.writeKubeconfig(kubeconfig);
  api = new KubeStatusApi(loadApiConfig(kubeconfig));
  server.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
});
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

function kubectl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args],
      { env: { ...process.env, HOME: dir }, timeout: 30_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`));
        else resolve(stdout);
      });
  });
}

function podUid(name: string): string {
  let pod;
  try {
    pod = server.get('v1', 'Pod', 'demo', name);
  } catch {
    pod = server.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'demo' }, spec: { containers: [{ name: 'c', image: 'x' }] } });
  }
  return String(pod.metadata.uid);
}

function ep(id: number, over: Partial<EndpointFacts> = {}): EndpointFacts {
  const podName = `pod-${id}`;
  return {
    endpointId: id, podNamespace: 'demo', podName, podUid: podUid(podName), containerId: `c${id}`,
    hostIfName: `lxc${id}`, ipv4: `10.244.0.${id}`, identity: 300 + id, ingressEnforced: true,
    egressEnforced: false, policies: { ingress: ['NetworkPolicy:demo/deny'] }, revision: 7, ...over,
  };
}

class Sources implements ReporterSources {
  node = NODE;
  version = '1.2.3';
  eps: EndpointFacts[] = [];
  rev = 7;
  notReady: string | undefined;
  endpoints() { return this.eps; }
  notReadyReason() { return this.notReady; }
  revision() { return this.rev; }
  async maps() {
    return mapUsage({ endpoints: this.eps.map((e) => ({ ifindex: e.endpointId, endpointId: e.endpointId, identity: 1, ipv4: e.ipv4, ingressEnforced: false, egressEnforced: false })), ipcache: [], policy: [], cidrs: [] });
  }
}

const peps = () => server.list(PEP, 'PalisadeEndpoint').filter((o) => o.metadata.labels?.[NODE_LABEL] === NODE);
const pepStatus = (name: string) => server.get(PEP, 'PalisadeEndpoint', 'demo', name).status as Record<string, unknown>;

function clearAll(): void {
  for (const o of server.list(PEP, 'PalisadeEndpoint')) server.delete(PEP, 'PalisadeEndpoint', o.metadata.namespace, o.metadata.name!);
  for (const o of server.list(PEP, 'PalisadeNode')) server.delete(PEP, 'PalisadeNode', undefined, o.metadata.name!);
}

describe('status objects', () => {
  let pub: StatusPublisher | undefined;
  let sources: Sources;
  const start = async (o: { writesPerSecond?: number; burst?: number } = {}) => {
    pub = await startStatusPublisher({
      api, sources, writesPerSecond: o.writesPerSecond ?? 500, burst: o.burst ?? 50, refreshMs: 600_000, retryMs: 50,
    });
    await pub.settled();
    return pub;
  };
  beforeEach(async () => {
    await pub?.stop();
    pub = undefined;
    clearAll();
    writeLog = [];
    sources = new Sources();
  });
  afterAll(async () => { await pub?.stop(); });

  it('appear with the right fields, printer columns and owner', async () => {
    sources.eps = [
      ep(1),
      ep(2, { egressEnforced: true, policies: { ingress: ['NetworkPolicy:demo/deny'], egress: ['NetworkPolicy:demo/deny', 'NetworkPolicy:demo/egress'] } }),
      ep(3, { identity: undefined, revision: undefined, ingressEnforced: false, policies: {} }),
    ];
    await start();
    const s1 = pepStatus('pod-1');
    expect(s1).toMatchObject({
      endpointId: 1, identity: 301, ingressEnforcement: 'enabled', egressEnforcement: 'disabled',
      policies: ['NetworkPolicy:demo/deny'], policyCount: 1, realizedRevision: 7, ipv4: '10.244.0.1',
      node: NODE, containerId: 'c1', interface: 'lxc1', state: 'ready', message: '',
    });
    expect(Date.parse(String(s1.lastUpdated))).toBeGreaterThan(0);
    expect(pepStatus('pod-2')).toMatchObject({ egressEnforcement: 'enabled', policyCount: 2, policies: ['NetworkPolicy:demo/deny', 'NetworkPolicy:demo/egress'] });
    const s3 = pepStatus('pod-3');
    expect(s3).toMatchObject({ state: 'waiting', ingressEnforcement: 'disabled', message: expect.stringMatching(/not computed/) });
    expect(s3.identity).toBeUndefined();
    const obj = server.get(PEP, 'PalisadeEndpoint', 'demo', 'pod-1');
    expect(obj.metadata.labels?.[NODE_LABEL]).toBe(NODE);
    expect((obj.metadata as { ownerReferences?: unknown[] }).ownerReferences).toEqual([
      expect.objectContaining({ apiVersion: 'v1', kind: 'Pod', name: 'pod-1', uid: podUid('pod-1') }),
    ]);

    const node = server.get(PEP, 'PalisadeNode', undefined, NODE).status as Record<string, unknown>;
    expect(node).toMatchObject({ agentVersion: '1.2.3', health: 'healthy', message: '', realizedRevision: 7, endpoints: 3, mapPressure: 0 });
    expect(node.maps).toContainEqual({ name: 'endpoints', entries: 3, maxEntries: 65536, pressure: 0 });
    expect(Date.parse(String(node.lastHeartbeat))).toBeGreaterThan(0);

    // What users see: `kubectl get pep` with the CRD's printer columns.
    const table = (await kubectl(['get', 'pep', '-n', 'demo'])).trim().split('\n').map((l) => l.trim().split(/\s+/));
    expect(table[0]).toEqual(['NAME', 'IDENTITY', 'INGRESS', 'EGRESS', 'POLICIES', 'REVISION', 'IP', 'NODE', 'STATE', 'AGE']);
    expect(table.find((r) => r[0] === 'pod-2')?.slice(0, 9)).toEqual(['pod-2', '302', 'enabled', 'enabled', '2', '7', '10.244.0.2', NODE, 'ready']);
    expect(await kubectl(['get', 'palisadenodes'])).toMatch(new RegExp(`${NODE}\\s+1\\.2\\.3\\s+healthy\\s+7\\s+3\\s+0`));
  });

  it('a burst of 200 endpoint changes makes bounded writes, and the latest content wins', async () => {
    sources.eps = Array.from({ length: 20 }, (_, i) => ep(i + 1));
    await start({ writesPerSecond: 40, burst: 5 });
    const initial = writeLog.length;
    // 20 creates + 20 status patches + 1 node create + 1 node status patch.
    expect(initial).toBe(42);

    writeLog = [];
    const before = pub!.writer.writes;
    const started = performance.now();
    for (let i = 0; i < 200; i++) {
      const id = (i % 20) + 1;
      sources.eps = sources.eps.map((e) => e.endpointId === id
        ? { ...e, policies: { ingress: ['NetworkPolicy:demo/deny', `NetworkPolicy:demo/allow-${i}`] }, revision: 8 + i }
        : e);
      pub!.refresh();
    }
    await pub!.settled();
    const elapsed = performance.now() - started;
    const pepWrites = writeLog.filter((l) => l.includes('/palisadeendpoints/'));
    // At most one status write per object per refresh it was dirty in; the coalescing
    // writer needs far fewer than 200 (each object is written with its latest content).
    expect(pepWrites.length).toBeLessThanOrEqual(40);
    expect(pepWrites.every((l) => /^PATCH .*\/status /.test(l))).toBe(true);
    // The bucket (40/s, burst 5) bounds the rate: n writes take at least (n - 5) / 40 s.
    const n = pub!.writer.writes - before;
    expect(n).toBe(writeLog.length);
    expect(elapsed).toBeGreaterThanOrEqual(((n - 5) / 40) * 1000 - 50);
    for (let id = 1; id <= 20; id++) {
      const last = 180 + id - 1;
      expect(pepStatus(`pod-${id}`)).toMatchObject({ policies: ['NetworkPolicy:demo/allow-' + last, 'NetworkPolicy:demo/deny'], realizedRevision: 8 + last });
    }

    // 200 refreshes where only revisions move: no endpoint write at all.
    writeLog = [];
    for (let i = 0; i < 200; i++) {
      sources.rev++;
      sources.eps = sources.eps.map((e) => ({ ...e, revision: sources.rev }));
      pub!.refresh();
    }
    await pub!.settled();
    expect(writeLog.filter((l) => l.includes('/palisadeendpoints/'))).toEqual([]);
  });

  it('deletes the object when its endpoint goes, and recreates one deleted behind its back', async () => {
    sources.eps = [ep(1), ep(2)];
    await start();
    expect(peps().map((o) => o.metadata.name).sort()).toEqual(['pod-1', 'pod-2']);
    sources.eps = [ep(2)];
    pub!.refresh();
    await pub!.settled();
    expect(peps().map((o) => o.metadata.name)).toEqual(['pod-2']);

    server.delete(PEP, 'PalisadeEndpoint', 'demo', 'pod-2');
    sources.eps = [ep(2, { egressEnforced: true })];
    pub!.refresh();
    await pub!.settled();
    expect(pepStatus('pod-2')).toMatchObject({ egressEnforcement: 'enabled', state: 'ready' });
  });

  it('does not delete an object another node took over (a pod name reused there)', async () => {
    sources.eps = [ep(1), ep(2)];
    await start();
    // node-b now runs a new pod-1 and made the object its own.
    const cur = server.get(PEP, 'PalisadeEndpoint', 'demo', 'pod-1');
    server.update({ ...cur, metadata: { ...cur.metadata, labels: { [NODE_LABEL]: 'node-b' } } });
    sources.eps = [];
    pub!.refresh();
    await pub!.settled();
    expect(server.list(PEP, 'PalisadeEndpoint').map((o) => o.metadata.name)).toEqual(['pod-1']);
    expect(server.get(PEP, 'PalisadeEndpoint', 'demo', 'pod-1').metadata.labels?.[NODE_LABEL]).toBe('node-b');
  });

  it('collects stale objects of this node at start, adopts unchanged ones, leaves other nodes\' alone', async () => {
    sources.eps = [ep(1), ep(2)];
    await start();
    await pub!.stop();
    pub = undefined;
    server.create({ apiVersion: PEP, kind: 'PalisadeEndpoint', metadata: { name: 'gone', namespace: 'demo', labels: { [NODE_LABEL]: NODE } } });
    server.create({ apiVersion: PEP, kind: 'PalisadeEndpoint', metadata: { name: 'elsewhere', namespace: 'demo', labels: { [NODE_LABEL]: 'node-b' } } });
    writeLog = [];
    sources.eps = [ep(1), ep(2, { ingressEnforced: false })];
    await start();
    const names = server.list(PEP, 'PalisadeEndpoint').map((o) => o.metadata.name).sort();
    expect(names).toEqual(['elsewhere', 'pod-1', 'pod-2']);
    // pod-1 was unchanged: adopted, not rewritten. pod-2 changed: one status patch.
    expect(writeLog.filter((l) => l.includes('/palisadeendpoints/')).map((l) => l.split(' ').slice(0, 2).join(' ')).sort()).toEqual([
      'DELETE /apis/palisade.dev/v1alpha1/namespaces/demo/palisadeendpoints/gone',
      'PATCH /apis/palisade.dev/v1alpha1/namespaces/demo/palisadeendpoints/pod-2/status',
    ]);
  });

  it('reports an agent that is not ready as unhealthy, and map pressure as degraded', async () => {
    sources.eps = [ep(1)];
    sources.notReady = 'control plane: informers not synced';
    await start();
    expect(server.get(PEP, 'PalisadeNode', undefined, NODE).status).toMatchObject({ health: 'unhealthy', message: 'control plane: informers not synced' });
    sources.notReady = undefined;
    sources.maps = async () => [{ name: 'policy', entries: 1_000_000, maxEntries: 1_048_576, pressure: 95 }];
    pub!.refresh();
    await pub!.settled();
    expect(server.get(PEP, 'PalisadeNode', undefined, NODE).status).toMatchObject({ health: 'degraded', mapPressure: 95, message: 'maps nearly full: policy 95%' });
  });
});

describe('TokenBucket', () => {
  it('gives the burst at once, then one token per 1/rate s, in order', async () => {
    let t = 0;
    const sleeps: number[] = [];
    const clock: BucketClock = { now: () => t, sleep: async (ms) => { sleeps.push(ms); t += ms; } };
    const b = new TokenBucket(10, 3, clock);
    const order: number[] = [];
    await Promise.all(Array.from({ length: 6 }, (_, i) => b.take().then(() => order.push(i))));
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
    // 3 from the burst, then 3 more at 100 ms each.
    expect(t).toBe(300);
    expect(() => new TokenBucket(0, 1)).toThrow(/rate/);
    expect(() => new TokenBucket(1, 0)).toThrow(/burst/);
  });
});
