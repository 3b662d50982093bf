/**
 * `kubectl palisade policy` and `trace`, computed with the agent's own compiler and
 * verdict model (pkg/policy compile + evaluate) from a view of the cluster read through
 * the API. Pure: a ClusterView in, plain results out.
 *
 * A verdict is computed as the nodes compute it: the source's egress on the source's
 * node (that node's view: its addresses are `host`), the destination's ingress on the
 * destination's node. Identity numbers are this process's (a fresh allocator), not the
 * agents'; results name pods and labels instead.
 */
import { DEFAULT_L7_PROXY_PORT } from '../agent/options.ts';
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP, type Direction } from '../datapath/types.ts';
import { IDENTITY_ANY, IDENTITY_CLUSTER_POD, IDENTITY_FIRST_CIDR, reservedIdentityNames } from '../identity/reserved.ts';
import { PolicyCompiler } from '../policy/compile.ts';
import { evaluate, explain, type Verdict, type VerdictQuery, type VerdictReason } from '../policy/evaluate.ts';
import { parseIpv4 } from '../policy/ip.ts';
import type { LocalEndpoint, Namespace, NetworkPolicy, Node, Pod } from '../policy/snapshot.ts';
import type { CompileResult, PolicyProblem } from '../policy/types.ts';

/** The cluster as the agents' informers see it (slim objects, snapshot keys). */
export interface ClusterView {
  namespaces: ReadonlyMap<string, Namespace>;
  pods: ReadonlyMap<string, Pod>;
  nodes: ReadonlyMap<string, Node>;
  /** Keyed `kind:namespace/name`. */
  policies: ReadonlyMap<string, NetworkPolicy>;
  resourceVersion: string;
}

/** A pod that is missing or cannot be an endpoint (exit status 1 in the CLI). */
export class InspectError extends Error {
  readonly code: 'PAL_INSPECT_NOT_FOUND' | 'PAL_INSPECT_NOT_ENDPOINT' | 'PAL_INSPECT_BAD_ARGS';
  constructor(code: InspectError['code'], message: string) {
    super(message);
    this.name = 'InspectError';
    this.code = code;
  }
}

export interface AnalysisOptions {
  /** The agents' L7 proxy port (http rules redirect when non-zero); default the chart's. */
  l7ProxyPort?: number;
}

const ENDPOINT_ID = 1;

function podOf(view: ClusterView, key: string): Pod {
  const pod = view.pods.get(key);
  if (!pod) throw new InspectError('PAL_INSPECT_NOT_FOUND', `pod ${key} not found`);
  if (pod.spec.hostNetwork) {
    throw new InspectError('PAL_INSPECT_NOT_ENDPOINT', `pod ${key} uses the host network: no policy applies to it`);
  }
  if (!pod.spec.nodeName) throw new InspectError('PAL_INSPECT_NOT_ENDPOINT', `pod ${key} is not scheduled to a node yet`);
  if (!podIp(pod)) throw new InspectError('PAL_INSPECT_NOT_ENDPOINT', `pod ${key} has no IP address yet`);
  return pod;
}

function podIp(pod: Pod): string | undefined {
  const ip = pod.status?.podIPs?.map((x) => x.ip).find((x) => parseIpv4(x) !== undefined) ?? pod.status?.podIP;
  return ip && parseIpv4(ip) !== undefined ? ip : undefined;
}

/** Compiles the view for `key`'s node with that pod as its only local endpoint. */
function compileFor(view: ClusterView, key: string, opts: AnalysisOptions): { result: CompileResult; pod: Pod } {
  const pod = podOf(view, key);
  const [namespace, name] = key.split('/') as [string, string];
  const ep: LocalEndpoint = {
    endpointId: ENDPOINT_ID, ifindex: 1, ifname: 'inspect0', containerId: 'inspect',
    podNamespace: namespace, podName: name, ipv4: podIp(pod)!,
    ...(pod.metadata.uid ? { podUid: pod.metadata.uid } : {}),
  };
  const compiler = new PolicyCompiler({ l7ProxyPort: opts.l7ProxyPort ?? DEFAULT_L7_PROXY_PORT });
  const result = compiler.compile({
    revision: 1, nodeName: pod.spec.nodeName!, namespaces: view.namespaces, pods: view.pods,
    nodes: view.nodes, policies: view.policies, endpoints: [ep],
  });
  return { result, pod };
}

/** Pods holding each label identity (non-hostNetwork pods with an IP), from a compile. */
function podsByIdentity(view: ClusterView, result: CompileResult): Map<number, string[]> {
  const byIp = new Map<string, number>();
  for (const e of result.state.ipcache) if (e.cidr.endsWith('/32')) byIp.set(e.cidr.slice(0, -3), e.identity);
  const out = new Map<number, string[]>();
  for (const [key, pod] of view.pods) {
    if (pod.spec.hostNetwork) continue;
    const ip = podIp(pod);
    const id = ip === undefined ? undefined : byIp.get(ip);
    if (id === undefined) continue;
    const l = out.get(id);
    if (l) l.push(key); else out.set(id, [key]);
  }
  for (const l of out.values()) l.sort();
  return out;
}

/** A peer as users read it: `any`, a reserved name, pods, or ipBlock prefixes. */
export interface PeerDescription {
  kind: 'any' | 'reserved' | 'pods' | 'cidr';
  /** Short text for tables. */
  text: string;
  pods?: string[];
  cidrs?: string[];
  labels?: Record<string, string>;
}

function describePeer(result: CompileResult, pods: Map<number, string[]>, id: number, cidrs: string[]): PeerDescription {
  if (id === IDENTITY_ANY) return { kind: 'any', text: 'any' };
  // namespaceSelector {} compiles to one entry for every pod of the cluster.
  if (id === IDENTITY_CLUSTER_POD) return { kind: 'pods', text: 'any pod (every namespace)' };
  const reserved = reservedIdentityNames[id];
  if (reserved !== undefined) return { kind: 'reserved', text: reserved };
  if (id >= IDENTITY_FIRST_CIDR) {
    const list = cidrs.length ? cidrs : Object.keys(result.identities.get(id) ?? {});
    return { kind: 'cidr', text: list.join(', ') || `cidr identity ${id}`, cidrs: list };
  }
  const labels = { ...(result.identities.get(id) ?? {}) };
  const members = pods.get(id) ?? [];
  const shown = members.slice(0, 3).join(', ') + (members.length > 3 ? ` +${members.length - 3} more` : '');
  const text = members.length ? shown : `no pod (${Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',')})`;
  return { kind: 'pods', text, pods: members, labels };
}

const PROTO_NAMES: Record<number, string> = { [PROTO_TCP]: 'TCP', [PROTO_UDP]: 'UDP', [PROTO_SCTP]: 'SCTP', 1: 'ICMP' };

/** `TCP/80`, `TCP/8000-8080`, `UDP/any`, `any`. */
export function formatPorts(protocol: number, port: number, endPort: number): string {
  if (protocol === 0) return 'any';
  const p = PROTO_NAMES[protocol] ?? String(protocol);
  if (port === 0) return `${p}/any`;
  return endPort > port ? `${p}/${port}-${endPort}` : `${p}/${port}`;
}

export interface EffectiveRule {
  direction: Direction;
  peer: PeerDescription;
  ports: string;
  /** Contributing policy (`kind:namespace/name`) and the index of its rule. */
  policy: string;
  ruleIndex: number;
  /** L7: http rules of a PalisadeNetworkPolicy decide each request. */
  l7: boolean;
}

export interface DirectionPolicy {
  /** The pod is isolated in this direction (some policy selects it for it). */
  enforced: boolean;
  /** Policies selecting the pod for this direction. */
  policies: string[];
  rules: EffectiveRule[];
}

export interface EffectivePolicy {
  pod: string;
  node: string;
  ip: string;
  labels: Record<string, string>;
  ingress: DirectionPolicy;
  egress: DirectionPolicy;
  /** Problems in selecting policies (their rules fail closed). */
  problems: PolicyProblem[];
}

/** The effective ingress and egress rules of a pod, each with its contributing policy. */
export function effectivePolicy(view: ClusterView, key: string, opts: AnalysisOptions = {}): EffectivePolicy {
  const { result, pod } = compileFor(view, key, opts);
  const summary = result.endpoints.get(ENDPOINT_ID);
  const pods = podsByIdentity(view, result);
  const dir = (d: Direction): DirectionPolicy => {
    const cidrsOf = new Map<number, string[]>();
    for (const c of result.state.cidrs) {
      if (c.endpointId !== ENDPOINT_ID || c.direction !== d) continue;
      const l = cidrsOf.get(c.identity);
      if (l) l.push(c.cidr); else cidrsOf.set(c.identity, [c.cidr]);
    }
    const rules: EffectiveRule[] = [];
    for (const e of result.state.policy) {
      if (e.endpointId !== ENDPOINT_ID || e.direction !== d) continue;
      const origin = result.rules.get(e.ruleId);
      rules.push({
        direction: d,
        peer: describePeer(result, pods, e.peer, cidrsOf.get(e.peer) ?? []),
        ports: formatPorts(e.protocol, e.port, e.endPort),
        policy: origin?.policy ?? `rule ${e.ruleId}`,
        ruleIndex: origin?.ruleIndex ?? -1,
        l7: e.proxyPort !== 0,
      });
    }
    rules.sort((a, b) => a.policy.localeCompare(b.policy) || a.ruleIndex - b.ruleIndex
      || a.peer.text.localeCompare(b.peer.text) || a.ports.localeCompare(b.ports));
    return {
      enforced: (d === 'ingress' ? summary?.ingressEnforced : summary?.egressEnforced) ?? false,
      policies: [...((d === 'ingress' ? summary?.ingressPolicies : summary?.egressPolicies) ?? [])].sort(),
      rules,
    };
  };
  const selecting = new Set([...(summary?.ingressPolicies ?? []), ...(summary?.egressPolicies ?? [])]);
  return {
    pod: key, node: pod.spec.nodeName!, ip: podIp(pod)!, labels: { ...(pod.metadata.labels ?? {}) },
    ingress: dir('ingress'), egress: dir('egress'),
    problems: result.problems.filter((p) => selecting.has(p.policy)),
  };
}

export type TraceProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface TraceQuery {
  /** `namespace/pod`, or an IPv4 address outside the cluster's pods. */
  src: string;
  dst: string;
  port: number;
  protocol: TraceProtocol;
}

/** The decision of one side (the source's egress or the destination's ingress). */
export interface TraceStep {
  direction: Direction;
  /** The pod whose policy decides this step. */
  pod: string;
  node: string;
  allowed: boolean;
  reason: VerdictReason;
  /**
   * What decided, in flow-record terms (pkg/flow/types.ts): the allowing policy's key,
   * `default-deny` when isolated and nothing allows it, `none` when nothing isolates.
   */
  policy: string;
  ruleIndex?: number;
  /** Policies isolating the pod in this direction. */
  isolatedBy: string[];
  /** Redirected to the L7 proxy: http rules decide each request. */
  l7: boolean;
  /** One line, from pkg/policy/evaluate.ts explain(). */
  explanation: string;
}

export interface TraceResult {
  src: string;
  dst: string;
  srcIp: string;
  dstIp: string;
  protocol: TraceProtocol;
  port: number;
  verdict: 'allowed' | 'denied';
  /** The step that denied, or the one that allowed last (ingress when both apply). */
  decidedBy: TraceStep | undefined;
  steps: TraceStep[];
}

const PROTO_NUMBERS: Record<TraceProtocol, number> = { TCP: PROTO_TCP, UDP: PROTO_UDP, SCTP: PROTO_SCTP };

function side(view: ClusterView, ref: string): { pod?: string; ip: string } {
  if (parseIpv4(ref) !== undefined) return { ip: ref };
  const pod = podOf(view, ref);
  return { pod: ref, ip: podIp(pod)! };
}

function step(view: ClusterView, pod: string, direction: Direction, remoteIp: string, q: TraceQuery, opts: AnalysisOptions): TraceStep {
  const { result, pod: p } = compileFor(view, pod, opts);
  const vq = { endpointId: ENDPOINT_ID, direction, remoteIp, protocol: PROTO_NUMBERS[q.protocol], port: q.port };
  const v = evaluate(result.state, vq);
  const summary = result.endpoints.get(ENDPOINT_ID);
  const isolatedBy = [...((direction === 'ingress' ? summary?.ingressPolicies : summary?.egressPolicies) ?? [])].sort();
  const origin = v.ruleId ? result.rules.get(v.ruleId) : undefined;
  let policy: string;
  if (v.reason === 'default-deny') policy = 'default-deny';
  else if (v.reason === 'allowed') policy = origin?.policy ?? `rule ${v.ruleId}`;
  else policy = 'none';
  return {
    direction, pod, node: p.spec.nodeName!, allowed: v.allowed, reason: v.reason, policy,
    ...(origin ? { ruleIndex: origin.ruleIndex } : {}),
    isolatedBy, l7: v.proxyPort !== 0, explanation: explanation(result, vq, v, pod),
  };
}

/**
 * explain()'s line in this tool's terms: the pod instead of the synthetic endpoint id,
 * and no identity numbers (they are this process's allocation, not the agents').
 */
function explanation(result: CompileResult, q: VerdictQuery, v: Verdict, pod: string): string {
  if (v.reason === 'not-enforced') return `allowed: no policy isolates ${pod} for ${q.direction}`;
  return explain(result, q, v).replace(/peer \d+ \(/, 'peer (');
}

/**
 * The verdict for a connection from `src` to `dst` on a port: allowed only when the
 * source's egress and the destination's ingress both allow it.
 */
export function trace(view: ClusterView, q: TraceQuery, opts: AnalysisOptions = {}): TraceResult {
  if (!Number.isInteger(q.port) || q.port < 1 || q.port > 65535) {
    throw new InspectError('PAL_INSPECT_BAD_ARGS', `--port must be 1..65535, got ${q.port}`);
  }
  const s = side(view, q.src);
  const d = side(view, q.dst);
  if (!s.pod && !d.pod) throw new InspectError('PAL_INSPECT_BAD_ARGS', 'trace: the source or the destination must be a pod');
  const steps: TraceStep[] = [];
  if (s.pod) steps.push(step(view, s.pod, 'egress', d.ip, q, opts));
  if (d.pod) steps.push(step(view, d.pod, 'ingress', s.ip, q, opts));
  const denied = steps.find((x) => !x.allowed);
  const decidedBy = denied ?? [...steps].reverse().find((x) => x.reason === 'allowed') ?? steps.at(-1);
  return {
    src: q.src, dst: q.dst, srcIp: s.ip, dstIp: d.ip, protocol: q.protocol, port: q.port,
    verdict: denied ? 'denied' : 'allowed', decidedBy, steps,
  };
}
