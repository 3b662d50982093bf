import { describe, expect, it } from 'vitest';
import { Backoff } from '../../../pkg/k8s/backoff.ts';
import { KubernetesCluster } from '../../../pkg/k8s/cluster.ts';
import { Informer, type ListResult, type ListWatchSource } from '../../../pkg/k8s/informer.ts';
import { RESOURCES, type ResourceInfo } from '../../../pkg/k8s/resources.ts';
import { ClusterStore } from '../../../pkg/k8s/store.ts';
import { eventually, RecordingLogger } from '../controlplane/fakes.ts';

type Obj = { metadata: { name: string; namespace?: string; resourceVersion: string; labels?: Record<string, string> } };

interface FakeWatch {
  res: string;
  rv: string;
  emit(type: string, obj: unknown): void;
  end(err?: unknown): void;
  aborted: boolean;
}

/** A scripted API: objects per path, a global RV, and watches the test drives. */
class FakeSource implements ListWatchSource {
  objects = new Map<string, Map<string, Obj>>();
  rv = 100;
  watches: FakeWatch[] = [];
  lists: string[] = [];
  listError: Map<string, { statusCode: number }> = new Map();
  watchError: Map<string, { statusCode: number }> = new Map();

  put(path: string, o: Obj): Obj {
    o.metadata.resourceVersion = String(++this.rv);
    let m = this.objects.get(path);
    if (!m) this.objects.set(path, (m = new Map()));
    m.set(`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o);
    return o;
  }

  async list(res: ResourceInfo): Promise<ListResult> {
    this.lists.push(res.name);
    const err = this.listError.get(res.name);
    if (err) throw Object.assign(new Error(`HTTP ${err.statusCode}`), err);
    return { items: structuredClone([...(this.objects.get(res.path)?.values() ?? [])]), resourceVersion: String(this.rv) };
  }

  async watch(res: ResourceInfo, rv: string, onEvent: (t: string, o: unknown) => void, onDone: (e: unknown) => void) {
    const err = this.watchError.get(res.name);
    if (err) {
      queueMicrotask(() => onDone(Object.assign(new Error(`HTTP ${err.statusCode}`), err)));
      return () => {};
    }
    let done = false;
    const w: FakeWatch = {
      res: res.name, rv, aborted: false,
      emit: (t, o) => { if (!done) onEvent(t, structuredClone(o)); },
      end: (e) => { if (!done) { done = true; onDone(e ?? null); } },
    };
    this.watches.push(w);
    return () => { w.aborted = true; w.end(); };
  }

  lastWatch(res: string): FakeWatch {
    const w = this.watches.filter((x) => x.res === res).at(-1);
    if (!w) throw new Error(`no watch for ${res}`);
    return w;
  }
}

const podPath = RESOURCES.pods.path;
const mkPod = (name: string, labels: Record<string, string> = {}): Obj =>
  ({ metadata: { name, namespace: 'x', labels, resourceVersion: '' } });

function informer(source: FakeSource, store: ClusterStore, log = new RecordingLogger(), res: ResourceInfo = RESOURCES.pods) {
  return new Informer({ resource: res, source, store, log, backoff: { baseMs: 1, maxMs: 4 }, absentRetryMs: 10 });
}

describe('Informer', () => {
  it('lists, then applies watch events and bookmarks from the list resourceVersion', async () => {
    const src = new FakeSource();
    src.put(podPath, mkPod('a', { pod: 'a' }));
    const store = new ClusterStore();
    const inf = informer(src, store);
    inf.start();
    await inf.whenSynced();
    expect(store.get('pods', 'x/a')?.metadata.labels).toEqual({ pod: 'a' });
    await eventually(() => src.watches.length === 1);
    const w = src.lastWatch('pods');
    expect(w.rv).toBe('101');

    w.emit('ADDED', src.put(podPath, mkPod('b')));
    w.emit('MODIFIED', src.put(podPath, mkPod('a', { pod: 'z' })));
    w.emit('DELETED', { metadata: { name: 'b', namespace: 'x', resourceVersion: String(++src.rv) } });
    expect(store.get('pods', 'x/a')?.metadata.labels).toEqual({ pod: 'z' });
    expect(store.get('pods', 'x/b')).toBeUndefined();
    expect(inf.resourceVersion).toBe(104n);
    w.emit('BOOKMARK', { kind: 'Pod', metadata: { resourceVersion: '150' } });
    expect(store.resourceVersion).toBe('150');
    expect(inf.resourceVersion).toBe(150n);
    await inf.stop();
    expect(w.aborted).toBe(true);
  });

  it('relists on 410 Gone and removes objects deleted while not watching', async () => {
    const src = new FakeSource();
    src.put(podPath, mkPod('a'));
    src.put(podPath, mkPod('b'));
    const store = new ClusterStore();
    const inf = informer(src, store);
    inf.start();
    await eventually(() => src.watches.length === 1);
    // While "disconnected", b is deleted and c created; the watch then says 410.
    src.objects.get(podPath)!.delete('x/b');
    src.put(podPath, mkPod('c'));
    src.lastWatch('pods').emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
    await eventually(() => src.watches.length === 2);
    expect(src.lists).toEqual(['pods', 'pods']);
    expect([...store.snapshot().pods.keys()].sort()).toEqual(['x/a', 'x/c']);
    expect(src.lastWatch('pods').rv).toBe(String(src.rv));
    await inf.stop();
  });

  it('relists when the watch request itself answers 410', async () => {
    const src = new FakeSource();
    const store = new ClusterStore();
    const inf = informer(src, store);
    src.watchError.set('pods', { statusCode: 410 });
    inf.start();
    await eventually(() => src.lists.length >= 2);
    src.watchError.delete('pods');
    await eventually(() => src.watches.length === 1);
    await inf.stop();
  });

  it('reconnects from the last resourceVersion after an error or a server close', async () => {
    const src = new FakeSource();
    const store = new ClusterStore();
    const log = new RecordingLogger();
    const inf = informer(src, store, log);
    inf.start();
    await eventually(() => src.watches.length === 1);
    src.lastWatch('pods').emit('ADDED', src.put(podPath, mkPod('a')));
    src.lastWatch('pods').end(new Error('connection reset'));
    await eventually(() => src.watches.length === 2);
    expect(src.lastWatch('pods').rv).toBe('101');
    expect(log.count('watch failed, reconnecting')).toBe(1);
    src.lastWatch('pods').end(); // normal close (server timeout)
    await eventually(() => src.watches.length === 3);
    expect(src.lastWatch('pods').rv).toBe('101');
    expect(src.lists).toEqual(['pods']);
    await inf.stop();
  });

  it('backs off from a server that closes every watch at once, instead of spinning', async () => {
    const src = new FakeSource();
    const origWatch = src.watch.bind(src);
    src.watch = async (res, rv, onEvent, onDone) => {
      const abort = await origWatch(res, rv, onEvent, onDone);
      queueMicrotask(() => src.lastWatch(res.name).end());
      return abort;
    };
    const inf = new Informer({ resource: RESOURCES.pods, source: src, store: new ClusterStore(), log: new RecordingLogger(), backoff: { baseMs: 20, maxMs: 40 } });
    inf.start();
    await new Promise((r) => setTimeout(r, 200));
    await inf.stop();
    // Without backoff this would be thousands; with 10-40 ms delays at most ~15.
    expect(src.watches.length).toBeGreaterThan(2);
    expect(src.watches.length).toBeLessThan(20);
  });

  it('retries a failing list with backoff and syncs once it succeeds', async () => {
    const src = new FakeSource();
    const store = new ClusterStore();
    src.listError.set('pods', { statusCode: 503 });
    const inf = informer(src, store);
    inf.start();
    await eventually(() => src.lists.length >= 3);
    expect(inf.synced).toBe(false);
    src.listError.delete('pods');
    await inf.whenSynced();
    await inf.stop();
  });

  it('treats an absent optional CRD as synced and empty, logs once, and picks it up later', async () => {
    const src = new FakeSource();
    const store = new ClusterStore();
    const log = new RecordingLogger();
    const res = RESOURCES.palisadeNetworkPolicies;
    src.listError.set(res.name, { statusCode: 404 });
    const inf = informer(src, store, log, res);
    inf.start();
    await inf.whenSynced();
    expect(inf.absent).toBe(true);
    await eventually(() => src.lists.length >= 3);
    expect(log.count('resource not served (CRD not installed); continuing without it')).toBe(1);
    src.listError.delete(res.name);
    src.put(res.path, { metadata: { name: 'l7', namespace: 'x', resourceVersion: '' } });
    await eventually(() => store.get('policies', 'PalisadeNetworkPolicy:x/l7') !== undefined);
    expect(inf.absent).toBe(false);
    await inf.stop();
  });

  it('relists when a watched CRD goes away (404) and drops its objects', async () => {
    const src = new FakeSource();
    const store = new ClusterStore();
    const res = RESOURCES.palisadeNetworkPolicies;
    src.put(res.path, { metadata: { name: 'l7', namespace: 'x', resourceVersion: '' } });
    const inf = informer(src, store, new RecordingLogger(), res);
    inf.start();
    await eventually(() => src.watches.length === 1);
    expect(store.size('policies')).toBe(1);
    src.listError.set(res.name, { statusCode: 404 });
    src.lastWatch(res.name).end(Object.assign(new Error('HTTP 404'), { statusCode: 404 }));
    await eventually(() => inf.absent);
    expect(store.size('policies')).toBe(0);
    await inf.stop();
  });
});

describe('KubernetesCluster', () => {
  it('is synced only after every informer listed', async () => {
    const src = new FakeSource();
    src.listError.set('networkpolicies', { statusCode: 500 });
    const cluster = new KubernetesCluster({ source: src, backoff: { baseMs: 1, maxMs: 2 } });
    cluster.start();
    await eventually(() => src.lists.filter((l) => l === 'networkpolicies').length >= 2);
    expect(cluster.synced).toBe(false);
    src.listError.delete('networkpolicies');
    await cluster.whenSynced();
    expect(cluster.synced).toBe(true);
    await cluster.stop();
  });

  it('covers a resourceVersion once every watch reached it, or an idle watch stayed quiet', async () => {
    const src = new FakeSource();
    const cluster = new KubernetesCluster({ source: src, quietMs: 10_000 });
    cluster.start();
    await cluster.whenSynced();
    await eventually(() => src.watches.length === Object.keys(RESOURCES).length);
    expect(cluster.coverage(100n)).toEqual({ covered: true, exact: true });
    // A pod event at 101 arrives; the other watches have not reached 101.
    src.lastWatch('pods').emit('ADDED', src.put(podPath, mkPod('a')));
    const c = cluster.coverage(101n);
    expect(c.covered).toBe(false);
    expect(c.covered === false && c.recheckInMs! > 9000).toBe(true);
    // Bookmarks bring the others forward: covered without waiting.
    for (const r of ['namespaces', 'nodes', 'networkpolicies', 'palisadenetworkpolicies', 'services', 'endpointslices']) {
      src.lastWatch(r).emit('BOOKMARK', { metadata: { resourceVersion: '101' } });
    }
    expect(cluster.coverage(101n)).toEqual({ covered: true, exact: true });
    expect(cluster.coverage(102n)).toEqual({ covered: false });
    await cluster.stop();
  });

  it('takes a quiet connected watch as caught up after quietMs', async () => {
    const src = new FakeSource();
    const cluster = new KubernetesCluster({ source: src, quietMs: 30 });
    cluster.start();
    await cluster.whenSynced();
    await eventually(() => src.watches.length === Object.keys(RESOURCES).length);
    src.lastWatch('pods').emit('ADDED', src.put(podPath, mkPod('a')));
    expect(cluster.coverage(101n).covered).toBe(false);
    await eventually(() => cluster.coverage(101n).covered, 2000);
    // Covered by quiet, not by the streams themselves: the caller must confirm it.
    expect(cluster.coverage(101n)).toEqual({ covered: true, exact: false });
    await cluster.stop();
  });
});

describe('Backoff', () => {
  it('grows to a bound, with jitter in [d/2, d], and resets', () => {
    let r = 0;
    const b = new Backoff({ baseMs: 100, maxMs: 1000, random: () => r });
    const lows = [b.next(), b.next(), b.next(), b.next(), b.next(), b.next()];
    expect(lows).toEqual([50, 100, 200, 400, 500, 500]);
    r = 0.999999;
    expect(b.next()).toBeCloseTo(1000, 2);
    b.reset();
    expect(b.next()).toBeCloseTo(100, 2);
    expect(() => new Backoff({ baseMs: 0 })).toThrow(/baseMs/);
  });
});
