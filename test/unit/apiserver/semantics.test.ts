/**
 * API semantics of the lab server over plain HTTP: Status errors, resourceVersions,
 * defaulting, validation, status subresource, selectors, watch protocol (replay, 410,
 * bookmarks, selector transitions), namespace cascade, finalizers, CRDs at run time.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer } from '../../../pkg/apiserver/index.ts';
import { openWatch, startLab, waitFor, type Lab } from './helpers.ts';

const podBody = (name: string, labels: Record<string, string> = {}, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels },
  spec: { containers: [{ name: 'c', image: 'busybox', ports: [{ containerPort: 8080 }] }], ...extra },
});

describe('lab API server semantics', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ serviceCidr: '10.123.0.0/24', compactAfter: 50, bookmarkIntervalMs: 100 });
    for (const ns of ['s1', 's2']) {
      const r = await lab.call('POST', '/api/v1/namespaces', { metadata: { name: ns } });
      expect(r.status).toBe(201);
    }
  });
  afterAll(async () => {
    await lab?.close();
  });

  describe('errors are Status objects', () => {
    it('404 NotFound for a missing object', async () => {
      const r = await lab.call('GET', '/api/v1/namespaces/s1/pods/nope');
      expect(r.status).toBe(404);
      expect(r.body).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: 'pods "nope" not found', details: { name: 'nope', kind: 'pods' } });
      const np = await lab.call('GET', '/apis/networking.k8s.io/v1/namespaces/s1/networkpolicies/x');
      expect(np.body.message).toBe('networkpolicies.networking.k8s.io "x" not found');
      expect(np.body.details).toEqual({ name: 'x', kind: 'networkpolicies', group: 'networking.k8s.io' });
    });

    it('409 AlreadyExists on a second create', async () => {
      expect((await lab.call('POST', '/api/v1/namespaces/s1/pods', podBody('dup'))).status).toBe(201);
      const r = await lab.call('POST', '/api/v1/namespaces/s1/pods', podBody('dup'));
      expect(r.status).toBe(409);
      expect(r.body).toMatchObject({ reason: 'AlreadyExists', code: 409, message: 'pods "dup" already exists' });
    });

    it('404 for a create in a namespace that does not exist, and nothing is stored', async () => {
      const r = await lab.call('POST', '/api/v1/namespaces/ghost/pods', podBody('p'));
      expect(r.status).toBe(404);
      expect(r.body).toMatchObject({ reason: 'NotFound', message: 'namespaces "ghost" not found', details: { name: 'ghost', kind: 'namespaces' } });
      expect(lab.server.list('v1', 'Pod', 'ghost')).toEqual([]);
    });

    it('422 Invalid with one cause per bad field', async () => {
      const r = await lab.call('POST', '/api/v1/namespaces/s1/pods', { metadata: { name: 'Bad_Name' }, spec: { containers: [] } });
      expect(r.status).toBe(422);
      expect(r.body.reason).toBe('Invalid');
      expect(r.body.details.kind).toBe('Pod');
      const fields = r.body.details.causes.map((c: { field: string }) => c.field);
      expect(fields).toEqual(['metadata.name', 'spec.containers']);
      expect(r.body.causes).toBeUndefined();
    });

    it('400 when the body names another namespace than the URL', async () => {
      const body = podBody('x');
      (body.metadata as Record<string, unknown>).namespace = 's2';
      const r = await lab.call('POST', '/api/v1/namespaces/s1/pods', body);
      expect(r.status).toBe(400);
      expect(r.body.reason).toBe('BadRequest');
    });

    it('405 for writes across all namespaces, 400 for a bad DeleteOptions body', async () => {
      expect((await lab.call('POST', '/api/v1/pods', podBody('nowhere'))).status).toBe(405);
      expect((await lab.call('DELETE', '/api/v1/pods')).status).toBe(405);
      expect((await lab.call('DELETE', '/api/v1/namespaces/s1/pods/dup', '[1]')).status).toBe(400);
      expect((await lab.call('GET', '/api/v1/namespaces/s1/pods/dup')).status).toBe(200);
    });

    it('409 Conflict for an update with a stale resourceVersion', async () => {
      const created = (await lab.call('POST', '/api/v1/namespaces/s1/configmaps', { metadata: { name: 'cc' }, data: { a: '1' } })).body;
      const ok = await lab.call('PUT', '/api/v1/namespaces/s1/configmaps/cc', { ...created, data: { a: '2' } });
      expect(ok.status).toBe(200);
      const stale = await lab.call('PUT', '/api/v1/namespaces/s1/configmaps/cc', { ...created, data: { a: '3' } });
      expect(stale.status).toBe(409);
      expect(stale.body).toMatchObject({ reason: 'Conflict', code: 409 });
      expect(stale.body.message).toContain('the object has been modified');
      expect(lab.server.get('v1', 'ConfigMap', 's1', 'cc').data).toEqual({ a: '2' });
      // A merge patch naming the stale resourceVersion conflicts too.
      const patch = await lab.call('PATCH', '/api/v1/namespaces/s1/configmaps/cc', { metadata: { resourceVersion: created.metadata.resourceVersion }, data: { a: '4' } }, { 'content-type': 'application/merge-patch+json' });
      expect(patch.status).toBe(409);
    });

    it('415 for strategic merge patch on a custom resource', async () => {
      await lab.call('POST', '/apis/test.palisade.dev/v1/namespaces/s1/widgets', { apiVersion: 'test.palisade.dev/v1', kind: 'Widget', metadata: { name: 'smp' }, spec: { color: 'red' } });
      const r = await lab.call('PATCH', '/apis/test.palisade.dev/v1/namespaces/s1/widgets/smp', { spec: { color: 'blue' } }, { 'content-type': 'application/strategic-merge-patch+json' });
      expect(r.status).toBe(415);
    });
  });

  describe('metadata', () => {
    it('assigns uid, creationTimestamp and increasing string resourceVersions; generation follows spec', async () => {
      const a = (await lab.call('POST', '/api/v1/namespaces/s1/pods', podBody('meta-a'))).body;
      const b = (await lab.call('POST', '/api/v1/namespaces/s2/configmaps', { metadata: { name: 'meta-b' } })).body;
      expect(typeof a.metadata.resourceVersion).toBe('string');
      expect(Number(b.metadata.resourceVersion)).toBeGreaterThan(Number(a.metadata.resourceVersion));
      expect(a.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
      expect(a.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect(a.metadata.generation).toBe(1);
      const relabeled = (await lab.call('PATCH', '/api/v1/namespaces/s1/pods/meta-a', { metadata: { labels: { x: 'y' } } }, { 'content-type': 'application/merge-patch+json' })).body;
      expect(relabeled.metadata.generation).toBe(1);
      expect(relabeled.metadata.uid).toBe(a.metadata.uid);
      const respec = (await lab.call('PATCH', '/api/v1/namespaces/s1/pods/meta-a', { spec: { nodeName: 'n1' } }, { 'content-type': 'application/merge-patch+json' })).body;
      expect(respec.metadata.generation).toBe(2);
      expect(lab.server.resourceVersion()).toBe(respec.metadata.resourceVersion);
    });

    it('a write that changes nothing keeps the resourceVersion', async () => {
      const cur = (await lab.call('GET', '/api/v1/namespaces/s1/pods/meta-a')).body;
      const same = await lab.call('PUT', '/api/v1/namespaces/s1/pods/meta-a', cur);
      expect(same.body.metadata.resourceVersion).toBe(cur.metadata.resourceVersion);
    });

    it('labels every namespace with kubernetes.io/metadata.name', async () => {
      const ns = (await lab.call('GET', '/api/v1/namespaces/s1')).body;
      expect(ns.metadata.labels['kubernetes.io/metadata.name']).toBe('s1');
      expect(ns.status.phase).toBe('Active');
    });
  });

  describe('defaulting', () => {
    const np = (name: string, spec: Record<string, unknown>) =>
      lab.call('POST', '/apis/networking.k8s.io/v1/namespaces/s1/networkpolicies', { metadata: { name }, spec });

    it('NetworkPolicy policyTypes and port protocol', async () => {
      const ing = (await np('d-ing', { podSelector: {}, ingress: [{ ports: [{ port: 80 }, { port: 53, protocol: 'UDP' }] }] })).body;
      expect(ing.spec.policyTypes).toEqual(['Ingress']);
      expect(ing.spec.ingress[0].ports).toEqual([{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }]);
      const eg = (await np('d-eg', { podSelector: {}, egress: [{ ports: [{ port: 'dns' }] }] })).body;
      expect(eg.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(eg.spec.egress[0].ports[0].protocol).toBe('TCP');
      const emptyEgress = (await np('d-eg0', { podSelector: {}, egress: [] })).body;
      expect(emptyEgress.spec.policyTypes).toEqual(['Ingress']);
      const explicit = (await np('d-ex', { podSelector: {}, policyTypes: ['Egress'] })).body;
      expect(explicit.spec.policyTypes).toEqual(['Egress']);
      const bad = await np('d-bad', { podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 70 }], from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] });
      expect(bad.status).toBe(422);
      expect(bad.body.details.causes.map((c: { field: string }) => c.field)).toEqual(['spec.ingress[0].ports[0].endPort', 'spec.ingress[0].from[0].ipBlock.cidr']);
    });

    it.each([
      ['matchExpressions operator', { podSelector: { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['x'] }] } }, 'spec.podSelector.matchExpressions[0].operator'],
      ['In without values', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }] }] }, 'spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values'],
      ['Exists with values', { podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }, 'spec.podSelector.matchExpressions[0].values'],
      ['bad matchLabels value', { podSelector: { matchLabels: { a: 'not ok!' } } }, 'spec.podSelector.matchLabels'],
      ['except outside cidr', { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }] }, 'spec.egress[0].to[0].ipBlock.except[0]'],
      ['except equal to cidr', { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.0.0/16'] } }] }] }, 'spec.egress[0].to[0].ipBlock.except[0]'],
      ['IPv6 except outside', { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: 'fd00::/64', except: ['fd00:0:0:1::/80'] } }] }] }, 'spec.egress[0].to[0].ipBlock.except[0]'],
      ['bad named port', { podSelector: {}, ingress: [{ ports: [{ port: 'Not_A_Name' }] }] }, 'spec.ingress[0].ports[0].port'],
      ['ipBlock with a selector', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] }, 'spec.ingress[0].from[0]'],
    ])('NetworkPolicy validation: %s', async (_n, spec, field) => {
      const r = await np(`v-${Math.random().toString(36).slice(2, 8)}`, spec);
      expect(r.status).toBe(422);
      expect(r.body.details.causes.map((c: { field: string }) => c.field)).toEqual([field]);
    });

    it('NetworkPolicy validation accepts good except ranges and named ports', async () => {
      const r = await np('v-good', { podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists' }] }, ingress: [{ ports: [{ port: 'http-alt' }], from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.5.0/24'] } }, { ipBlock: { cidr: 'fd00::/64', except: ['fd00::1:0:0/96'] } }] }] });
      expect(r.status).toBe(201);
    });

    it('Pod container port protocol', async () => {
      const p = (await lab.call('POST', '/api/v1/namespaces/s1/pods', podBody('d-pod'))).body;
      expect(p.spec.containers[0].ports).toEqual([{ containerPort: 8080, protocol: 'TCP' }]);
      expect(p.status.phase).toBe('Pending');
    });

    it('Service targetPort, protocol and ClusterIP from the service CIDR', async () => {
      const svc = (name: string, spec: Record<string, unknown>) => lab.call('POST', '/api/v1/namespaces/s1/services', { metadata: { name }, spec });
      const a = (await svc('svc-a', { selector: { app: 'a' }, ports: [{ port: 80 }] })).body;
      expect(a.spec.ports).toEqual([{ port: 80, targetPort: 80, protocol: 'TCP' }]);
      expect(a.spec.clusterIP).toMatch(/^10\.123\.0\.\d+$/);
      expect(a.spec.clusterIPs).toEqual([a.spec.clusterIP]);
      const b = (await svc('svc-b', { ports: [{ name: 'h', port: 80, targetPort: 'http' }, { name: 'd', port: 53, protocol: 'UDP' }] })).body;
      expect(b.spec.clusterIP).not.toBe(a.spec.clusterIP);
      expect(b.spec.ports[0].targetPort).toBe('http');
      const pinned = (await svc('svc-c', { clusterIP: '10.123.0.200', ports: [{ port: 1 }] })).body;
      expect(pinned.spec.clusterIP).toBe('10.123.0.200');
      expect((await svc('svc-d', { clusterIP: '10.123.0.200', ports: [{ port: 1 }] })).status).toBe(422);
      expect((await svc('svc-e', { clusterIP: '192.168.0.1', ports: [{ port: 1 }] })).status).toBe(422);
      const dry = (await lab.call('POST', '/api/v1/namespaces/s1/services?dryRun=All', { metadata: { name: 'svc-dry' }, spec: { clusterIP: '10.123.0.150', ports: [{ port: 1 }] } })).body;
      expect(dry.spec.clusterIP).toBe('10.123.0.150');
      expect((await lab.call('GET', '/api/v1/namespaces/s1/services/svc-dry')).status).toBe(404);
      expect((await svc('svc-after-dry', { clusterIP: '10.123.0.150', ports: [{ port: 1 }] })).status).toBe(201);
      const headless = (await svc('svc-h', { clusterIP: 'None', ports: [{ port: 1 }] })).body;
      expect(headless.spec.clusterIPs).toEqual(['None']);
      // A changed ClusterIP is refused; the address is freed on delete.
      const moved = await lab.call('PATCH', '/api/v1/namespaces/s1/services/svc-c', { spec: { clusterIP: '10.123.0.201' } }, { 'content-type': 'application/merge-patch+json' });
      expect(moved.status).toBe(422);
      await lab.call('DELETE', '/api/v1/namespaces/s1/services/svc-c');
      expect((await svc('svc-f', { clusterIP: '10.123.0.200', ports: [{ port: 1 }] })).status).toBe(201);
    });
  });

  describe('status subresource', () => {
    it('main-resource writes keep status; /status writes change only status', async () => {
      const p = (await lab.call('POST', '/api/v1/namespaces/s1/pods', podBody('st'))).body;
      const put = (await lab.call('PUT', '/api/v1/namespaces/s1/pods/st', { ...p, status: { phase: 'Running' }, spec: { ...p.spec, nodeName: 'n1' } })).body;
      expect(put.status.phase).toBe('Pending');
      expect(put.spec.nodeName).toBe('n1');
      const st = (await lab.call('PUT', '/api/v1/namespaces/s1/pods/st/status', { ...put, status: { phase: 'Running', podIP: '10.0.0.5' }, spec: { ...put.spec, nodeName: 'n2' } })).body;
      expect(st.status).toEqual({ phase: 'Running', podIP: '10.0.0.5' });
      expect(st.spec.nodeName).toBe('n1');
      const patched = (await lab.call('PATCH', '/api/v1/namespaces/s1/pods/st/status', { status: { podIPs: [{ ip: '10.0.0.5' }] }, spec: { nodeName: 'n3' } }, { 'content-type': 'application/merge-patch+json' })).body;
      expect(patched.status.podIPs).toEqual([{ ip: '10.0.0.5' }]);
      expect(patched.spec.nodeName).toBe('n1');
    });

    it('works the same for a custom resource that declares it, and is absent otherwise', async () => {
      const base = '/apis/test.palisade.dev/v1/namespaces/s1/widgets';
      const w = (await lab.call('POST', base, { apiVersion: 'test.palisade.dev/v1', kind: 'Widget', metadata: { name: 'ws' }, spec: { color: 'green' }, status: { phase: 'Ignored' } })).body;
      expect(w.status).toBeUndefined();
      expect(w.spec.size).toBe(3);
      const st = (await lab.call('PATCH', `${base}/ws/status`, { status: { phase: 'Ready' }, spec: { color: 'blue' } }, { 'content-type': 'application/merge-patch+json' })).body;
      expect(st.status.phase).toBe('Ready');
      expect(st.spec.color).toBe('green');
      const main = (await lab.call('PATCH', `${base}/ws`, { status: { phase: 'X' }, spec: { color: 'blue' } }, { 'content-type': 'application/merge-patch+json' })).body;
      expect(main.status.phase).toBe('Ready');
      expect(main.spec.color).toBe('blue');
      const gadget = await lab.call('POST', '/apis/test.palisade.dev/v1/gadgets', { apiVersion: 'test.palisade.dev/v1', kind: 'Gadget', metadata: { name: 'g' }, status: { kept: true } });
      expect(gadget.body.status).toEqual({ kept: true });
      expect((await lab.call('GET', '/apis/test.palisade.dev/v1/gadgets/g/status')).status).toBe(404);
    });
  });

  describe('custom resource schema', () => {
    const base = '/apis/test.palisade.dev/v1/namespaces/s1/widgets';
    const widget = (name: string, spec: Record<string, unknown>) => lab.call('POST', base, { apiVersion: 'test.palisade.dev/v1', kind: 'Widget', metadata: { name }, spec });

    it('prunes unknown fields, keeps preserved ones, fills defaults', async () => {
      const w = (await widget('prune', { color: 'red', bogus: 1, extra: { any: { thing: true } } })).body;
      expect(w.spec).toEqual({ color: 'red', size: 3, extra: { any: { thing: true } } });
    });

    it('drops nulls in non-nullable fields, then defaults them', async () => {
      const w = (await widget('nulls', { color: 'red', size: null, owner: null })).body;
      expect(w.spec).toEqual({ color: 'red', size: 3 });
    });

    it('rejects wrong types, enum values, minimums and missing required fields', async () => {
      const r = await widget('bad', { size: 0, tags: 'x' });
      expect(r.status).toBe(422);
      const fields = r.body.details.causes.map((c: { field: string }) => c.field).sort();
      expect(fields).toEqual(['spec.color', 'spec.size', 'spec.tags']);
      expect((await widget('bad2', { color: 'pink' })).status).toBe(422);
    });

    it('rejects unknown fields when the client asks for strict field validation', async () => {
      const r = await lab.call('POST', `${base}?fieldValidation=Strict`, { apiVersion: 'test.palisade.dev/v1', kind: 'Widget', metadata: { name: 'strict' }, spec: { color: 'red', bogus: 1 } });
      expect(r.status).toBe(400);
      expect(r.body.message).toContain('unknown field "spec.bogus"');
    });

    it('warns about unknown fields by default (Warning header) and drops them', async () => {
      const r = await fetch(`${lab.server.url}${base}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ apiVersion: 'test.palisade.dev/v1', kind: 'Widget', metadata: { name: 'warned' }, spec: { color: 'red', bogus: 1 } }),
      });
      expect(r.status).toBe(201);
      expect(r.headers.get('warning')).toBe('299 - "unknown field \\"spec.bogus\\""');
    });

    it('serves every version of one stored object', async () => {
      const v1beta1 = (await lab.call('GET', '/apis/test.palisade.dev/v1beta1/namespaces/s1/widgets/prune')).body;
      expect(v1beta1.apiVersion).toBe('test.palisade.dev/v1beta1');
      expect(v1beta1.spec.color).toBe('red');
    });
  });

  describe('selectors', () => {
    beforeAll(async () => {
      const pods: [string, string, Record<string, string>, string][] = [
        ['s2', 'sel-a', { app: 'a', tier: 'fe' }, 'n1'],
        ['s2', 'sel-b', { app: 'b', tier: 'be' }, 'n2'],
        ['s2', 'sel-c', { app: 'c' }, 'n1'],
      ];
      for (const [ns, name, labels, node] of pods) {
        expect((await lab.call('POST', `/api/v1/namespaces/${ns}/pods`, podBody(name, labels, { nodeName: node }))).status).toBe(201);
      }
    });
    const names = async (q: string) => {
      const r = await lab.call('GET', `/api/v1/namespaces/s2/pods?${q}`);
      expect(r.status).toBe(200);
      return r.body.items.map((p: { metadata: { name: string } }) => p.metadata.name);
    };
    it.each([
      ['app=a', ['sel-a']],
      ['app==b', ['sel-b']],
      ['app!=a', ['sel-b', 'sel-c']],
      ['app in (a,c)', ['sel-a', 'sel-c']],
      ['app notin (a,c)', ['sel-b']],
      ['tier', ['sel-a', 'sel-b']],
      ['!tier', ['sel-c']],
      ['tier,app!=b', ['sel-a']],
      ['app in (a, b),tier notin (be)', ['sel-a']],
    ])('labelSelector %s', async (sel, want) => {
      expect(await names(`labelSelector=${encodeURIComponent(sel)}`)).toEqual(want);
    });
    it.each([
      ['spec.nodeName=n1', ['sel-a', 'sel-c']],
      ['metadata.name=sel-b', ['sel-b']],
      ['metadata.name!=sel-b,spec.nodeName==n1', ['sel-a', 'sel-c']],
      ['metadata.namespace=s1', []],
    ])('fieldSelector %s', async (sel, want) => {
      expect(await names(`fieldSelector=${encodeURIComponent(sel)}`)).toEqual(want);
    });
    it('rejects unsupported fields and malformed selectors with 400', async () => {
      expect((await lab.call('GET', '/api/v1/pods?fieldSelector=spec.bogus%3Dx')).body).toMatchObject({ code: 400, message: 'field label not supported: spec.bogus' });
      expect((await lab.call('GET', '/api/v1/pods?labelSelector=a%20in%20b')).status).toBe(400);
    });
    it('lists across namespaces with the list resourceVersion; built-in items carry no kind', async () => {
      const r = await lab.call('GET', '/api/v1/pods?labelSelector=app');
      expect(r.body.kind).toBe('PodList');
      expect(r.body.metadata.resourceVersion).toBe(lab.server.resourceVersion());
      expect(r.body.metadata.continue).toBeUndefined();
      expect(r.body.items.length).toBeGreaterThan(1);
      expect(r.body.items[0].kind).toBeUndefined();
    });

    it('pages with limit/continue, every page from the snapshot of the first', async () => {
      const first = (await lab.call('GET', '/api/v1/namespaces/s2/pods?labelSelector=app&limit=1')).body;
      expect(first.items.map((p: { metadata: { name: string } }) => p.metadata.name)).toEqual(['sel-a']);
      expect(first.metadata.remainingItemCount).toBe(2);
      const rv = first.metadata.resourceVersion;
      // Changes after the first page do not show up in the later ones.
      const b = lab.server.get('v1', 'Pod', 's2', 'sel-b');
      lab.server.update({ ...b, metadata: { ...b.metadata, labels: { ...b.metadata.labels, changed: 'yes' } } });
      const second = (await lab.call('GET', `/api/v1/namespaces/s2/pods?labelSelector=app&limit=1&continue=${first.metadata.continue}`)).body;
      expect(second.items.map((p: { metadata: { name: string; labels: Record<string, string> } }) => [p.metadata.name, p.metadata.labels.changed])).toEqual([['sel-b', undefined]]);
      expect(second.metadata.resourceVersion).toBe(rv);
      const last = (await lab.call('GET', `/api/v1/namespaces/s2/pods?limit=5&continue=${second.metadata.continue}`)).body;
      expect(last.items.map((p: { metadata: { name: string } }) => p.metadata.name)).toEqual(['sel-c']);
      expect(last.metadata.continue).toBeUndefined();
      // A finished list's token is spent.
      expect((await lab.call('GET', `/api/v1/namespaces/s2/pods?limit=1&continue=${second.metadata.continue}`)).status).toBe(410);
    });

    it('answers 410 for a continue token older than the compaction, 400 for a malformed one', async () => {
      const first = (await lab.call('GET', '/api/v1/namespaces/s2/pods?limit=1')).body;
      lab.server.compact();
      const r = await lab.call('GET', `/api/v1/namespaces/s2/pods?limit=1&continue=${first.metadata.continue}`);
      expect(r.status).toBe(410);
      expect(r.body).toMatchObject({ kind: 'Status', reason: 'Expired', code: 410 });
      expect((await lab.call('GET', '/api/v1/namespaces/s2/pods?limit=1&continue=garbage')).status).toBe(400);
      expect((await lab.call('GET', '/api/v1/namespaces/s2/pods?limit=-1')).status).toBe(400);
    });

    it('deletecollection honours the selector', async () => {
      const r = await lab.call('DELETE', '/api/v1/namespaces/s2/pods?labelSelector=tier');
      expect(r.status).toBe(200);
      expect(await names('')).toEqual(['sel-c']);
    });
  });

  describe('watch', () => {
    it('replays from a resourceVersion, then streams live events', async () => {
      const rv = lab.server.resourceVersion();
      lab.server.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'w1', namespace: 's2' } });
      const w = await openWatch(lab.server.url, `/api/v1/namespaces/s2/configmaps?watch=1&resourceVersion=${rv}`);
      try {
        await waitFor(() => w.events.length === 1, 'replayed event');
        expect(w.events[0]).toMatchObject({ type: 'ADDED', object: { kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'w1' } } });
        const cm = lab.server.get('v1', 'ConfigMap', 's2', 'w1');
        lab.server.update({ ...cm, data: { k: 'v' } });
        lab.server.delete('v1', 'ConfigMap', 's2', 'w1');
        lab.server.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'other-ns', namespace: 's1' } });
        await waitFor(() => w.events.length === 3, 'live events');
        expect(w.events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
        const rvs = w.events.map((e) => Number(e.object.metadata.resourceVersion));
        expect(rvs).toEqual([...rvs].sort((a, b) => a - b));
      } finally {
        w.close();
      }
    });

    it('without a resourceVersion starts with the current objects', async () => {
      const w = await openWatch(lab.server.url, '/api/v1/namespaces?watch=true');
      try {
        await waitFor(() => w.events.some((e) => e.object.metadata.name === 's1'), 'synthetic ADDED');
        expect(w.events.every((e) => e.type === 'ADDED')).toBe(true);
      } finally {
        w.close();
      }
    });

    it('reports an object leaving or entering the selector as DELETED / ADDED', async () => {
      lab.server.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'mover', namespace: 's2', labels: { watch: 'yes' } } });
      const w = await openWatch(lab.server.url, `/api/v1/namespaces/s2/configmaps?watch=1&labelSelector=watch%3Dyes&resourceVersion=${lab.server.resourceVersion()}`);
      try {
        let cm = lab.server.get('v1', 'ConfigMap', 's2', 'mover');
        cm = lab.server.update({ ...cm, metadata: { ...cm.metadata, labels: { watch: 'no' } } });
        lab.server.update({ ...cm, metadata: { ...cm.metadata, labels: { watch: 'yes' } } });
        await waitFor(() => w.events.length === 2, 'two events');
        expect(w.events.map((e) => e.type)).toEqual(['DELETED', 'ADDED']);
      } finally {
        w.close();
      }
    });

    it('sends periodic BOOKMARKs only when allowed', async () => {
      const w = await openWatch(lab.server.url, `/api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion=${lab.server.resourceVersion()}`);
      const plain = await openWatch(lab.server.url, `/api/v1/pods?watch=1&resourceVersion=${lab.server.resourceVersion()}`);
      try {
        await waitFor(() => w.events.length >= 2, 'bookmarks');
        expect(w.events[0]).toMatchObject({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: lab.server.resourceVersion() } } });
        expect(plain.events).toEqual([]);
      } finally {
        w.close();
        plain.close();
      }
    });

    it('follows any write with a BOOKMARK on other resources\' watches (progress)', async () => {
      const quiet = await startApiServer({ bookmarkIntervalMs: 0, progressBookmarkMs: 50 });
      try {
        const w = await openWatch(quiet.url, `/api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion=${quiet.resourceVersion()}`);
        const plain = await openWatch(quiet.url, `/api/v1/pods?watch=1&resourceVersion=${quiet.resourceVersion()}`);
        const cm = quiet.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'default' } });
        await waitFor(() => w.events.length === 1, 'progress bookmark');
        expect(w.events[0]).toMatchObject({ type: 'BOOKMARK', object: { metadata: { resourceVersion: cm.metadata.resourceVersion } } });
        // A write this watch saw as an event needs no bookmark.
        quiet.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
        await waitFor(() => w.events.length === 2, 'pod event');
        await new Promise((r) => setTimeout(r, 200));
        expect(w.events.map((e) => e.type)).toEqual(['BOOKMARK', 'ADDED']);
        expect(plain.events.map((e) => e.type)).toEqual(['ADDED']);
        w.close();
        plain.close();
      } finally {
        await quiet.close();
      }
    });

    it('answers 410 Gone (an ERROR event) for a resourceVersion older than the window', async () => {
      const old = lab.server.resourceVersion();
      lab.server.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'gone', namespace: 's2' } });
      lab.server.compact();
      const w = await openWatch(lab.server.url, `/api/v1/configmaps?watch=1&resourceVersion=${old}`);
      await w.ended;
      expect(w.events).toHaveLength(1);
      expect(w.events[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
      // The current resourceVersion is still a valid resume point.
      const ok = await openWatch(lab.server.url, `/api/v1/configmaps?watch=1&resourceVersion=${lab.server.resourceVersion()}`);
      lab.server.delete('v1', 'ConfigMap', 's2', 'gone');
      await waitFor(() => ok.events.length === 1, 'event after compaction');
      ok.close();
    });

    it('keeps only compactAfter events', async () => {
      const old = lab.server.resourceVersion();
      for (let i = 0; i < 60; i++) lab.server.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `many-${i}`, namespace: 's2' } });
      const w = await openWatch(lab.server.url, `/api/v1/configmaps?watch=1&resourceVersion=${old}`);
      await w.ended;
      expect(w.events[0]?.object.code).toBe(410);
    });

    it('forgets a watch when its client goes away', async () => {
      const before = lab.server.watchCount();
      const w = await openWatch(lab.server.url, '/api/v1/pods?watch=1&allowWatchBookmarks=true');
      await waitFor(() => lab.server.watchCount() === before + 1, 'watch registered');
      w.close();
      await waitFor(() => lab.server.watchCount() === before, 'watch released');
    });

    it('ends the stream after timeoutSeconds', async () => {
      const w = await openWatch(lab.server.url, '/api/v1/nodes?watch=1&timeoutSeconds=1');
      await w.ended;
      expect(w.events).toEqual([]);
    });

    it('streams Table rows when asked (kubectl get -w)', async () => {
      const w = await openWatch(lab.server.url, `/apis/test.palisade.dev/v1/namespaces/s2/widgets?watch=1&resourceVersion=${lab.server.resourceVersion()}`, {
        accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json',
      });
      try {
        lab.server.create({ apiVersion: 'test.palisade.dev/v1', kind: 'Widget', metadata: { name: 'tw', namespace: 's2' }, spec: { color: 'blue', size: 9 } });
        await waitFor(() => w.events.length === 1, 'table event');
        const t = w.events[0]?.object;
        expect(t.kind).toBe('Table');
        expect(t.columnDefinitions.map((c: { name: string }) => c.name)).toEqual(['Name', 'Color', 'Size', 'Phase', 'Owner', 'Age']);
        expect(t.rows[0].cells.slice(0, 5)).toEqual(['tw', 'blue', 9, null, null]);
        expect(t.rows[0].object).toMatchObject({ kind: 'PartialObjectMetadata', metadata: { name: 'tw', namespace: 's2' } });
      } finally {
        w.close();
      }
    });
  });

  describe('deletion', () => {
    it('a namespace takes its objects with it, each reported DELETED', async () => {
      await lab.call('POST', '/api/v1/namespaces', { metadata: { name: 'doomed' } });
      await lab.call('POST', '/api/v1/namespaces/doomed/pods', podBody('p'));
      await lab.call('POST', '/api/v1/namespaces/doomed/configmaps', { metadata: { name: 'c' } });
      await lab.call('POST', '/apis/test.palisade.dev/v1/namespaces/doomed/widgets', { apiVersion: 'test.palisade.dev/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { color: 'red' } });
      const w = await openWatch(lab.server.url, `/api/v1/pods?watch=1&resourceVersion=${lab.server.resourceVersion()}`);
      try {
        const r = await lab.call('DELETE', '/api/v1/namespaces/doomed', { propagationPolicy: 'Background' });
        expect(r.status).toBe(200);
        await waitFor(() => w.events.length === 1, 'pod DELETED');
        expect(w.events[0]).toMatchObject({ type: 'DELETED', object: { metadata: { name: 'p', namespace: 'doomed' } } });
        expect(lab.server.list('v1', 'ConfigMap', 'doomed')).toEqual([]);
        expect(lab.server.list('test.palisade.dev/v1', 'Widget', 'doomed')).toEqual([]);
        expect((await lab.call('GET', '/api/v1/namespaces/doomed')).status).toBe(404);
      } finally {
        w.close();
      }
    });

    it('an object with finalizers is marked, and goes when the last finalizer is removed', async () => {
      await lab.call('POST', '/api/v1/namespaces/s1/configmaps', { metadata: { name: 'fin', finalizers: ['example.com/keep'] } });
      const marked = (await lab.call('DELETE', '/api/v1/namespaces/s1/configmaps/fin')).body;
      expect(marked.metadata.deletionTimestamp).toBeDefined();
      expect((await lab.call('GET', '/api/v1/namespaces/s1/configmaps/fin')).status).toBe(200);
      const r = await lab.call('PATCH', '/api/v1/namespaces/s1/configmaps/fin', [{ op: 'remove', path: '/metadata/finalizers' }], { 'content-type': 'application/json-patch+json' });
      expect(r.status).toBe(200);
      expect((await lab.call('GET', '/api/v1/namespaces/s1/configmaps/fin')).status).toBe(404);
    });

    it('delete preconditions and dryRun', async () => {
      const cm = (await lab.call('POST', '/api/v1/namespaces/s1/configmaps', { metadata: { name: 'pre' } })).body;
      const wrong = await lab.call('DELETE', '/api/v1/namespaces/s1/configmaps/pre', { preconditions: { resourceVersion: '1' } });
      expect(wrong.status).toBe(409);
      const dry = await lab.call('DELETE', '/api/v1/namespaces/s1/configmaps/pre?dryRun=All');
      expect(dry.status).toBe(200);
      expect((await lab.call('GET', '/api/v1/namespaces/s1/configmaps/pre')).status).toBe(200);
      const ok = await lab.call('DELETE', '/api/v1/namespaces/s1/configmaps/pre', { preconditions: { uid: cm.metadata.uid } });
      expect(ok.status).toBe(200);
    });
  });

  describe('CustomResourceDefinitions at run time', () => {
    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'sprockets.rt.example.com' },
      spec: {
        group: 'rt.example.com',
        scope: 'Cluster',
        names: { plural: 'sprockets', singular: 'sprocket', kind: 'Sprocket', shortNames: ['spr'] },
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
      },
    };

    it('rejects an inconsistent CRD', async () => {
      const r = await lab.call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { ...crd, metadata: { name: 'wrong.name' } });
      expect(r.status).toBe(422);
    });

    it('creating one serves its resource; deleting it removes resource and objects', async () => {
      expect((await lab.call('GET', '/apis/rt.example.com/v1/sprockets')).status).toBe(404);
      const created = (await lab.call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd)).body;
      expect(created.status.conditions.find((c: { type: string }) => c.type === 'Established').status).toBe('True');
      const disc = (await lab.call('GET', '/apis/rt.example.com/v1')).body;
      expect(disc.resources).toEqual([{ name: 'sprockets', singularName: 'sprocket', namespaced: false, kind: 'Sprocket', verbs: expect.arrayContaining(['watch']), shortNames: ['spr'] }]);
      const groups = (await lab.call('GET', '/apis')).body.groups.map((g: { name: string }) => g.name);
      expect(groups).toContain('rt.example.com');
      expect((await lab.call('POST', '/apis/rt.example.com/v1/sprockets', { apiVersion: 'rt.example.com/v1', kind: 'Sprocket', metadata: { name: 's' } })).status).toBe(201);
      const w = await openWatch(lab.server.url, `/apis/rt.example.com/v1/sprockets?watch=1&resourceVersion=${lab.server.resourceVersion()}`);
      expect((await lab.call('DELETE', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/sprockets.rt.example.com')).status).toBe(200);
      // The watch sees its objects go, then ends with the resource.
      await w.ended;
      expect(w.events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['DELETED s']);
      expect((await lab.call('GET', '/apis/rt.example.com/v1/sprockets')).status).toBe(404);
      // Re-created CRD starts empty.
      await lab.call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
      expect((await lab.call('GET', '/apis/rt.example.com/v1/sprockets')).body.items).toEqual([]);
    });
  });

  describe('discovery', () => {
    it('legacy resource lists carry scope, kind, verbs, short names, categories and subresources', async () => {
      const core = (await lab.call('GET', '/api/v1')).body;
      const pods = core.resources.find((r: { name: string }) => r.name === 'pods');
      expect(pods).toMatchObject({ namespaced: true, kind: 'Pod', shortNames: ['po'], categories: ['all'] });
      expect(pods.verbs).toEqual(expect.arrayContaining(['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']));
      expect(core.resources.find((r: { name: string }) => r.name === 'pods/status')).toMatchObject({ verbs: ['get', 'patch', 'update'] });
      expect(core.resources.find((r: { name: string }) => r.name === 'nodes')).toMatchObject({ namespaced: false });
      const w = (await lab.call('GET', '/apis/test.palisade.dev')).body;
      expect(w.preferredVersion.version).toBe('v1');
    });

    it('aggregated discovery when asked for it', async () => {
      const r = await fetch(`${lab.server.url}/apis`, { headers: { accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json' } });
      expect(r.headers.get('content-type')).toContain('as=APIGroupDiscoveryList');
      const body = (await lab.call('GET', '/apis', undefined, { accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList' })).body;
      expect(body.kind).toBe('APIGroupDiscoveryList');
      const plain = (await lab.call('GET', '/apis')).body;
      expect(plain.kind).toBe('APIGroupList');
      const net = body.items.find((g: { metadata: { name: string } }) => g.metadata.name === 'networking.k8s.io');
      expect(net.versions[0].resources[0]).toMatchObject({ resource: 'networkpolicies', scope: 'Namespaced', responseKind: { kind: 'NetworkPolicy' } });
      const t = body.items.find((g: { metadata: { name: string } }) => g.metadata.name === 'test.palisade.dev');
      expect(t.versions.map((v: { version: string }) => v.version)).toEqual(['v1', 'v1beta1']);
    });

    it('/version', async () => {
      expect((await lab.call('GET', '/version')).body).toMatchObject({ major: '1', minor: '32' });
    });
  });
});

describe('startApiServer options', () => {
  it('binds another loopback address and fails clearly on a bad CRD file', async () => {
    const s = await startApiServer({ host: '127.0.0.2' });
    try {
      expect(s.url).toMatch(/^http:\/\/127\.0\.0\.2:\d+$/);
      expect((await fetch(`${s.url}/api`)).status).toBe(200);
    } finally {
      await s.close();
    }
    await expect(startApiServer({ crdFiles: ['/nonexistent/crd.yaml'] })).rejects.toThrow(/reading crd file \/nonexistent\/crd.yaml/);
  });

  it('writes a kubeconfig for another server address when asked', async () => {
    const s = await startApiServer();
    const dir = await mkdtemp(join(tmpdir(), 'pal-kc-'));
    try {
      await s.writeKubeconfig(join(dir, 'kc'), { server: 'http://10.99.0.1:6443', namespace: 'lab' });
      const text = await readFile(join(dir, 'kc'), 'utf8');
      expect(text).toContain('server: http://10.99.0.1:6443');
      expect(text).toContain('namespace: lab');
      expect((await stat(join(dir, 'kc'))).mode & 0o777).toBe(0o600);
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
