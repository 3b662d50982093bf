/**
 * Test model of a small cluster for the policy compiler: builders for namespaces, pods,
 * nodes and policies, one PolicyCompiler per node, and the user's view of connectivity:
 * a pod-to-pod connection needs the source's egress allow (compiled on the source's node)
 * AND the destination's ingress allow (compiled on the destination's node) (NETPOL 6).
 */
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP, type Direction } from '../../../pkg/datapath/types.ts';
import { PolicyCompiler, type PolicyCompilerOptions } from '../../../pkg/policy/compile.ts';
import { evaluate, type Verdict } from '../../../pkg/policy/evaluate.ts';
import type {
  ClusterSnapshot, ContainerPort, LocalEndpoint, Namespace, NetworkPolicy, NetworkPolicySpec,
  Node, Pod,
} from '../../../pkg/policy/snapshot.ts';
import type { CompileResult } from '../../../pkg/policy/types.ts';

export const protocols: Record<string, number> = { TCP: PROTO_TCP, UDP: PROTO_UDP, SCTP: PROTO_SCTP, ICMP: 1 };

export interface PodOptions {
  labels?: Record<string, string>;
  node?: number;
  ports?: ContainerPort[];
  hostNetwork?: boolean;
  ip?: string;
}

/** Container ports of the upstream model: 80 and 81 for TCP, UDP and SCTP. */
export function upstreamPorts(): ContainerPort[] {
  const out: ContainerPort[] = [];
  for (const port of [80, 81]) {
    for (const proto of ['TCP', 'UDP', 'SCTP']) {
      out.push({ name: `serve-${port}-${proto.toLowerCase()}`, containerPort: port, protocol: proto });
    }
  }
  return out;
}

export class TestCluster {
  readonly namespaces = new Map<string, Namespace>();
  readonly pods = new Map<string, Pod>();
  readonly nodes = new Map<string, Node>();
  readonly policies = new Map<string, NetworkPolicy>();
  readonly compilers = new Map<string, PolicyCompiler>();
  readonly endpointIds = new Map<string, number>();
  revision = 1;
  #nextIp = 10;
  #nextPodNode = 0;
  readonly nodeCount: number;
  readonly opts: PolicyCompilerOptions;
  #results = new Map<string, CompileResult>();

  constructor(nodeCount = 2, opts: PolicyCompilerOptions = {}) {
    this.nodeCount = nodeCount;
    this.opts = opts;
    for (let i = 0; i < nodeCount; i++) {
      this.nodes.set(`node-${i}`, {
        metadata: { name: `node-${i}` },
        spec: { podCIDR: `10.244.${i}.0/24` },
        status: { addresses: [{ type: 'InternalIP', address: this.nodeIp(i) }, { type: 'Hostname', address: `node-${i}` }] },
      });
    }
  }

  nodeIp(i: number): string {
    return `192.168.0.${10 + i}`;
  }

  changed(): this {
    this.revision++;
    this.#results.clear();
    return this;
  }

  ns(name: string, labels: Record<string, string> = {}): this {
    this.namespaces.set(name, {
      metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
    });
    return this.changed();
  }

  pod(namespace: string, name: string, o: PodOptions = {}): this {
    if (!this.namespaces.has(namespace)) this.ns(namespace);
    const node = o.node ?? this.#nextPodNode++ % this.nodeCount;
    const ip = o.hostNetwork ? this.nodeIp(node) : (o.ip ?? `10.244.${node}.${this.#nextIp++}`);
    this.pods.set(`${namespace}/${name}`, {
      metadata: { name, namespace, uid: `uid-${namespace}-${name}`, labels: o.labels ?? { pod: name } },
      spec: {
        nodeName: `node-${node}`,
        ...(o.hostNetwork && { hostNetwork: true }),
        containers: [{ name: 'c', ports: o.ports ?? [] }],
      },
      status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: this.nodeIp(node) },
    });
    if (!this.endpointIds.has(`${namespace}/${name}`)) {
      this.endpointIds.set(`${namespace}/${name}`, this.endpointIds.size + 1);
    }
    return this.changed();
  }

  /** Replaces a pod's labels (NETPOL 14). */
  relabel(podKey: string, labels: Record<string, string>): this {
    const p = this.pods.get(podKey)!;
    this.pods.set(podKey, { ...p, metadata: { ...p.metadata, labels } });
    return this.changed();
  }

  relabelNs(name: string, labels: Record<string, string>): this {
    this.namespaces.set(name, {
      metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
    });
    return this.changed();
  }

  policy(namespace: string, name: string, spec: Partial<NetworkPolicySpec>, kind = 'NetworkPolicy'): this {
    const obj: NetworkPolicy = {
      apiVersion: kind === 'NetworkPolicy' ? 'networking.k8s.io/v1' : 'palisade.io/v1alpha1',
      kind,
      metadata: { name, namespace },
      spec: { podSelector: {}, ...spec } as NetworkPolicySpec,
    };
    this.policies.set(`${kind}:${namespace}/${name}`, obj);
    return this.changed();
  }

  deletePolicy(namespace: string, name: string, kind = 'NetworkPolicy'): this {
    this.policies.delete(`${kind}:${namespace}/${name}`);
    return this.changed();
  }

  ipOf(podKey: string): string {
    const p = this.pods.get(podKey);
    if (!p) throw new Error(`no pod ${podKey}`);
    return p.status!.podIP!;
  }

  nodeOf(podKey: string): string {
    return this.pods.get(podKey)!.spec.nodeName!;
  }

  endpointOf(podKey: string): number {
    return this.endpointIds.get(podKey)!;
  }

  snapshotFor(nodeName: string): ClusterSnapshot {
    const endpoints: LocalEndpoint[] = [];
    for (const [key, p] of this.pods) {
      if (p.spec.nodeName !== nodeName || p.spec.hostNetwork) continue;
      // A terminated pod's sandbox is gone (CNI DEL ran): no endpoint.
      if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
      const id = this.endpointIds.get(key)!;
      endpoints.push({
        endpointId: id, ifindex: 1000 + id, ifname: `pal${id}`, containerId: `c${id}`,
        podNamespace: p.metadata.namespace!, podName: p.metadata.name, ipv4: p.status!.podIP!,
      });
    }
    return {
      revision: this.revision, nodeName,
      namespaces: this.namespaces, pods: this.pods, nodes: this.nodes, policies: this.policies,
      endpoints,
    };
  }

  compiler(nodeName: string): PolicyCompiler {
    let c = this.compilers.get(nodeName);
    if (!c) this.compilers.set(nodeName, (c = new PolicyCompiler(this.opts)));
    return c;
  }

  /** The compile result of a node for the current revision (cached until a change). */
  result(nodeName: string): CompileResult {
    let r = this.#results.get(nodeName);
    if (!r) {
      r = this.compiler(nodeName).compile(this.snapshotFor(nodeName));
      this.#results.set(nodeName, r);
    }
    return r;
  }

  /** One side's verdict for a local pod talking with `remoteIp`. */
  verdict(podKey: string, direction: Direction, remoteIp: string, port: number, proto = 'TCP'): Verdict {
    return evaluate(this.result(this.nodeOf(podKey)).state, {
      endpointId: this.endpointOf(podKey), direction, remoteIp, protocol: protocols[proto]!, port,
    });
  }

  /** Can `from` open a connection to `to` on port/proto? Egress of from AND ingress of to. */
  can(from: string, to: string, port: number, proto = 'TCP'): boolean {
    return this.verdict(from, 'egress', this.ipOf(to), port, proto).allowed
      && this.verdict(to, 'ingress', this.ipOf(from), port, proto).allowed;
  }

  /** Egress from a pod to an address outside the pod network (only the pod's side). */
  canReachIp(from: string, ip: string, port: number, proto = 'TCP'): boolean {
    return this.verdict(from, 'egress', ip, port, proto).allowed;
  }

  /** Ingress into a pod from an address outside the pod network. */
  canBeReachedFrom(ip: string, to: string, port: number, proto = 'TCP'): boolean {
    return this.verdict(to, 'ingress', ip, port, proto).allowed;
  }

  podKeys(): string[] {
    return [...this.pods.keys()].filter((k) => !this.pods.get(k)!.spec.hostNetwork).sort();
  }

  /** Upstream-style truth table: header of destinations, one row per source, `.`/`X`/`-`. */
  matrix(port: number, proto = 'TCP', keys = this.podKeys()): string {
    const rows = [['-', ...keys].join(' ')];
    for (const from of keys) {
      rows.push([from, ...keys.map((to) => (from === to ? '-' : this.can(from, to, port, proto) ? '.' : 'X'))].join(' '));
    }
    return rows.join('\n');
  }

  problems(): string[] {
    const out = new Set<string>();
    for (const n of this.nodes.keys()) {
      for (const p of this.result(n).problems) out.add(`${p.policy} ${p.field}: ${p.message}`);
    }
    return [...out].sort();
  }
}

/** Normalizes a hand-written truth table (whitespace-aligned) for comparison. */
export function table(text: string): string {
  return text.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' ')).join('\n');
}

/** Cluster of the upstream e2e model: namespaces x, y, z; pods a, b, c; two nodes. */
export function upstreamModel(opts: PolicyCompilerOptions = {}): TestCluster {
  const c = new TestCluster(2, opts);
  for (const ns of ['x', 'y', 'z']) {
    c.ns(ns);
    for (const p of ['a', 'b', 'c']) c.pod(ns, p, { labels: { pod: p }, ports: upstreamPorts() });
  }
  return c;
}

/** Expected matrix with every cell `.` except the listed `from>to` pairs. */
export function allExcept(keys: string[], blocked: (from: string, to: string) => boolean): string {
  const rows = [['-', ...keys].join(' ')];
  for (const from of keys) {
    rows.push([from, ...keys.map((to) => (from === to ? '-' : blocked(from, to) ? 'X' : '.'))].join(' '));
  }
  return rows.join('\n');
}
