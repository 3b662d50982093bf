/**
 * Inspection on the real datapath: a Kubernetes-mode agent (compiled, in its own node
 * namespace, eBPF programs on the pods' veths) against the in-memory API server. A pod
 * under a deny policy is pinged: the kernel's drop event comes out of GET /v1/flows with
 * both pods named and `default-deny`, /metrics counts the drop by reason, and the pod's
 * PalisadeEndpoint shows the enforcement.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ApiServer } from '../../../pkg/apiserver/index.ts';
import type { FlowRecord } from '../../../pkg/flow/types.ts';
import { eventually as poll } from '../../helpers/eventually.ts';
import { describePrivileged } from '../../helpers/privileged.ts';
import { startTestCluster, type TestCluster } from '../cni/cluster.ts';
import { Node, testDatapath } from '../cni/harness.ts';
import { parsePrometheusText, valueOf } from '../../unit/api/promtext.ts';


const eventually = <T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> =>
  poll(read, ok, what, { tries: 100, intervalMs: 100 });

describePrivileged('inspection on the real datapath', () => {
  let node: Node;
  let api: ApiServer;
  let cluster: TestCluster | undefined;
  let pa: string;
  let pb: string;
  const ip: Record<string, string> = {};
  const k8sArgs = (name: string) => `IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=${name};K8S_POD_UID=${String(api.get('v1', 'Pod', 'x', name).metadata.uid)}`;

  beforeAll(async () => {
    node = new Node('insp', '10.126.0.0/24');
    await node.init();
    cluster = await startTestCluster(node);
    api = cluster.api;
    // Health port 0: a free one, reached from the test through the node namespace below.
    await node.startAgent(['--health-port', '0']);
    pa = await node.addPod('a');
    pb = await node.addPod('b');
    for (const [name, netns] of [['a', pa], ['b', pb]] as const) {
      const r = await node.cni('ADD', { containerId: `insp-${name}`, netns, args: k8sArgs(name) });
      expect(r.code, `${r.stdout}\n${node.agentLog.slice(-2000)}`).toBe(0);
      ip[name] = (r.json!.ips as { address: string }[])[0]!.address.split('/')[0]!;
      const cur = api.get('v1', 'Pod', 'x', name);
      api.update({ ...cur, status: { phase: 'Running', podIP: ip[name], podIPs: [{ ip: ip[name] }] } }, 'status');
    }
    const w = await node.get(`/v1/wait?resourceVersion=${api.resourceVersion()}&timeoutMs=20000`);
    expect(w.status, JSON.stringify(w.body)).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await node?.stopAgent().catch(() => undefined);
    await cluster?.close();
    await node?.destroy();
  });

  it.skipIf(testDatapath() !== 'linux')('a kernel drop is a flow record naming both pods and default-deny; metrics count it', async () => {
    const since = Date.now() - 1;
    const denied = await node.inPod(pa, 'ping', ['-c', '1', '-W', '1', ip.b!]);
    expect(denied.code, denied.stdout).not.toBe(0);
    const drops = await eventually(async () => {
      const r = await node.get(`/v1/flows?verdict=dropped&pod=x/b&since=${since}`);
      return (r.body as { items: FlowRecord[] }).items;
    }, (items) => items.length >= 1, 'the drop record');
    expect(drops[0]).toMatchObject({
      node: node.nodeName, verdict: 'dropped', reason: 'policy-denied', direction: 'ingress', protocol: 'ICMP',
      src: { ip: ip.a, namespace: 'x', pod: 'a' }, dst: { ip: ip.b, namespace: 'x', pod: 'b' },
      policy: 'default-deny', ruleId: 0,
    });

    // b is not isolated for egress, a not for ingress: allowed, and no policy decided it.
    const allowed = await node.inPod(pb, 'ping', ['-c', '1', '-W', '2', ip.a!]);
    expect(allowed.code, allowed.stdout).toBe(0);
    const ok = await eventually(async () => {
      const r = await node.get(`/v1/flows?verdict=allowed&pod=x/a&since=${since}`);
      return (r.body as { items: FlowRecord[] }).items;
    }, (items) => items.some((f) => f.src.pod === 'b'), 'the allowed record');
    expect(ok.find((f) => f.src.pod === 'b' && f.direction === 'egress')).toMatchObject({ policy: 'none', protocol: 'ICMP' });

    const metrics = await node.get('/metrics');
    const fams = parsePrometheusText(String(metrics.body));
    expect(valueOf(fams, 'palisade_datapath_drops_total', { reason: 'policy-denied', direction: 'ingress' })).toBeGreaterThanOrEqual(1);
    expect(valueOf(fams, 'palisade_map_entries', { map: 'endpoints' })).toBe(2);
    const status = (await node.get('/v1/status')).body as { drops: { lastMinute: number } };
    expect(status.drops.lastMinute).toBeGreaterThanOrEqual(1);
  });

  it('the pods\' PalisadeEndpoints show their enforcement; the node object its health', async () => {
    const pep = await eventually(async () => {
      try {
        return api.get('palisade.dev/v1alpha1', 'PalisadeEndpoint', 'x', 'b').status as Record<string, unknown> | undefined;
      } catch {
        return undefined;
      }
    }, (s) => s?.state === 'ready', 'the pep of b');
    expect(pep).toMatchObject({ ingressEnforcement: 'enabled', egressEnforcement: 'disabled', policies: ['NetworkPolicy:x/deny-b'], ipv4: ip.b, node: node.nodeName });
    const pn = api.get('palisade.dev/v1alpha1', 'PalisadeNode', undefined, node.nodeName).status as Record<string, unknown>;
    expect(pn).toMatchObject({ health: 'healthy' });
  });
});
