// Kubernetes mode end to end: an agent started with --kubeconfig against the in-memory
// API server reads its pod CIDR from its Node, and a CNI ADD returns only once the pod's
// policy is in the datapath (NETPOL 26): a pod selected by a deny-all-ingress policy is
// isolated from its first packet.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ApiServer } from '../../../pkg/apiserver/index.ts';
import { describePrivileged } from '../../helpers/privileged.ts';
import { startTestCluster, type TestCluster } from './cluster.ts';
import { echoAcrossRestart, Node, testDatapath, watchEndpointEntries } from './harness.ts';


describePrivileged('CNI in Kubernetes mode', () => {
  let node: Node;
  let api: ApiServer;
  let cluster: TestCluster | undefined;
  let pa: string;
  let pb: string;

  beforeAll(async () => {
    node = new Node('k8s', '10.127.0.0/24');
    await node.init();
    cluster = await startTestCluster(node, { fixedUids: true, port80: true });
    api = cluster.api;
    await node.startAgent();
    pa = await node.addPod('a');
    pb = await node.addPod('b');
  });
  afterAll(async () => {
    await node?.stopAgent().catch(() => undefined);
    await cluster?.close();
    await node?.destroy();
  });

  const k8sArgs = (name: string) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=${name};K8S_POD_UID=uid-${name}`;

  it('the pod CIDR comes from the Node object', async () => {
    const status = await node.get('/v1/status');
    expect(status.body).toMatchObject({ mode: 'kubernetes', ready: true });
    const r = await node.cni('ADD', { containerId: 'ka', netns: pa, args: k8sArgs('a') });
    expect(r.code, `${r.stdout}\n${node.agentLog.slice(-2000)}`).toBe(0);
    expect((r.json!.ips as { address: string }[])[0]!.address).toMatch(/^10\.127\.0\.\d+\/32$/);
  });

  it.skipIf(testDatapath() !== 'linux')('a pod under deny-all ingress is isolated as soon as ADD returns', async () => {
    const r = await node.cni('ADD', { containerId: 'kb', netns: pb, args: k8sArgs('b') });
    expect(r.code, `${r.stdout}\n${node.agentLog.slice(-2000)}`).toBe(0);
    const ipB = (r.json!.ips as { address: string }[])[0]!.address.split('/')[0]!;
    // First packet after ADD: dropped (no retry loop that could hide a late policy).
    const denied = await node.inPod(pa, 'ping', ['-c', '1', '-W', '1', ipB]);
    expect(denied.code, denied.stdout).not.toBe(0);
    const eps = (await node.get('/v1/endpoints')).body as { containerId: string; ingressEnforced?: boolean }[];
    expect(eps.find((e) => e.containerId === 'kb')?.ingressEnforced).toBe(true);
    expect(eps.find((e) => e.containerId === 'ka')?.ingressEnforced).toBe(false);
    // b is not isolated for egress and a not for ingress: b reaches a.
    const ipA = ((await node.get('/v1/endpoints')).body as { containerId: string; ipv4: string }[])
      .find((e) => e.containerId === 'ka')!.ipv4;
    const allowed = await node.inPod(pb, 'ping', ['-c', '1', '-W', '2', ipA]);
    expect(allowed.code, allowed.stdout).toBe(0);
  });

  it.skipIf(testDatapath() !== 'linux')('an agent restart keeps an allowed connection (b to a) flowing', async () => {
    const ipA = ((await node.get('/v1/endpoints')).body as { containerId: string; ipv4: string }[])
      .find((e) => e.containerId === 'ka')!.ipv4;
    const ipB = ((await node.get('/v1/endpoints')).body as { containerId: string; ipv4: string }[])
      .find((e) => e.containerId === 'kb')!.ipv4;
    // Meanwhile a probes the isolated b every 50 ms: not one reply may come back while
    // the agent restarts (restored endpoints keep their policy; no fail-open window).
    const probe = node.inPod(pa, 'ping', ['-c', '140', '-i', '0.05', '-W', '1', ipB]);
    // And the pinned endpoints map never loses a's or b's entry: restored endpoints are
    // registered before the control plane's first reconcile.
    const eps = (await node.get('/v1/endpoints')).body as { ifindex: number }[];
    const watch = watchEndpointEntries(node, eps.map((e) => e.ifindex));
    const r = await echoAcrossRestart(node, pa, pb, ipA, 8080);
    const missing = await watch.stop();
    expect(missing).toEqual([]);
    const probed = await probe;
    expect(probed.stdout, probed.stdout).toMatch(/140 packets transmitted, 0 received/);
    expect(r.aliveAtRestart, r.out).toBe(true);
    expect(r.code, `${r.out}\n${node.agentLog.slice(-2000)}`).toBe(0);
    expect(Number(r.out.split(' ')[1])).toBeGreaterThan(100);
    // And b is still isolated after the restart.
    expect((await node.inPod(pa, 'ping', ['-c', '1', '-W', '1', ipB])).code).not.toBe(0);
  });

  it('/v1/wait resolves for the API server\'s current resourceVersion', async () => {
    const rv = api.resourceVersion();
    const r = await node.get(`/v1/wait?resourceVersion=${rv}&timeoutMs=10000`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect((r.body as { resourceVersion: string }).resourceVersion).toBeDefined();
    const bad = await node.get('/v1/wait?resourceVersion=abc');
    expect(bad.status).toBe(400);
  });

  it('DEL removes the endpoint in Kubernetes mode too', async () => {
    for (const [id, p] of [['ka', pa], ['kb', pb]] as const) {
      const r = await node.cni('DEL', { containerId: id, netns: p, args: k8sArgs(id.slice(1)) });
      expect(r.code, r.stdout).toBe(0);
    }
    expect(node.leases()).toEqual([]);
    expect(await node.hostLinks()).toEqual([]);
  });
});
