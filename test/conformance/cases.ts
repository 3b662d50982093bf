/**
 * The conformance cases: the upstream e2e NetworkPolicy tests (kubernetes
 * test/e2e/network/netpol/network_policy.go), each restated on the full model of
 * shared/NETPOL.md with its expectation as reachability rules, grouped into files (one
 * lab per file). gen.ts turns them into scenarios/*.yaml.
 *
 * Reachability rules work like the upstream truth tables: everything starts allowed,
 * rules apply in order, and a later rule overrides an earlier one for the cells it
 * matches. A selector `{}` matches every pod, `{ns}` a namespace, `{ns, pod}` one pod.
 */

export type PodName = `${string}/${string}`;

export const MODEL_PODS: PodName[] = ['x/a', 'x/b', 'x/c', 'y/a', 'y/b', 'y/c', 'z/a', 'z/b', 'z/c'];

interface Sel { ns?: string; pod?: string }

function matches(s: Sel, p: PodName): boolean {
  const [ns, pod] = p.split('/');
  return (s.ns === undefined || s.ns === ns) && (s.pod === undefined || s.pod === pod);
}

function sel(s: string | Sel): Sel {
  if (typeof s !== 'string') return s;
  const [ns, pod] = s.split('/');
  return pod === undefined ? { ns } : { ns, pod };
}

/** A truth table built from rules; `{}` / "x" / "x/a" select all, a namespace, a pod. */
export class Reach {
  private readonly rules: { from: Sel; to: Sel; v: boolean }[] = [];

  /** Every cell from `from` to `to` is `v`. */
  peer(from: string | Sel, to: string | Sel, v: boolean): this {
    this.rules.push({ from: sel(from), to: sel(to), v });
    return this;
  }

  allIngress(to: string, v: boolean): this {
    return this.peer({}, to, v);
  }

  allEgress(from: string, v: boolean): this {
    return this.peer(from, {}, v);
  }

  allowed(from: PodName, to: PodName): boolean {
    let v = true;
    for (const r of this.rules) if (matches(r.from, from) && matches(r.to, to)) v = r.v;
    return v;
  }
}

const reach = () => new Reach();

export interface Check { port: 80 | 81; protocol: 'TCP' | 'UDP'; reach: Reach }

export interface CaseStep {
  name: string;
  apply?: Record<string, unknown>[];
  delete?: { kind: string; namespace?: string; name: string }[];
  checks: Check[];
  /** Pods that exist at this step (default: the model's nine). */
  pods?: PodName[];
  /** false: Pod objects in `apply` are creations, not relabels to undo. */
  relabel?: boolean;
}

export interface Case { title: string; steps: CaseStep[] }

type Obj = Record<string, unknown>;

/** A NetworkPolicy; `ingress`/`egress` undefined = not listed in policyTypes. */
function np(name: string, ns: string, podSelector: Obj, rules: { ingress?: Obj[]; egress?: Obj[] }): Obj {
  const policyTypes: string[] = [];
  const spec: Obj = { podSelector };
  if (rules.ingress) { policyTypes.push('Ingress'); spec.ingress = rules.ingress; }
  if (rules.egress) { policyTypes.push('Egress'); spec.egress = rules.egress; }
  spec.policyTypes = policyTypes;
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: ns }, spec };
}

const pod = (p: string): Obj => ({ matchLabels: { pod: p } });
const nsName = (n: string): Obj => ({ matchLabels: { 'kubernetes.io/metadata.name': n } });
const nsNotIn = (...n: string[]): Obj => ({ matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: n }] });
const all: Obj = {};
const tcp = (port: 80 | 81, r: Reach): Check => ({ port, protocol: 'TCP', reach: r });
const udp = (port: 80 | 81, r: Reach): Check => ({ port, protocol: 'UDP', reach: r });
const one = (title: string, apply: Obj[], checks: Check[]): Case => ({ title, steps: [{ name: 'policy', apply, checks }] });
const relabelPod = (p: PodName, labels: Record<string, string>): Obj => {
  const [namespace, name] = p.split('/');
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels } };
};

const ingressSelectors: Case[] = [
  one("default-deny-ingress", [np('deny-ingress', 'x', all, { ingress: [] })],
    [tcp(80, reach().peer({}, 'x', false))]),
  one('allow from pods within the namespace by podSelector', [np('x-a-allows-x-b', 'x', pod('a'), { ingress: [{ from: [{ podSelector: pod('b') }] }] })],
    [tcp(80, reach().allIngress('x/a', false).peer('x/b', 'x/a', true))]),
  one('allow ingress traffic for a target', [
    np('deny-all', 'x', all, { ingress: [] }),
    np('allow-all-to-a', 'x', pod('a'), { ingress: [{ from: [{ podSelector: {}, namespaceSelector: {} }] }] }),
  ], [tcp(80, reach().peer({}, 'x', false).allIngress('x/a', true))]),
  one('allow ingress from pods in all namespaces', [np('allow-from-another-ns', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: {} }] }] })],
    [tcp(80, reach())]),
  one('allow only from a different namespace by namespaceSelector', [np('allow-client-a-via-ns-selector', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsName('y') }] }] })],
    [tcp(80, reach().peer('x', 'x/a', false).peer('z', 'x/a', false))]),
  one('podSelector with matchExpressions', [np('x-a-allows-x-b', 'x', pod('a'), { ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] } }] }] })],
    [tcp(80, reach().allIngress('x/a', false).peer('x/b', 'x/a', true))]),
  one('namespaceSelector with matchExpressions', [np('allow-ns-y-match-selector', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['y'] }] } }] }] })],
    [tcp(80, reach().peer('x', 'x/a', false).peer('z', 'x/a', false))]),
  one('podSelector or namespaceSelector (two peers)', [np('allow-ns-y-match-selector', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsNotIn('x') }, { podSelector: pod('b') }] }] })],
    [tcp(80, reach().peer('x', 'x/a', false).peer('x/b', 'x/a', true))]),
  one('podSelector and namespaceSelector (one peer)', [np('allow-ns-y-podselector-and-nsselector', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsNotIn('x'), podSelector: pod('b') }] }] })],
    [tcp(80, reach().allIngress('x/a', false).peer('y/b', 'x/a', true).peer('z/b', 'x/a', true))]),
  one('multiple podSelectors and namespaceSelectors', [np('allow-ns-y-z-pod-b-c', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsNotIn('x'), podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] } }] }] })],
    [tcp(80, reach().allIngress('x/a', false).peer('y/b', 'x/a', true).peer('y/c', 'x/a', true).peer('z/b', 'x/a', true).peer('z/c', 'x/a', true))]),
  one('any of several podSelectors', [np('allow-ns-x-pod-b-c', 'x', pod('a'), { ingress: [{ from: [{ podSelector: pod('b') }, { podSelector: pod('c') }] }] })],
    [tcp(80, reach().allIngress('x/a', false).peer('x/b', 'x/a', true).peer('x/c', 'x/a', true))]),
  one('only from one pod of a different namespace (podSelector and namespaceSelector)', [np('allow-ns-y-pod-a-via-namespace-pod-selector', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsName('y'), podSelector: pod('a') }] }] })],
    [tcp(80, reach().allIngress('x/a', false).peer('y/a', 'x/a', true))]),
  one('deny ingress from pods in other namespaces', [np('deny-empty-policy', 'x', all, { ingress: [{ from: [{ podSelector: {} }] }] })],
    [tcp(80, reach().peer('y', 'x', false).peer('z', 'x', false))]),
  one('namespaceSelector matchLabels on the default namespace-name label', [np('allow-client-a-via-ns-selector-for-immutable-ns-label', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsName('y') }] }] })],
    [tcp(80, reach().peer('x', 'x/a', false).peer('z', 'x/a', false))]),
];

const portsProtocols: Case[] = [
  one('ports: only namespace y on port 81', [np('allow-client-a-via-ns-selector', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsName('y') }], ports: [{ port: 81, protocol: 'TCP' }] }] })],
    [tcp(81, reach().peer('x', 'x/a', false).peer('z', 'x/a', false)), tcp(80, reach().allIngress('x/a', false))]),
  {
    title: 'multiple stacked policies with overlapping podSelectors',
    steps: [
      { name: 'allow 81 from y', apply: [np('allow-client-a-via-ns-selector', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsName('y') }], ports: [{ port: 81, protocol: 'TCP' }] }] })],
        checks: [tcp(81, reach().peer('x', 'x/a', false).peer('z', 'x/a', false)), tcp(80, reach().allIngress('x/a', false))] },
      { name: 'add a policy for 80', apply: [np('allow-client-a-via-ns-selector-80', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsName('y') }], ports: [{ port: 80, protocol: 'TCP' }] }] })],
        checks: [tcp(81, reach().peer('x', 'x/a', false).peer('z', 'x/a', false)), tcp(80, reach().peer('x', 'x/a', false).peer('z', 'x/a', false))] },
    ],
  },
  one('allow-all ingress policy', [np('allow-all', 'x', all, { ingress: [{}] })], [tcp(80, reach()), tcp(81, reach())]),
  one('ingress on one named port', [np('allow-all', 'x', all, { ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })],
    [tcp(81, reach()), tcp(80, reach().peer({}, 'x', false))]),
  one('ingress from a namespace on one named port', [np('allow-client-a-via-ns-selector-80', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsName('y') }], ports: [{ port: 'serve-80-tcp', protocol: 'TCP' }] }] })],
    [tcp(80, reach().peer('x', 'x/a', false).peer('z', 'x/a', false)), tcp(81, reach().allIngress('x/a', false))]),
  one('egress on one named port', [np('allow-egress', 'x', all, { egress: [{ ports: [{ port: 'serve-80-tcp' }] }] })],
    [tcp(80, reach()), tcp(81, reach().peer('x', {}, false))]),
  one('ingress on any port of one protocol', [np('allow-ingress-by-proto', 'x', pod('a'), { ingress: [{ ports: [{ protocol: 'TCP' }] }] })],
    [tcp(80, reach()), udp(80, reach().allIngress('x/a', false))]),
  {
    title: 'multiple ingress policies, allow-all takes precedence',
    steps: [
      { name: 'port 80 only', apply: [np('allow-ingress-port-80', 'x', all, { ingress: [{ ports: [{ port: 80 }] }] })],
        checks: [tcp(81, reach().peer({}, 'x', false))] },
      { name: 'add allow-all', apply: [np('allow-ingress', 'x', all, { ingress: [{}] })], checks: [tcp(81, reach())] },
    ],
  },
  {
    title: 'multiple egress policies, allow-all takes precedence',
    steps: [
      { name: 'port 80 only', apply: [np('allow-egress-port-80', 'x', all, { egress: [{ ports: [{ port: 80 }] }] })],
        checks: [tcp(81, reach().peer('x', {}, false))] },
      { name: 'add allow-all', apply: [np('allow-egress', 'x', all, { egress: [{}] })], checks: [tcp(81, reach())] },
    ],
  },
  one("'protocol: SCTP' is not TCP (default deny plus an SCTP-only allow)", [
    np('deny-ingress', 'x', all, { ingress: [] }),
    np('allow-only-sctp-ingress-on-port-81', 'x', pod('a'), { ingress: [{ ports: [{ port: 81, protocol: 'SCTP' }] }] }),
  ], [tcp(81, reach().peer({}, 'x', false)), udp(81, reach().peer({}, 'x', false))]),
  one('a policy allowing only SCTP still isolates its pods', [np('allow-only-sctp-ingress-on-port-80', 'x', pod('a'), { ingress: [{ ports: [{ port: 80, protocol: 'SCTP' }] }] })],
    [tcp(81, reach().allIngress('x/a', false)), tcp(80, reach().allIngress('x/a', false)), udp(80, reach().allIngress('x/a', false))]),
  one('no TCP access when a policy specifies only UDP', [np('allow-only-udp-ingress-on-port-81', 'x', pod('a'), { ingress: [{ ports: [{ port: 81, protocol: 'UDP' }] }] })],
    [tcp(81, reach().allIngress('x/a', false)), udp(81, reach())]),
  one('SCTP-only ports rule from namespace y opens neither TCP nor UDP', [np('allow-ingress-on-port-81-ns-x', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsName('y') }], ports: [{ port: 81, protocol: 'SCTP' }] }] })],
    [tcp(81, reach().allIngress('x/a', false)), udp(81, reach().allIngress('x/a', false))]),
];

const egress: Case[] = [
  one('default-deny-all (ingress and egress)', [np('deny-all', 'x', all, { ingress: [], egress: [] })],
    [tcp(80, reach().peer({}, 'x', false).peer('x', {}, false))]),
  one('deny egress from pods by podSelector', [np('deny-egress-pod-a', 'x', pod('a'), { egress: [] })],
    [tcp(80, reach().allEgress('x/a', false))]),
  one('deny egress from all pods in a namespace', [np('deny-egress-ns-x', 'x', all, { egress: [] })],
    [tcp(80, reach().peer('x', {}, false))]),
  one('ingress and egress specified together', [np('allow-client-a-via-pod-selector', 'x', pod('a'), { ingress: [{ from: [{ podSelector: pod('b') }] }], egress: [{ ports: [{ port: 80 }] }] })],
    [tcp(80, reach().allIngress('x/a', false).peer('x/b', 'x/a', true)),
      tcp(81, reach().allIngress('x/a', false).allEgress('x/a', false).peer('x/b', 'x/a', true))]),
  one('egress denied on the client side even if the server allows it', [
    np('allow-to-ns-y-pod-a', 'x', pod('a'), { egress: [{ to: [{ namespaceSelector: nsName('y'), podSelector: pod('a') }] }] }),
    np('allow-from-xa-on-ya-match-selector', 'y', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsName('x'), podSelector: pod('a') }] }] }),
    np('allow-from-xa-on-yb-match-selector', 'y', pod('b'), { ingress: [{ from: [{ namespaceSelector: nsName('x'), podSelector: pod('a') }] }] }),
  ], [tcp(80, reach().allEgress('x/a', false).allIngress('y/a', false).peer('x/a', 'y/a', true).allIngress('y/b', false))]),
  one('egress to a server in another namespace by podSelector and namespaceSelector', [np('allow-to-ns-y-pod-a', 'x', pod('a'), { egress: [{ to: [{ namespaceSelector: nsName('y'), podSelector: pod('a') }] }] })],
    [tcp(80, reach().allEgress('x/a', false).peer('x/a', 'y/a', true))]),
  {
    title: 'ingress and egress controlled independently',
    steps: [
      { name: 'allow all egress of x/a', apply: [np('allow-egress-for-target', 'x', pod('a'), { egress: [{}] })], checks: [tcp(80, reach())] },
      { name: 'deny ingress of x/a', apply: [np('deny-ingress-via-label-selector', 'x', pod('a'), { ingress: [] })],
        checks: [tcp(80, reach().allIngress('x/a', false))] },
    ],
  },
  one('egress namespaceSelector matchExpressions NotIn on the default label', [np('allow-ns-y-match-selector-for-immutable-ns-label', 'x', pod('a'), { egress: [{ to: [{ namespaceSelector: nsNotIn('y') }] }] })],
    [tcp(80, reach().peer('x/a', 'y', false))]),
];

const ipBlock: Case[] = [
  one('egress to a server in a CIDR block (the pod /32)', [np('allow-client-a-via-cidr-egress-rule', 'x', pod('a'), { egress: [{ to: [{ ipBlock: { cidr: '${ip:y/b}/32' } }] }] })],
    [tcp(80, reach().allEgress('x/a', false).peer('x/a', 'y/b', true))]),
  one('except clause of an egress CIDR block', [np('allow-client-a-via-cidr-egress-rule', 'x', pod('a'), { egress: [{ to: [{ ipBlock: { cidr: '${cidr:x/b/4}', except: ['${ip:x/b}/32'] } }] }] })],
    [tcp(80, reach().peer('x/a', 'x/b', false))]),
  {
    title: 'an IP in both IPBlock.cidr and IPBlock.except is allowed by another rule',
    steps: [
      { name: 'wide block except x/b', apply: [np('allow-client-a-via-cidr-egress-rule', 'x', pod('a'), { egress: [{ to: [{ ipBlock: { cidr: '${cidr:x/b/4}', except: ['${ip:x/b}/32'] } }] }] })],
        checks: [tcp(80, reach().peer('x/a', 'x/b', false))] },
      { name: 'policy updated to allow x/b/32 only', apply: [np('allow-client-a-via-cidr-egress-rule', 'x', pod('a'), { egress: [{ to: [{ ipBlock: { cidr: '${ip:x/b}/32' } }] }] })],
        checks: [tcp(80, reach().allEgress('x/a', false).peer('x/a', 'x/b', true))] },
    ],
  },
];

const updates: Case[] = [
  {
    title: 'updated policy (allow-all mutated to deny-all)',
    steps: [
      { name: 'allow all', apply: [np('allow-all-mutate-to-deny-all', 'x', all, { ingress: [{}] })], checks: [tcp(81, reach())] },
      { name: 'updated to deny all', apply: [np('allow-all-mutate-to-deny-all', 'x', all, { ingress: [] })], checks: [tcp(81, reach().peer({}, 'x', false))] },
    ],
  },
  {
    title: 'ingress access from an updated namespace',
    steps: [
      { name: 'no namespace has the label', apply: [np('allow-client-a-via-ns-selector', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns2: 'updated' } } }] }] })],
        checks: [tcp(80, reach().allIngress('x/a', false))] },
      { name: 'namespace y labelled ns2=updated', apply: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'y', labels: { ns2: 'updated' } } }],
        checks: [tcp(80, reach().allIngress('x/a', false).peer('y', 'x/a', true))] },
    ],
  },
  {
    title: 'ingress access from an updated pod',
    steps: [
      { name: 'x/b lacks the label', apply: [np('allow-client-a-via-pod-selector', 'x', pod('a'), { ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b', pod2: 'updated' } } }] }] })],
        checks: [tcp(80, reach().allIngress('x/a', false))] },
      { name: 'x/b labelled pod2=updated', apply: [relabelPod('x/b', { pod: 'b', pod2: 'updated' })],
        checks: [tcp(80, reach().allIngress('x/a', false).peer('x/b', 'x/a', true))] },
    ],
  },
  {
    title: 'ingress denied to an updated pod',
    steps: [
      { name: 'nothing selected', apply: [np('deny-ingress-via-label-selector', 'x', { matchLabels: { target: 'isolated' } }, { ingress: [] })], checks: [tcp(80, reach())] },
      { name: 'x/a labelled target=isolated', apply: [relabelPod('x/a', { pod: 'a', target: 'isolated' })],
        checks: [tcp(80, reach().allIngress('x/a', false))] },
    ],
  },
  {
    title: 'policies stop being enforced once deleted',
    steps: [
      { name: 'deny all in x', apply: [np('deny-all', 'x', all, { ingress: [], egress: [] })],
        checks: [tcp(80, reach().peer('x', {}, false).peer({}, 'x', false))] },
      { name: 'policy deleted', delete: [{ kind: 'NetworkPolicy', namespace: 'x', name: 'deny-all' }], checks: [tcp(80, reach())] },
    ],
  },
];

const udpCases: Case[] = [
  one('UDP default-deny-ingress', [np('deny-all', 'x', all, { ingress: [] })], [udp(80, reach().peer({}, 'x', false))]),
  one('UDP ports: only namespace y on port 81', [np('allow-ingress-on-port-81-ns-x', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsName('y') }], ports: [{ port: 81, protocol: 'UDP' }] }] })],
    [udp(81, reach().peer('x', 'x/a', false).peer('z', 'x/a', false)), udp(80, reach().allIngress('x/a', false))]),
  one('UDP only from one pod of a different namespace', [np('allow-ns-y-pod-a-via-namespace-pod-selector', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: nsName('y'), podSelector: pod('a') }] }] })],
    [udp(80, reach().allIngress('x/a', false).peer('y/a', 'x/a', true))]),
];

const withoutB: PodName[] = MODEL_PODS.filter((p) => p !== 'x/b');
const withW: PodName[] = [...MODEL_PODS, 'w/a' as PodName];
const wPod = {
  apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', namespace: 'w', labels: { pod: 'a' } },
  spec: { containers: [{ name: 'server', ports: [{ name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' }] }] },
};
const xbPod = {
  apiVersion: 'v1', kind: 'Pod', metadata: { name: 'b', namespace: 'x', labels: { pod: 'b' } },
  spec: { nodeName: 'lab-node-0', containers: [{ name: 'server', ports: [80, 81].flatMap((p) => ['TCP', 'UDP'].map((proto) => ({ name: `serve-${p}-${proto.toLowerCase()}`, containerPort: p, protocol: proto }))) }] },
};

const lifecycle: Case[] = [
  {
    title: 'pod delete and recreate keeps policy (x/a allows only x/b)',
    steps: [
      { name: 'policy', apply: [np('x-a-allows-x-b', 'x', pod('a'), { ingress: [{ from: [{ podSelector: pod('b') }] }] })],
        checks: [tcp(80, reach().allIngress('x/a', false).peer('x/b', 'x/a', true))] },
      { name: 'x/b deleted', delete: [{ kind: 'Pod', namespace: 'x', name: 'b' }], pods: withoutB,
        checks: [tcp(80, reach().allIngress('x/a', false))] },
      { name: 'x/b recreated on another node', apply: [xbPod], relabel: false,
        checks: [tcp(80, reach().allIngress('x/a', false).peer('x/b', 'x/a', true))] },
    ],
  },
  {
    title: 'a namespace created after the policy that selects it',
    steps: [
      { name: 'policy selects team=new namespaces', apply: [np('allow-team-new', 'x', pod('a'), { ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'new' } } }] }] })],
        checks: [tcp(80, reach().allIngress('x/a', false))] },
      { name: 'namespace w (team=new) and pod w/a created', relabel: false, pods: withW,
        apply: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'w', labels: { team: 'new' } } }, wPod],
        checks: [tcp(80, reach().allIngress('x/a', false).peer('w/a', 'x/a', true))] },
      { name: 'namespace w deleted with its pod', delete: [{ kind: 'Namespace', name: 'w' }],
        checks: [tcp(80, reach().allIngress('x/a', false))] },
    ],
  },
];

// With the outside host (`outside/host`, a host on the lab bridge outside the cluster).
const world: Case[] = [
  one('namespaceSelector {} selects every pod but not hosts outside the cluster', [np('from-all-namespaces', 'x', all, { ingress: [{ from: [{ namespaceSelector: {} }] }] })],
    [tcp(80, reach().peer('outside', 'x', false)), udp(81, reach().peer('outside', 'x', false))]),
  one('ingress ipBlock admits the outside host only', [np('from-outside', 'x', pod('a'), { ingress: [{ from: [{ ipBlock: { cidr: '${ip:outside/host}/32' } }] }] })],
    [tcp(80, reach().allIngress('x/a', false).peer('outside', 'x/a', true))]),
  one('ingress ipBlock 0.0.0.0/0 except the outside host admits pods (ipBlock matches pod IPs)', [np('world-but-outside', 'x', pod('a'), { ingress: [{ from: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['${ip:outside/host}/32'] } }] }] })],
    [tcp(80, reach().peer('outside', 'x/a', false))]),
  one('egress default deny blocks the outside host too', [np('deny-egress-ns-x', 'x', all, { egress: [] })],
    [tcp(80, reach().peer('x', {}, false))]),
  one('egress to 0.0.0.0/0 except the pod network reaches only the outside host', [np('world-not-pods', 'x', pod('a'), { egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.244.0.0/16'] } }] }] })],
    [tcp(80, reach().allEgress('x/a', false).peer('x/a', 'outside', true))]),
];

export const files: { file: string; cases: Case[]; outside?: boolean }[] = [
  { file: 'ingress-selectors', cases: ingressSelectors },
  { file: 'ports-protocols', cases: portsProtocols },
  { file: 'egress', cases: egress },
  { file: 'ipblock', cases: ipBlock },
  { file: 'updates', cases: updates },
  { file: 'udp', cases: udpCases },
  { file: 'lifecycle', cases: lifecycle },
  { file: 'world', cases: world, outside: true },
];
