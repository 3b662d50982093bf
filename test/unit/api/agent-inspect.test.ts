/**
 * The scenario without root: a Kubernetes-mode agent (real control plane and
 * compiler on the in-repo API server, in-memory datapath and pod network). A default-deny
 * policy applied with `kubectl apply`, a denied probe, then: `kubectl get pep` shows the
 * enforcement, GET /v1/flows shows that very drop with its policy, /metrics counts it.
 * The same after an allow policy: the flow is allowed by that policy. CNI DEL removes the
 * pod's PalisadeEndpoint.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../../../pkg/agent/agent.ts';
import { parseAgentArgs } from '../../../pkg/agent/options.ts';
import type { ControlPlaneHandle } from '../../../pkg/agent/seams.ts';
import { startApiServer, type ApiServer } from '../../../pkg/apiserver/index.ts';
import { createKubernetesControlPlane, type KubernetesControlPlane } from '../../../pkg/controlplane/kubernetes.ts';
import { MemoryRouting } from '../../../pkg/controlplane/routes.ts';
import { MemoryDatapath } from '../../../pkg/datapath/memory/index.ts';
import { TCP_SYN } from '../../../pkg/datapath/memory/datapath.ts';
import { PROTO_TCP } from '../../../pkg/datapath/types.ts';
import { MemoryPodNetwork } from '../../../pkg/endpoint/podnet-memory.ts';
import type { FlowRecord } from '../../../pkg/flow/types.ts';
import { loadApiConfig } from '../../../pkg/k8s/kubeconfig.ts';
import { KubeStatusApi } from '../../../pkg/status/kube.ts';
import { parsePrometheusText, valueOf } from './promtext.ts';
import { eventually as poll } from '../../helpers/eventually.ts';

const CRDS = new URL('../../../manifests/crds.yaml', import.meta.url).pathname;
const NODE = 'insp-node';

/** The agent's control-plane handle, as pkg/agent/kubernetes.ts builds it (routing in memory here). */
class Handle implements ControlPlaneHandle {
  readonly cp: KubernetesControlPlane;
  constructor(cp: KubernetesControlPlane) { this.cp = cp; }
  start() { return this.cp.start(); }
  upsertEndpoint(ep: Parameters<KubernetesControlPlane['upsertEndpoint']>[0]) { return this.cp.upsertEndpoint(ep); }
  removeEndpoint(id: number) { return this.cp.removeEndpoint(id); }
  notReadyReason() { return this.cp.ready ? undefined : 'control plane: informers not synced'; }
  revision() { return this.cp.realizedRevision; }
  resourceVersion() { return this.cp.status().realizedResourceVersion || undefined; }
  waitFor(rv: string, t: number) { return this.cp.waitFor(rv, t); }
  endpointDetails(id: number) {
    const e = this.cp.status().endpoints.find((x) => x.endpointId === id);
    if (!e) return undefined;
    return {
      identity: e.policy?.identity, ingressEnforced: e.policy?.ingressEnforced ?? false,
      egressEnforced: e.policy?.egressEnforced ?? false, ingressPolicies: e.policy?.ingressPolicies ?? [],
      egressPolicies: e.policy?.egressPolicies ?? [], revision: e.realizedRevision,
    };
  }
  lastCompile() { return this.cp.lastCompile; }
  onRealized(l: Parameters<KubernetesControlPlane['onRealized']>[0]) { return this.cp.onRealized(l); }
  pods() { return this.cp.cluster.store.snapshot().pods; }
  stop() { return this.cp.stop(); }
}

let dir: string;
let api: ApiServer;
let kubeconfig: string;
let agent: Agent;
let dp: MemoryDatapath;
let socket: string;
const podnet = new MemoryPodNetwork();
const ips: Record<string, string> = {};
const ifindex: Record<string, number> = {};

function kubectl(args: string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args],
      { env: { ...process.env, HOME: dir }, timeout: 30_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`));
        else resolve(stdout);
      });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

/** HTTP on the agent: the unix socket (`socket`) or the TCP health listener. */
function call(path: string, o: { method?: string; body?: unknown; tcp?: boolean } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const target = o.tcp ? { host: '127.0.0.1', port: agent.healthPort } : { socketPath: socket };
    const req = request({ ...target, path, method: o.method ?? 'GET', headers: { 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(o.body === undefined ? undefined : JSON.stringify(o.body));
  });
}

const eventually = <T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> =>
  poll(read, ok, what, { tries: 150, intervalMs: 50 });

async function cni(command: 'ADD' | 'DEL', pod: string) {
  // The agent checks that the netns path exists: a plain file stands in for it.
  const netns = join(dir, `netns-${pod}`);
  await writeFile(netns, '');
  podnet.namespaces.add(netns);
  const uid = String(api.get('v1', 'Pod', 'demo', pod).metadata.uid);
  const r = await call('/v1/cni', {
    method: 'POST',
    body: {
      command, containerId: `cid-${pod}`, netns, ifName: 'eth0', path: '',
      args: { K8S_POD_NAMESPACE: 'demo', K8S_POD_NAME: pod, K8S_POD_UID: uid, IgnoreUnknown: '1' },
      config: { cniVersion: '1.0.0', name: 'palisade', type: 'palisade' },
    },
  });
  expect(r.status, r.body).toBe(200);
  return JSON.parse(r.body);
}

/** kubectl apply, then wait until the agent realized the API state that includes it. */
async function applyAndWait(yaml: string): Promise<void> {
  await kubectl(['apply', '-f', '-'], yaml);
  const r = await call(`/v1/wait?resourceVersion=${api.resourceVersion()}&timeoutMs=20000`);
  expect(r.status, r.body).toBe(200);
}

function probe(sport: number) {
  return dp.verdict({
    ifindex: ifindex.server!, direction: 'ingress', srcIp: ips.client!, dstIp: ips.server!,
    protocol: PROTO_TCP, srcPort: sport, dstPort: 80, tcpFlags: TCP_SYN,
  });
}

async function flows(query: string): Promise<FlowRecord[]> {
  const r = await call(`/v1/flows?${query}`, { tcp: true });
  expect(r.status, r.body).toBe(200);
  return JSON.parse(r.body).items;
}

async function metrics() {
  const r = await call('/metrics', { tcp: true });
  return parsePrometheusText(r.body);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pal-inspect-'));
  api = await startApiServer({ crdFiles: [CRDS] });
  kubeconfig = join(dir, 'kubeconfig');
  await api.writeKubeconfig(kubeconfig);
  api.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE }, spec: { podCIDR: '10.7.0.0/24' } });
  api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', labels: { 'kubernetes.io/metadata.name': 'demo' } } });
  for (const name of ['client', 'server']) {
    api.create({
      apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'demo', labels: { app: name } },
      spec: { nodeName: NODE, containers: [{ name: 'c', image: 'probe', ports: [{ containerPort: 80, protocol: 'TCP' }] }] },
    });
  }
  dp = new MemoryDatapath();
  const kc = loadApiConfig(kubeconfig);
  const cp = await createKubernetesControlPlane({
    kubeConfig: kc, nodeName: NODE, datapath: dp, routing: new MemoryRouting(), problemEvents: false,
  });
  socket = join(dir, 'run/agent.sock');
  const opts = parseAgentArgs(['--kubeconfig', kubeconfig, '--node-name', NODE, '--pod-cidr', '10.7.0.0/24',
    '--state-dir', join(dir, 'state'), '--api-socket', socket, '--datapath', 'memory', '--health-port', '0']);
  agent = await startAgent(opts, { podnet, datapath: dp, controlPlane: new Handle(cp), statusApi: new KubeStatusApi(kc), log: () => {} });
  for (const pod of ['server', 'client']) {
    const res = await cni('ADD', pod);
    ips[pod] = String(res.result.ips[0].address).split('/')[0]!;
    // What the kubelet does after ADD: the pod's IP goes into its status.
    const cur = api.get('v1', 'Pod', 'demo', pod);
    api.update({ ...cur, status: { phase: 'Running', podIP: ips[pod], podIPs: [{ ip: ips[pod] }] } }, 'status');
  }
  const eps = JSON.parse((await call('/v1/endpoints')).body) as { pod: string; ifindex: number }[];
  for (const e of eps) ifindex[e.pod.split('/')[1]!] = e.ifindex;
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await api?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('why was this dropped', () => {
  it('default deny: pep shows enforcement, the drop is a flow naming default-deny, metrics count it', async () => {
    await applyAndWait(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: demo}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
`);
    const since = Date.now() - 1;
    expect(probe(41000).verdict).toBe('dropped');

    const pep = await eventually(async () => JSON.parse(await kubectl(['get', 'pep', '-n', 'demo', 'server', '-o', 'json'])),
      (o) => o.status?.ingressEnforcement === 'enabled', 'the pep to show ingress enforcement');
    expect(pep.status).toMatchObject({
      egressEnforcement: 'disabled', policies: ['NetworkPolicy:demo/default-deny'], policyCount: 1,
      ipv4: ips.server, node: NODE, state: 'ready',
    });
    expect(pep.metadata.ownerReferences[0]).toMatchObject({ kind: 'Pod', name: 'server' });
    const table = await kubectl(['get', 'pep', '-A']);
    expect(table).toMatch(new RegExp(`demo\\s+server\\s+\\d+\\s+enabled\\s+disabled\\s+1\\s+\\d+\\s+${ips.server!.replace(/\./g, '\\.')}\\s+${NODE}\\s+ready`));

    const drops = await eventually(() => flows(`verdict=dropped&pod=demo/server&since=${since}`), (f) => f.length === 1, 'the drop flow');
    expect(drops[0]).toMatchObject({
      node: NODE, verdict: 'dropped', reason: 'policy-denied', direction: 'ingress', protocol: 'TCP',
      src: { ip: ips.client, port: 41000, namespace: 'demo', pod: 'client' },
      dst: { ip: ips.server, port: 80, namespace: 'demo', pod: 'server' },
      policy: 'default-deny', ruleId: 0,
    });

    const m = await metrics();
    expect(valueOf(m, 'palisade_datapath_drops_total', { reason: 'policy-denied', direction: 'ingress' })).toBe(1);
    expect(valueOf(m, 'palisade_flows_total', { verdict: 'dropped', direction: 'ingress' })).toBe(1);
    expect(valueOf(m, 'palisade_policy_realization_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(valueOf(m, 'palisade_endpoints')).toBe(2);
    expect(valueOf(m, 'palisade_map_entries', { map: 'endpoints' })).toBe(2);
    expect(valueOf(m, 'palisade_status_writes_total', { kind: 'PalisadeEndpoint', operation: 'create', outcome: 'ok' })).toBeGreaterThanOrEqual(2);

    const status = JSON.parse((await call('/v1/status', { tcp: true })).body);
    expect(status).toMatchObject({ node: NODE, mode: 'kubernetes', ready: true, endpoints: 2, drops: { lastMinute: 1, total: 1 } });
    expect(status.identities).toBeGreaterThanOrEqual(2);
  });

  it('an allow policy: the flow is allowed and attributed to it', async () => {
    await applyAndWait(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-client, namespace: demo}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80, protocol: TCP}]
`);
    const since = Date.now() - 1;
    expect(probe(41001).verdict).toBe('allowed');
    const allowed = await eventually(() => flows(`verdict=allowed&pod=demo/client&since=${since}`), (f) => f.length === 1, 'the allowed flow');
    expect(allowed[0]).toMatchObject({
      verdict: 'allowed', direction: 'ingress', src: { pod: 'client', port: 41001 }, dst: { pod: 'server', port: 80 },
      policy: 'NetworkPolicy:demo/allow-client',
    });
    expect(allowed[0]!.ruleId).not.toBe(0);
    const pep = await eventually(async () => JSON.parse(await kubectl(['get', 'pep', '-n', 'demo', 'server', '-o', 'json'])),
      (o) => o.status?.policyCount === 2, 'the pep to list both policies');
    expect(pep.status.policies).toEqual(['NetworkPolicy:demo/allow-client', 'NetworkPolicy:demo/default-deny']);
    expect(valueOf(await metrics(), 'palisade_datapath_packets_total', { verdict: 'allowed', direction: 'ingress' })).toBe(1);
  });

  it('the node object, and CNI DEL removes the pod\'s pep', async () => {
    const node = await eventually(async () => JSON.parse(await kubectl(['get', 'palisadenode', NODE, '-o', 'json'])),
      (o) => o.status?.endpoints === 2, 'the node object');
    expect(node.status).toMatchObject({ health: 'healthy', agentVersion: expect.stringMatching(/^\d+\.\d+\.\d+/), mapPressure: 0, datapathMode: 'memory' });
    await cni('DEL', 'client');
    await eventually(async () => (await kubectl(['get', 'pep', '-n', 'demo', '-o', 'name'])).trim().split('\n'),
      (names) => names.length === 1 && names[0] === 'palisadeendpoint.palisade.dev/server', 'the client pep to go');
  });
});
