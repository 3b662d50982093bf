/**
 * The lab API server driven by @kubernetes/client-node 2.x informers (ListWatch): events
 * for adds, updates and deletes; resuming a watch the server closed without relisting;
 * relisting after 410 Gone once the history was compacted.
 */
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, waitFor, type Lab } from './helpers.ts';

interface Recorder<T> {
  events: string[];
  lists: number;
  errors: unknown[];
  informer: k8s.Informer<T & k8s.KubernetesObject> & k8s.ObjectCache<T & k8s.KubernetesObject>;
}

function record<T extends k8s.KubernetesObject>(
  kc: k8s.KubeConfig,
  path: string,
  list: () => Promise<k8s.KubernetesListObject<T>>,
): Recorder<T> {
  const r = { events: [] as string[], lists: 0, errors: [] as unknown[] } as Recorder<T>;
  r.informer = k8s.makeInformer<T>(kc, path, () => {
    r.lists++;
    return list();
  });
  const name = (o: k8s.KubernetesObject) => `${o.metadata?.namespace}/${o.metadata?.name}`;
  r.informer.on('add', (o) => r.events.push(`add ${name(o)}`));
  r.informer.on('update', (o) => r.events.push(`update ${name(o)}`));
  r.informer.on('delete', (o) => r.events.push(`delete ${name(o)}`));
  r.informer.on('error', (e) => r.errors.push(e));
  return r;
}

function pod(name: string, labels: Record<string, string> = {}): k8s.V1Pod {
  return { metadata: { name, labels }, spec: { containers: [{ name: 'c', image: 'busybox' }] } };
}

describe('@kubernetes/client-node informers against the lab API server', () => {
  let lab: Lab;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let net: k8s.NetworkingV1Api;
  let pods: Recorder<k8s.V1Pod>;
  let policies: Recorder<k8s.V1NetworkPolicy>;

  beforeAll(async () => {
    lab = await startLab({ bookmarkIntervalMs: 200 });
    kc = new k8s.KubeConfig();
    kc.loadFromFile(lab.kubeconfig);
    core = kc.makeApiClient(k8s.CoreV1Api);
    net = kc.makeApiClient(k8s.NetworkingV1Api);
    await core.createNamespace({ body: { metadata: { name: 'app' } } });
    await core.createNamespacedPod({ namespace: 'app', body: pod('before', { app: 'a' }) });
    pods = record<k8s.V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
    policies = record<k8s.V1NetworkPolicy>(kc, '/apis/networking.k8s.io/v1/networkpolicies', () => net.listNetworkPolicyForAllNamespaces());
    await pods.informer.start();
    await policies.informer.start();
  });

  afterAll(async () => {
    await pods?.informer.stop();
    await policies?.informer.stop();
    await lab?.close();
  });

  it('lists existing objects, then sees adds, updates and deletes', async () => {
    await waitFor(() => pods.events.includes('add app/before'), 'initial pod');
    await core.createNamespacedPod({ namespace: 'app', body: pod('p1', { app: 'b' }) });
    const created = await net.createNamespacedNetworkPolicy({
      namespace: 'app',
      body: { metadata: { name: 'np' }, spec: { podSelector: { matchLabels: { app: 'b' } }, egress: [{}] } },
    });
    // Defaulting happened server-side and is visible to the client.
    expect(created.spec?.policyTypes).toEqual(['Ingress', 'Egress']);
    await waitFor(() => pods.events.includes('add app/p1') && policies.events.includes('add app/np'), 'adds');

    const p1 = await core.readNamespacedPod({ name: 'p1', namespace: 'app' });
    p1.metadata!.labels = { app: 'c' };
    await core.replaceNamespacedPod({ name: 'p1', namespace: 'app', body: p1 });
    await waitFor(() => pods.events.includes('update app/p1'), 'pod update');
    expect(pods.informer.get('p1', 'app')?.metadata?.labels).toEqual({ app: 'c' });

    const np = await net.readNamespacedNetworkPolicy({ name: 'np', namespace: 'app' });
    np.spec!.ingress = [{ ports: [{ port: 8080 }] }];
    await net.replaceNamespacedNetworkPolicy({ name: 'np', namespace: 'app', body: np });
    await waitFor(() => policies.events.includes('update app/np'), 'policy update');
    expect(policies.informer.get('np', 'app')?.spec?.ingress?.[0]?.ports).toEqual([{ port: 8080, protocol: 'TCP' }]);

    await net.deleteNamespacedNetworkPolicy({ name: 'np', namespace: 'app' });
    await core.deleteNamespacedPod({ name: 'p1', namespace: 'app' });
    await waitFor(() => pods.events.includes('delete app/p1') && policies.events.includes('delete app/np'), 'deletes');
    expect(pods.informer.get('p1', 'app')).toBeUndefined();
    expect(pods.errors).toEqual([]);
    expect(policies.errors).toEqual([]);
  });

  it('resumes from its resourceVersion when the server closes the watch (no relist)', async () => {
    const listsBefore = pods.lists;
    await waitFor(() => lab.server.watchCount() >= 2, 'watches open');
    lab.server.closeWatches();
    // Written while the client is reconnecting: it must arrive through the resumed watch.
    lab.server.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'during', namespace: 'app' }, spec: { containers: [{ name: 'c', image: 'x' }] } });
    await waitFor(() => pods.events.includes('add app/during'), 'event written during the reconnect');
    expect(pods.lists).toBe(listsBefore);
  });

  it('relists after 410 Gone once older resourceVersions were compacted', async () => {
    const listsBefore = pods.lists;
    await waitFor(() => lab.server.watchCount() >= 2, 'watches open');
    lab.server.closeWatches();
    lab.server.delete('v1', 'Pod', 'app', 'during');
    lab.server.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'after-gone', namespace: 'app' }, spec: { containers: [{ name: 'c', image: 'x' }] } });
    lab.server.compact();
    await waitFor(() => pods.events.includes('add app/after-gone') && pods.events.includes('delete app/during'), 'relisted state');
    expect(pods.lists).toBe(listsBefore + 1);
    expect(pods.errors).toEqual([]);
    // The watch works again after the relist.
    await core.createNamespacedPod({ namespace: 'app', body: pod('final') });
    await waitFor(() => pods.events.includes('add app/final'), 'event after relist');
  });

  it('custom resources: create, merge-patch the status, list across namespaces, KubernetesObjectApi apply', async () => {
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const gvp = { group: 'test.palisade.dev', version: 'v1', plural: 'widgets' };
    await custom.createNamespacedCustomObject({ ...gvp, namespace: 'app', body: { apiVersion: 'test.palisade.dev/v1', kind: 'Widget', metadata: { name: 'cw' }, spec: { color: 'red' } } });
    const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
    const patched = await custom.patchNamespacedCustomObjectStatus({ ...gvp, namespace: 'app', name: 'cw', body: { status: { phase: 'Ready' } } }, merge);
    expect(patched.status).toEqual({ phase: 'Ready' });
    const all = await custom.listClusterCustomObject(gvp);
    expect(all.items.map((w: k8s.KubernetesObject) => `${w.metadata?.namespace}/${w.metadata?.name}`)).toEqual(['app/cw']);
    // The generic object client (server-side apply) used by tools and operators.
    const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    const applied = await objects.patch(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa', namespace: 'app' }, data: { a: '1' } },
      undefined, undefined, 'palisade-test', true, k8s.PatchStrategy.ServerSideApply,
    );
    expect((applied as k8s.V1ConfigMap).metadata?.managedFields?.[0]?.manager).toBe('palisade-test');
    const stale = await objects.read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa', namespace: 'app' } });
    await objects.replace({ ...stale, data: { a: '2' } });
    await expect(objects.replace({ ...stale, data: { a: '3' } })).rejects.toMatchObject({ code: 409 });
  });
});
