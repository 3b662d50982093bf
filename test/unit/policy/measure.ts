/**
 * Measures a full compile on a synthetic large cluster: 10k pods over 100 nodes (about 100
 * local), 100 namespaces, 1k policies of mixed shapes (selectors, namespaceSelectors,
 * ipBlocks with excepts, numeric and named ports, egress). Not a test: prints numbers.
 *
 *   node test/unit/policy/measure.ts [pods] [policies]
 *
 * (Node 24 runs TypeScript directly by stripping types.)
 */
import { PolicyCompiler } from '../../../pkg/policy/compile.ts';
import type {
  ClusterSnapshot, LocalEndpoint, Namespace, NetworkPolicy, Node, Pod,
} from '../../../pkg/policy/snapshot.ts';

const PODS = Number(process.argv[2] ?? 10_000);
const POLICIES = Number(process.argv[3] ?? 1_000);
const NODES = 100;
const NAMESPACES = 100;
const APPS_PER_NS = 10;

function build(): ClusterSnapshot {
  const namespaces = new Map<string, Namespace>();
  const pods = new Map<string, Pod>();
  const nodes = new Map<string, Node>();
  const policies = new Map<string, NetworkPolicy>();
  for (let n = 0; n < NODES; n++) {
    nodes.set(`node-${n}`, { metadata: { name: `node-${n}` }, status: { addresses: [{ type: 'InternalIP', address: `192.168.${n >> 8}.${n & 255}` }] } });
  }
  for (let i = 0; i < NAMESPACES; i++) {
    namespaces.set(`ns-${i}`, { metadata: { name: `ns-${i}`, labels: { 'kubernetes.io/metadata.name': `ns-${i}`, team: `t${i % 7}` } } });
  }
  for (let i = 0; i < PODS; i++) {
    const h = Math.imul(i + 1, 2654435761) >>> 0;
    const ns = `ns-${i % NAMESPACES}`;
    const app = `app-${h % APPS_PER_NS}`;
    const node = (h >>> 8) % NODES;
    const ip = `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    pods.set(`${ns}/p-${i}`, {
      metadata: { name: `p-${i}`, namespace: ns, labels: { app, 'pod-template-hash': `h${(i >> 3) % 3}`, tier: i % 3 ? 'be' : 'fe' } },
      spec: { nodeName: `node-${node}`, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: i % 5 ? 8080 : 9090 }, { name: 'metrics', containerPort: 9100 }] }] },
      status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
    });
  }
  for (let i = 0; i < POLICIES; i++) {
    const ns = `ns-${i % NAMESPACES}`;
    const app = `app-${(Math.floor(i / NAMESPACES) * 3 + i) % APPS_PER_NS}`;
    const shape = Math.floor(i / NAMESPACES) % 5;
    const spec: NetworkPolicy['spec'] = { podSelector: { matchLabels: { app } } };
    if (shape === 0) spec.ingress = [{ from: [{ podSelector: { matchLabels: { app: `app-${(i + 1) % APPS_PER_NS}` } } }], ports: [{ port: 8080 }, { port: 'metrics' }] }];
    if (shape === 1) spec.ingress = [{ from: [{ namespaceSelector: { matchLabels: { team: `t${i % 7}` } }, podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['fe'] }] } }] }];
    if (shape === 2) {
      spec.policyTypes = ['Egress'];
      spec.egress = [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '192.168.0.0/16'] } }], ports: [{ port: 443 }] },
        { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'app-0' } } }], ports: [{ port: 'http' }] }];
    }
    if (shape === 3) spec.ingress = [{ from: [{ ipBlock: { cidr: `10.${100 + (i % 3)}.0.0/16`, except: [`10.${100 + (i % 3)}.${i % 200}.0/24`] } }], ports: [{ protocol: 'UDP', port: 53 }] }];
    if (shape === 4) { spec.podSelector = {}; spec.policyTypes = ['Ingress', 'Egress']; spec.ingress = [{ from: [{ podSelector: {} }] }]; spec.egress = [{ to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } }], ports: [{ port: 53, protocol: 'UDP' }] }]; }
    policies.set(`NetworkPolicy:${ns}/p-${i}`, { kind: 'NetworkPolicy', metadata: { name: `p-${i}`, namespace: ns }, spec });
  }
  const endpoints: LocalEndpoint[] = [];
  let id = 1;
  for (const [k, p] of pods) {
    if (p.spec.nodeName !== 'node-0') continue;
    endpoints.push({ endpointId: id, ifindex: 100 + id, ifname: `pal${id}`, containerId: `c${id}`, podNamespace: p.metadata.namespace!, podName: p.metadata.name, ipv4: p.status!.podIP! });
    id++;
    void k;
  }
  return { revision: 1, nodeName: 'node-0', namespaces, pods, nodes, policies, endpoints };
}

function time(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const snap = build();
const c = new PolicyCompiler();
let result = c.compile(snap);
const cold = time(() => { result = new PolicyCompiler().compile(snap); });
const warm: number[] = [];
for (let i = 0; i < 15; i++) warm.push(time(() => { result = c.compile({ ...snap, revision: snap.revision + i }); }));
// One relabel per run: a new Pod object (as an informer delivers it).
const relabel: number[] = [];
for (let i = 0; i < 15; i++) {
  const pods = new Map(snap.pods);
  const k = `ns-3/p-${103 + i * 100}`;
  const p = pods.get(k)!;
  pods.set(k, { ...p, metadata: { ...p.metadata, labels: { ...p.metadata.labels, rev: String(i) } } });
  relabel.push(time(() => { result = c.compile({ ...snap, pods }); }));
}
const s = result.state;
console.log(JSON.stringify({
  pods: snap.pods.size, policies: snap.policies.size, localEndpoints: snap.endpoints.length,
  identities: result.identities.size,
  enforced: { ingress: s.endpoints.filter((e) => e.ingressEnforced).length, egress: s.endpoints.filter((e) => e.egressEnforced).length },
  entries: { endpoints: s.endpoints.length, ipcache: s.ipcache.length, policy: s.policy.length, cidrs: s.cidrs.length },
  problems: result.problems.length,
  ms: { coldFreshCompiler: +cold.toFixed(1), warmMedian: +median(warm).toFixed(1), relabelOnePodMedian: +median(relabel).toFixed(1) },
}, null, 2));
