/** The opt-in EndpointSlice controller: slices follow Services and their Pods. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer, type KObject } from '../../../pkg/apiserver/index.ts';
import { waitFor } from './helpers.ts';

const ns = 'eps';

function pod(name: string, labels: Record<string, string>, ports: { name: string; containerPort: number; protocol?: string }[]) {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i', ports }] } };
}

describe('EndpointSlice controller', () => {
  let api: ApiServer;
  const slices = (svc: string): KObject[] =>
    api.list('discovery.k8s.io/v1', 'EndpointSlice', ns).filter((s) => s.metadata.labels?.['kubernetes.io/service-name'] === svc);
  const setStatus = (name: string, ip: string | undefined, ready: boolean) => {
    const p = api.get('v1', 'Pod', ns, name);
    const status: Record<string, unknown> = { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] };
    if (ip) status.podIP = ip;
    api.update({ ...p, status }, 'status');
  };

  beforeAll(async () => {
    api = await startApiServer({ endpointSliceController: true });
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  });
  afterAll(async () => {
    await api?.close();
  });

  it('keeps an empty slice for a Service without ready pods, then adds endpoints as pods get IPs', async () => {
    api.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: ns }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } });
    await waitFor(() => slices('web').length === 1, 'placeholder slice');
    const placeholder = slices('web')[0]!;
    expect(placeholder.endpoints).toEqual([]);
    expect(placeholder.metadata.labels?.['endpointslice.kubernetes.io/managed-by']).toBe('endpointslice-controller.k8s.io');
    expect(placeholder.metadata.ownerReferences).toMatchObject([{ kind: 'Service', name: 'web', controller: true }]);
    expect(placeholder.metadata.name).toMatch(/^web-[a-z0-9]{5}$/);

    api.create(pod('w1', { app: 'web' }, [{ name: 'http', containerPort: 8080 }]));
    api.create(pod('w2', { app: 'web' }, [{ name: 'http', containerPort: 8080 }]));
    api.create(pod('other', { app: 'db' }, [{ name: 'http', containerPort: 8080 }]));
    setStatus('w1', '10.0.0.1', true);
    setStatus('w2', '10.0.0.2', false);
    setStatus('other', '10.0.0.3', true);
    await waitFor(() => (slices('web')[0]?.endpoints as unknown[] | undefined)?.length === 2, 'two endpoints');
    const s = slices('web')[0]!;
    expect(s.metadata.name).toBe(placeholder.metadata.name);
    expect(s.ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
    expect(s.endpoints).toEqual([
      { addresses: ['10.0.0.1'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'n1', targetRef: { kind: 'Pod', namespace: ns, name: 'w1', uid: api.get('v1', 'Pod', ns, 'w1').metadata.uid } },
      { addresses: ['10.0.0.2'], conditions: { ready: false, serving: false, terminating: false }, nodeName: 'n1', targetRef: { kind: 'Pod', namespace: ns, name: 'w2', uid: api.get('v1', 'Pod', ns, 'w2').metadata.uid } },
    ]);
  });

  it('splits pods whose named targetPort resolves differently into separate slices', async () => {
    api.create(pod('w3', { app: 'web' }, [{ name: 'http', containerPort: 9090 }]));
    setStatus('w3', '10.0.0.4', true);
    await waitFor(() => slices('web').length === 2, 'second slice');
    const byPort = Object.fromEntries(slices('web').map((s) => [(s.ports as { port: number }[])[0]?.port, (s.endpoints as { addresses: string[] }[]).map((e) => e.addresses[0])]));
    expect(byPort).toEqual({ 8080: ['10.0.0.1', '10.0.0.2'], 9090: ['10.0.0.4'] });
  });

  it('follows label changes and pod deletion, and goes with its Service', async () => {
    const w1 = api.get('v1', 'Pod', ns, 'w1');
    api.update({ ...w1, metadata: { ...w1.metadata, labels: { app: 'gone' } } });
    api.delete('v1', 'Pod', ns, 'w3');
    await waitFor(() => slices('web').length === 1 && (slices('web')[0]?.endpoints as unknown[]).length === 1, 'one endpoint left');
    expect((slices('web')[0]?.endpoints as { addresses: string[] }[])[0]?.addresses).toEqual(['10.0.0.2']);
    const rv = api.resourceVersion();
    // A pod write that changes nothing for the slices writes no slice.
    const w2 = api.get('v1', 'Pod', ns, 'w2');
    api.update({ ...w2, metadata: { ...w2.metadata, annotations: { note: 'x' } } });
    await new Promise((r) => setTimeout(r, 20));
    expect(Number(api.resourceVersion())).toBe(Number(rv) + 1);
    api.delete('v1', 'Service', ns, 'web');
    await waitFor(() => slices('web').length === 0, 'slices deleted with the service');
  });

  it('leaves Services without selectors and slices it does not manage alone', async () => {
    api.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'manual', namespace: ns }, spec: { ports: [{ port: 80 }] } });
    api.create({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'manual-1', namespace: ns, labels: { 'kubernetes.io/service-name': 'manual' } }, addressType: 'IPv4', endpoints: [{ addresses: ['192.0.2.1'] }] });
    await new Promise((r) => setTimeout(r, 20));
    expect(slices('manual').map((s) => s.metadata.name)).toEqual(['manual-1']);
  });
});
