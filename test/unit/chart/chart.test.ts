// The Helm chart as a cluster would receive it: `helm lint --strict`, `helm template`
// parsed and checked for what matters on a node (mounts and their propagation, host
// network, priority, probes, privileges), RBAC verbs exactly, the values schema
// rejecting bad values, and manifests/ in sync with the chart.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const root = new URL('../../..', import.meta.url).pathname;
const chart = join(root, 'charts/palisade');

function findHelm(): string | null {
  const local = join(root, '.tools/go/bin/helm');
  if (existsSync(local)) return local;
  const r = spawnSync('sh', ['-c', 'command -v helm'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}
const helm = findHelm();
if (!helm) console.warn('SKIP chart tests: helm not installed (make setup installs it into .tools/go/bin)');

// A go-installed helm reports Kubernetes v1.20 unless told; the chart needs >= 1.28.
const KUBE = ['--kube-version', '1.32.0'];

interface K8sObject { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown }

function helmRun(args: string[]) {
  return spawnSync(helm!, args, { encoding: 'utf8', cwd: root });
}

function render(set: string[] = [], extra: string[] = []): K8sObject[] {
  const args = ['template', 'palisade', chart, '--namespace', 'kube-system', ...KUBE, ...extra];
  for (const s of set) args.push('--set', s);
  const r = helmRun(args);
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject).filter(Boolean);
}

function find(objs: K8sObject[], kind: string, name?: string): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  const o = objs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`${kind} ${name ?? ''} not rendered`);
  return o;
}

interface Mount { name: string; mountPath: string; mountPropagation?: string; readOnly?: boolean }

describe.skipIf(!helm)('helm chart charts/palisade', () => {
  const objs = helm ? render() : [];
  const ds = helm ? find(objs, 'DaemonSet', 'palisade-agent') : undefined;
  const pod = ds?.spec.template.spec;
  const agent = pod?.containers.find((c: { name: string }) => c.name === 'agent');
  const init = (name: string) => pod.initContainers.find((c: { name: string }) => c.name === name);
  const hostPathOf = (volume: string) => pod.volumes.find((v: { name: string }) => v.name === volume)?.hostPath;

  it('passes helm lint --strict', () => {
    const r = helmRun(['lint', '--strict', chart, ...KUBE]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('renders exactly the expected objects, all in the release namespace when namespaced', () => {
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'ClusterRole/palisade-agent', 'ClusterRoleBinding/palisade-agent', 'ConfigMap/palisade-config',
      'DaemonSet/palisade-agent', 'ServiceAccount/palisade-agent',
    ]);
    for (const o of objs.filter((x) => !x.kind.startsWith('Cluster'))) expect(o.metadata.namespace).toBe('kube-system');
  });

  it('runs the agent on every node in the host network at node-critical priority', () => {
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
    expect(pod.serviceAccountName).toBe('palisade-agent');
    expect(agent.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
  });

  it('mounts bpffs Bidirectional only in the privileged mount init container', () => {
    const m = init('mount-bpffs');
    expect(m.securityContext.privileged).toBe(true);
    expect(m.volumeMounts).toEqual([{ name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'Bidirectional' }]);
    expect(m.command.join(' ')).toContain('mount -t bpf bpf /sys/fs/bpf');
    expect(hostPathOf('bpffs')).toEqual({ path: '/sys/fs/bpf', type: 'DirectoryOrCreate' });
    for (const c of [agent, init('install-cni')]) {
      for (const vm of c.volumeMounts as Mount[]) expect(vm.mountPropagation).not.toBe('Bidirectional');
    }
  });

  it('installs the CNI plugin unprivileged, before the agent, into the node CNI bin dir', () => {
    expect(pod.initContainers.map((c: { name: string }) => c.name)).toEqual(['mount-bpffs', 'install-cni']);
    const c = init('install-cni');
    expect(c.command).toEqual(['/opt/palisade/cni/install-cni.sh', '/opt/palisade/cni', '/host/opt/cni/bin']);
    expect(c.securityContext).toMatchObject({ privileged: false, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c.volumeMounts).toEqual([{ name: 'cni-bin', mountPath: '/host/opt/cni/bin' }]);
    expect(hostPathOf('cni-bin')).toEqual({ path: '/opt/cni/bin', type: 'DirectoryOrCreate' });
  });

  it('gives the agent the host paths it needs with the right propagation', () => {
    const mounts = new Map((agent.volumeMounts as Mount[]).map((m) => [m.mountPath, m]));
    expect(mounts.get('/sys/fs/bpf')).toMatchObject({ name: 'bpffs', mountPropagation: 'HostToContainer' });
    expect(mounts.get('/var/run/netns')).toMatchObject({ name: 'netns', mountPropagation: 'HostToContainer' });
    expect(mounts.get('/etc/cni/net.d')?.name).toBe('cni-conf');
    expect(mounts.get('/run/palisade')?.name).toBe('run');
    expect(mounts.get('/var/lib/palisade')?.name).toBe('state');
    expect(mounts.get('/lib/modules')).toMatchObject({ readOnly: true });
    expect(mounts.get('/etc/palisade')).toMatchObject({ name: 'config', readOnly: true });
    expect(mounts.has('/opt/cni/bin') || mounts.has('/host/opt/cni/bin')).toBe(false);
    expect(hostPathOf('netns')?.path).toBe('/var/run/netns');
    expect(hostPathOf('run')?.path).toBe('/run/palisade');
    expect(hostPathOf('state')?.path).toBe('/var/lib/palisade');
    expect(hostPathOf('cni-conf')?.path).toBe('/etc/cni/net.d');
    expect(hostPathOf('xtables-lock')).toEqual({ path: '/run/xtables.lock', type: 'FileOrCreate' });
  });

  it('binds the health listener to the node IP by default and probes it there', () => {
    const get = (p: { httpGet: object }) => p.httpGet;
    // No host: kubelet probes the pod IP, which is the node's IP on the host network.
    expect(get(agent.livenessProbe)).toEqual({ port: 9876, path: '/healthz' });
    expect(get(agent.startupProbe)).toEqual({ port: 9876, path: '/healthz' });
    expect(get(agent.readinessProbe)).toEqual({ port: 9876, path: '/readyz' });
    expect(agent.env).toContainEqual({ name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } });
  });

  it('probes a loopback-bound health listener on loopback, and passes the address in the config', () => {
    const local = find(render(['healthBindAddress=127.0.0.1']), 'DaemonSet').spec.template.spec.containers[0];
    expect(local.livenessProbe.httpGet).toEqual({ host: '127.0.0.1', port: 9876, path: '/healthz' });
    expect(local.readinessProbe.httpGet).toEqual({ host: '127.0.0.1', port: 9876, path: '/readyz' });
    expect(local.args).toEqual(['--config', '/etc/palisade/agent.json', '--node-name', '$(NODE_NAME)']);
    expect(local.env.map((e: { name: string }) => e.name)).not.toContain('HOST_IP');
    const cfg = JSON.parse(find(render(['healthBindAddress=127.0.0.1']), 'ConfigMap', 'palisade-config').data['agent.json']);
    expect(cfg['health-bind-address']).toBe('127.0.0.1');
  });

  it('runs the agent privileged by default, or with only the listed capabilities', () => {
    expect(agent.securityContext).toEqual({ privileged: true });
    const restricted = find(render(['agent.privileged=false']), 'DaemonSet').spec.template.spec;
    const a = restricted.containers[0];
    expect(a.securityContext).toEqual({
      privileged: false,
      seccompProfile: { type: 'Unconfined' },
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'SYS_ADMIN', 'BPF', 'PERFMON', 'NET_RAW', 'SYS_RESOURCE', 'SYS_PTRACE'] },
    });
    expect(a.volumeMounts).toContainEqual({ name: 'host-proc-sys-net', mountPath: '/host/proc/sys/net' });
  });

  it('grants exactly the RBAC rules the agent needs: no wildcard, no secrets, no core writes', () => {
    const role = find(objs, 'ClusterRole', 'palisade-agent');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['pods', 'namespaces', 'nodes', 'services'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['palisade.dev'], resources: ['palisadenetworkpolicies'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['palisade.dev'], resources: ['palisadeendpoints', 'palisadenodes'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
      { apiGroups: ['palisade.dev'], resources: ['palisadeendpoints/status', 'palisadenodes/status'], verbs: ['get', 'update', 'patch'] },
      { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
    ]);
    const flat = JSON.stringify(role.rules);
    expect(flat).not.toContain('*');
    expect(flat).not.toContain('secrets');
    const binding = find(objs, 'ClusterRoleBinding', 'palisade-agent');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'palisade-agent' });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'palisade-agent', namespace: 'kube-system' }]);
  });

  it('puts the agent options in the ConfigMap, keyed by flag name, and restarts agents when they change', () => {
    const cfg = JSON.parse(find(objs, 'ConfigMap', 'palisade-config').data['agent.json']);
    expect(cfg).toEqual({
      'api-socket': '/var/run/palisade/cni.sock', 'bpffs-root': '/sys/fs/bpf', 'cni-conf-dir': '/etc/cni/net.d',
      'health-port': 9876, 'log-level': 'info',
      'remove-cni-conf-on-shutdown': true, 'state-dir': '/var/lib/palisade', 'l7-proxy-port': 15001,
    });
    // Kubernetes expands $(NODE_NAME) in args from the container's env.
    expect(agent.args).toEqual(['--config', '/etc/palisade/agent.json', '--node-name', '$(NODE_NAME)',
      '--health-bind-address', '$(HOST_IP)']);
    const changed = render(['mtu=1450', 'logLevel=warn', 'podCIDRSource=static', 'staticPodCIDR=10.9.0.0/24']);
    const cfg2 = JSON.parse(find(changed, 'ConfigMap').data['agent.json']);
    expect([cfg2.mtu, cfg2['log-level'], cfg2['pod-cidr']]).toEqual([1450, 'warn', '10.9.0.0/24']);
    const sum = (o: K8sObject[]) => find(o, 'DaemonSet').spec.template.metadata.annotations['checksum/config'];
    expect(sum(changed)).not.toBe(sum(objs));
  });

  it('follows custom node paths everywhere they are used', () => {
    const o = render(['bpffsRoot=/run/palisade-bpf', 'cniBinDir=/home/kubernetes/bin', 'cniConfDir=/etc/cni/conf.d', 'healthPort=9999']);
    const p = find(o, 'DaemonSet').spec.template.spec;
    const vol = (n: string) => p.volumes.find((v: { name: string }) => v.name === n).hostPath.path;
    expect([vol('bpffs'), vol('cni-bin'), vol('cni-conf')]).toEqual(['/run/palisade-bpf', '/home/kubernetes/bin', '/etc/cni/conf.d']);
    expect(p.initContainers[0].command.join(' ')).toContain('mount -t bpf bpf /run/palisade-bpf');
    expect(p.containers[0].readinessProbe.httpGet.port).toBe(9999);
    const cfg = JSON.parse(find(o, 'ConfigMap').data['agent.json']);
    expect([cfg['bpffs-root'], cfg['cni-conf-dir'], cfg['health-port']]).toEqual(['/run/palisade-bpf', '/etc/cni/conf.d', 9999]);
  });

  const bad: [string, string][] = [
    ['mtu=abc', '/mtu'],
    ['mtu=100', '/mtu'],
    ['logLevel=loud', '/logLevel'],
    ['logLevel=debug', '/logLevel'],
    ['healthPort=70000', '/healthPort'],
    ['bpffsRoot=sys/fs/bpf', '/bpffsRoot'],
    ['image.pullPolicy=Sometimes', '/image/pullPolicy'],
    ['podCIDRSource=static', '/staticPodCIDR'],
    ['agent.privileged=maybe', '/agent/privileged'],
    ['mtuu=1500', "additional properties 'mtuu'"],
  ];
  for (const [set, field] of bad) {
    it(`rejects --set ${set} naming ${field}`, () => {
      const r = helmRun(['template', 'palisade', chart, ...KUBE, '--set', set]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(field);
    });
  }

  it('includes the three CRDs with --include-crds, identical to charts/palisade/crds', () => {
    const crds = render([], ['--include-crds']).filter((o) => o.kind === 'CustomResourceDefinition');
    expect(crds.map((c) => c.metadata.name).sort()).toEqual([
      'palisadeendpoints.palisade.dev', 'palisadenetworkpolicies.palisade.dev', 'palisadenodes.palisade.dev']);
  });

  it('matches manifests/palisade.yaml and manifests/crds.yaml (charts/render-manifests.sh)', () => {
    const r = spawnSync(join(root, 'charts/render-manifests.sh'), ['--check'], {
      encoding: 'utf8', env: { ...process.env, HELM: helm! },
    });
    expect(r.status, r.stderr).toBe(0);
  });

  it('uses paths the image provides (.ci/Dockerfile)', () => {
    const dockerfile = readFileSync(join(root, '.ci/Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/stage-cni\.mjs[^\n]*--out \/opt\/palisade\/cni\b/);
    expect(agent.command).toEqual(['/opt/palisade/bin/palisade-agent']);
    expect(dockerfile).toContain('/opt/palisade/bin/palisade-agent');
  });
});
