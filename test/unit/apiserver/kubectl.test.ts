/**
 * The lab API server driven by the real kubectl (1.32): discovery, apply (create and
 * update paths, with kubectl's default strict validation), label, patch of every type,
 * delete, watch, CRD printer columns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, waitFor, type Lab } from './helpers.ts';

const MANIFEST = (port: number, label: string) => `
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {app: web, tier: ${label}}
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Pod
metadata:
  name: db
  namespace: shop
  labels: {app: db}
spec:
  containers:
  - name: pg
    image: postgres:17
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db-from-web
  namespace: shop
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: ${port}}]
`;

describe('kubectl against the lab API server', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab();
    const v = await lab.kubectlResult(['version', '--client']);
    if (v.code !== 0) throw new Error(`kubectl is needed on PATH for these tests (this machine kind ships 1.32): ${v.stderr}`);
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('lists the built-in namespaces', async () => {
    const out = await lab.kubectl(['get', 'ns']);
    expect(out).toMatch(/^NAME\s+STATUS\s+AGE/m);
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) expect(out).toMatch(new RegExp(`^${ns}\\s+Active`, 'm'));
  });

  it('applies a manifest, then applies a changed one as an update', async () => {
    const first = await lab.kubectl(['apply', '-f', '-'], MANIFEST(5432, 'front'));
    expect(first).toContain('namespace/shop created');
    expect(first).toContain('pod/web created');
    expect(first).toContain('networkpolicy.networking.k8s.io/db-from-web created');
    const rvBefore = lab.server.get('networking.k8s.io/v1', 'NetworkPolicy', 'shop', 'db-from-web').metadata.resourceVersion;

    const second = await lab.kubectl(['apply', '-f', '-'], MANIFEST(6432, 'front'));
    expect(second).toContain('namespace/shop unchanged');
    expect(second).toContain('pod/web unchanged');
    expect(second).toContain('networkpolicy.networking.k8s.io/db-from-web configured');

    const np = lab.server.get('networking.k8s.io/v1', 'NetworkPolicy', 'shop', 'db-from-web');
    expect(np.metadata.resourceVersion).not.toBe(rvBefore);
    expect(np.metadata.generation).toBe(2);
    const spec = np.spec as { ingress: { ports: unknown[] }[]; policyTypes: string[] };
    expect(spec.ingress[0]?.ports).toEqual([{ port: 6432, protocol: 'TCP' }]);
    expect(spec.policyTypes).toEqual(['Ingress']);
  });

  it('rejects an invalid object on apply with the server\'s 422 message', async () => {
    const bad = `apiVersion: v1\nkind: Pod\nmetadata: {name: broken, namespace: shop}\nspec:\n  containers: [{name: c}]\n`;
    const r = await lab.kubectlResult(['apply', '-f', '-'], bad);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Pod "broken" is invalid: spec.containers[0].image: Required value');
  });

  it('relabels a pod with --overwrite and selects by the new label', async () => {
    const r = await lab.kubectlResult(['label', 'pod', '-n', 'shop', 'web', 'tier=back']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("'tier' already has a value (front)");
    expect(await lab.kubectl(['label', 'pod', '-n', 'shop', 'web', 'tier=back', '--overwrite'])).toContain('pod/web labeled');
    const out = await lab.kubectl(['get', 'pods', '-n', 'shop', '-l', 'tier in (back)', '-o', 'name']);
    expect(out.trim()).toBe('pod/web');
    const none = await lab.kubectl(['get', 'pods', '-n', 'shop', '-l', 'tier=front', '-o', 'name']);
    expect(none.trim()).toBe('');
    // kubectl pages through a list (here one object per request) and prints it whole.
    const paged = await lab.kubectl(['get', 'pods', '-n', 'shop', '--chunk-size=1']);
    expect(paged).toMatch(/^db\s+0\/1\s+Pending/m);
    expect(paged).toMatch(/^web\s+0\/1\s+Pending/m);
    expect(paged.match(/^NAME/gm)).toHaveLength(1);
  });

  it('patches with --type merge, json and strategic', async () => {
    await lab.kubectl(['patch', 'pod', '-n', 'shop', 'web', '--type', 'merge', '-p', '{"metadata":{"annotations":{"note":"m"}}}']);
    await lab.kubectl(['patch', 'pod', '-n', 'shop', 'web', '--type', 'json', '-p', '[{"op":"add","path":"/metadata/labels/extra","value":"j"}]']);
    // Strategic: containers merge by name, ports by containerPort; a merge patch would replace the list.
    await lab.kubectl(['patch', 'pod', '-n', 'shop', 'web', '--type', 'strategic', '-p',
      '{"spec":{"containers":[{"name":"nginx","ports":[{"containerPort":443}]}]}}']);
    const pod = lab.server.get('v1', 'Pod', 'shop', 'web');
    expect(pod.metadata.annotations?.note).toBe('m');
    expect(pod.metadata.labels?.extra).toBe('j');
    const c = (pod.spec as { containers: { name: string; image: string; ports: unknown[] }[] }).containers;
    expect(c).toHaveLength(1);
    expect(c[0]?.image).toBe('nginx:1.27');
    expect(c[0]?.ports).toEqual([{ containerPort: 80, protocol: 'TCP' }, { containerPort: 443, protocol: 'TCP' }]);
    const failed = await lab.kubectlResult(['patch', 'pod', '-n', 'shop', 'web', '--type', 'json', '-p', '[{"op":"remove","path":"/metadata/labels/nope"}]']);
    expect(failed.code).not.toBe(0);
  });

  it('watches with get -w and prints a later change', async () => {
    const child = lab.kubectlSpawn(['get', 'pods', '-n', 'shop', '-w']);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(() => /^web\s/m.test(out), 'initial listing');
      expect(out).toMatch(/^NAME\s+READY\s+STATUS/m);
      lab.server.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'late', namespace: 'shop' },
        spec: { containers: [{ name: 'c', image: 'busybox' }] },
      });
      await waitFor(() => /^late\s+0\/1\s+Pending/m.test(out), 'watch line for the new pod');
    } finally {
      child.kill();
    }
  });

  it('deletes a pod and reports it gone', async () => {
    expect(await lab.kubectl(['delete', 'pod', '-n', 'shop', 'late'])).toContain('pod "late" deleted');
    const r = await lab.kubectlResult(['get', 'pod', '-n', 'shop', 'late']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('pods "late" not found');
  });

  it('prints CRD printer columns by short name, and wide columns with -o wide', async () => {
    await lab.kubectl(['apply', '-f', '-'], `apiVersion: test.palisade.dev/v1
kind: Widget
metadata: {name: w1, namespace: shop}
spec: {color: red, size: 7, owner: ann}
`);
    const w = lab.server.get('test.palisade.dev/v1', 'Widget', 'shop', 'w1');
    lab.server.update({ ...w, status: { phase: 'Ready' } }, 'status');
    const out = await lab.kubectl(['get', 'wd', '-A']);
    expect(out).toMatch(/^NAMESPACE\s+NAME\s+COLOR\s+SIZE\s+PHASE\s+AGE\s*$/m);
    expect(out).toMatch(/^shop\s+w1\s+red\s+7\s+Ready\s+\d+s\s*$/m);
    const wide = await lab.kubectl(['get', 'widgets.test.palisade.dev', '-n', 'shop', '-o', 'wide']);
    expect(wide).toMatch(/^w1\s+red\s+7\s+Ready\s+ann\s+\d+s\s*$/m);
  });

  it('applies changes to a custom resource (merge patch) and a Service (strategic, keyed ports)', async () => {
    const widget = (color: string) => `apiVersion: test.palisade.dev/v1\nkind: Widget\nmetadata: {name: w1, namespace: shop}\nspec: {color: ${color}, size: 7, owner: ann}\n`;
    expect(await lab.kubectl(['apply', '-f', '-'], widget('green'))).toContain('widget.test.palisade.dev/w1 configured');
    expect((lab.server.get('test.palisade.dev/v1', 'Widget', 'shop', 'w1').spec as { color: string }).color).toBe('green');
    const svc = (ports: string) => `apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec:\n  selector: {app: web}\n  ports:\n${ports}`;
    await lab.kubectl(['apply', '-f', '-'], svc('  - {name: http, port: 80, targetPort: 8080}\n  - {name: dns, port: 53, protocol: UDP}\n'));
    const ip = (lab.server.get('v1', 'Service', 'shop', 'api').spec as { clusterIP: string }).clusterIP;
    expect(await lab.kubectl(['apply', '-f', '-'], svc('  - {name: https, port: 443, targetPort: 8443}\n  - {name: http, port: 80, targetPort: 9090}\n'))).toContain('service/api configured');
    const spec = lab.server.get('v1', 'Service', 'shop', 'api').spec as { clusterIP: string; ports: unknown[] };
    expect(spec.clusterIP).toBe(ip);
    // Ports merge by `port` (dns is gone, http keeps its entry) in the order of the new
    // configuration (kubectl sends $setElementOrder).
    expect(spec.ports).toEqual([
      { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' },
      { name: 'http', port: 80, targetPort: 9090, protocol: 'TCP' },
    ]);
  });

  it('rejects a custom resource that violates its schema', async () => {
    const r = await lab.kubectlResult(['apply', '-f', '-'], `apiVersion: test.palisade.dev/v1
kind: Widget
metadata: {name: w2, namespace: shop}
spec: {color: purple}
`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('spec.color: Unsupported value: "purple"');
    // kubectl asks for strict field validation: an unknown field fails the apply.
    const unknown = await lab.kubectlResult(['apply', '-f', '-'], `apiVersion: test.palisade.dev/v1
kind: Widget
metadata: {name: w3, namespace: shop}
spec: {color: red, colour: red}
`);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('unknown field "spec.colour"');
  });

  it('server-side apply creates, updates, and removes fields its manager stopped applying', async () => {
    const cm = (data: string, labels: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: shop, labels: {${labels}}}\ndata: {${data}}\n`;
    expect(await lab.kubectl(['apply', '--server-side', '-f', '-'], cm('k: "1", old: "x"', 'a: "1"'))).toContain('configmap/cfg serverside-applied');
    // Another manager owns label b.
    await lab.kubectl(['apply', '--server-side', '--field-manager', 'other', '-f', '-'], 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: shop, labels: {b: "2"}}\n');
    await lab.kubectl(['apply', '--server-side', '-f', '-'], cm('k: "2"', 'a: "1"'));
    const got = lab.server.get('v1', 'ConfigMap', 'shop', 'cfg');
    expect(got.data).toEqual({ k: '2' });
    expect(got.metadata.labels).toEqual({ a: '1', b: '2' });
    const managers = (got.metadata.managedFields as { manager: string; operation: string }[]).map((m) => `${m.manager}/${m.operation}`).sort();
    expect(managers).toEqual(['kubectl/Apply', 'other/Apply']);
    // Dropping label a from kubectl's configuration removes it; b stays with its owner.
    await lab.kubectl(['apply', '--server-side', '-f', '-'], cm('k: "2"', ''));
    expect(lab.server.get('v1', 'ConfigMap', 'shop', 'cfg').metadata.labels).toEqual({ b: '2' });
    // Another manager setting kubectl's field to another value conflicts, unless forced.
    const steal = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: shop}\ndata: {k: "3"}\n';
    const r = await lab.kubectlResult(['apply', '--server-side', '--field-manager', 'other', '-f', '-'], steal);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('conflict with "kubectl"');
    expect(r.stderr).toContain('.data.k');
    expect(lab.server.get('v1', 'ConfigMap', 'shop', 'cfg').data).toEqual({ k: '2' });
    await lab.kubectl(['apply', '--server-side', '--field-manager', 'other', '--force-conflicts', '-f', '-'], steal);
    const stolen = lab.server.get('v1', 'ConfigMap', 'shop', 'cfg');
    expect(stolen.data).toEqual({ k: '3' });
    // "other" no longer applies label b, and nobody else owns it: it is gone.
    expect(Object.keys(stolen.metadata.labels ?? {})).toEqual([]);
    // kubectl no longer owns data.k, so dropping it from kubectl's configuration keeps it.
    await lab.kubectl(['apply', '--server-side', '-f', '-'], 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: shop}\n');
    expect(lab.server.get('v1', 'ConfigMap', 'shop', 'cfg').data).toEqual({ k: '3' });
  });

  it('server-side apply merges containers by name for built-in kinds and works for custom resources', async () => {
    await lab.kubectl(['apply', '--server-side', '--field-manager', 'sidecar', '-f', '-'], `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers:
  - name: proxy
    image: envoy
`);
    const names = (lab.server.get('v1', 'Pod', 'shop', 'web').spec as { containers: { name: string }[] }).containers.map((c) => c.name);
    expect(names).toEqual(['nginx', 'proxy']);
    await lab.kubectl(['apply', '--server-side', '-f', '-'], 'apiVersion: test.palisade.dev/v1\nkind: Widget\nmetadata: {name: w1, namespace: shop}\nspec: {color: blue, size: 7, owner: ann}\n');
    expect(lab.server.get('test.palisade.dev/v1', 'Widget', 'shop', 'w1').spec).toEqual({ color: 'blue', size: 7, owner: 'ann' });
  });

  it('creates namespaces, configmaps and services with kubectl create (protobuf bodies)', async () => {
    expect(await lab.kubectl(['create', 'ns', 'gen'])).toContain('namespace/gen created');
    await lab.kubectl(['create', 'cm', 'c', '-n', 'gen', '--from-literal=a=b', '--from-literal=c=d']);
    expect(lab.server.get('v1', 'ConfigMap', 'gen', 'c').data).toEqual({ a: 'b', c: 'd' });
    const args = ['create', 'svc', 'nodeport', 's', '-n', 'gen', '--tcp=80:http', '--node-port=30080'];
    await lab.kubectl(args);
    // What kubectl meant to send, in JSON, against what the server decoded from protobuf.
    const want = JSON.parse(await lab.kubectl([...args, '--dry-run=client', '-o', 'json']));
    const got = lab.server.get('v1', 'Service', 'gen', 's');
    const spec = got.spec as Record<string, unknown>;
    expect(got.metadata.labels).toEqual(want.metadata.labels);
    expect(spec.selector).toEqual(want.spec.selector);
    expect(spec.type).toBe('NodePort');
    expect(spec.ports).toEqual(want.spec.ports);
    expect(spec.clusterIP).toMatch(/^10\.96\./);
    await lab.kubectl(['create', 'svc', 'externalname', 'ext', '-n', 'gen', '--external-name=db.example.com']);
    expect((lab.server.get('v1', 'Service', 'gen', 'ext').spec as Record<string, unknown>).externalName).toBe('db.example.com');
    expect(await lab.kubectl(['get', 'svc', '-n', 'gen', 's'])).toMatch(/^s\s+NodePort\s+10\.96\.\d+\.\d+\s+<none>\s+80:30080\/TCP\s+\d+s/m);
  });

  it('deletes a namespace with its contents', async () => {
    await lab.kubectl(['delete', 'ns', 'shop']);
    expect(lab.server.list('v1', 'Pod', 'shop')).toEqual([]);
    expect(lab.server.list('test.palisade.dev/v1', 'Widget', 'shop')).toEqual([]);
    const r = await lab.kubectlResult(['get', 'ns', 'shop']);
    expect(r.stderr).toContain('namespaces "shop" not found');
  });
});
