/** A small cluster for control-plane tests: namespaces x, y; pods a, b in x, a in y. */
import type { ControlPlane } from '../../../pkg/controlplane/controlplane.ts';
import type { MemoryCluster } from '../../../pkg/k8s/memory.ts';
import type { PolicyCompiler } from '../../../pkg/policy/compile.ts';
import type { DatapathState } from '../../../pkg/datapath/types.ts';
import type { LocalEndpoint } from '../../../pkg/policy/snapshot.ts';
import { canonical } from './fakes.ts';

export const NODE = 'node-0';

export function namespace(name: string, labels: Record<string, string> = {}) {
  return { kind: 'Namespace', metadata: { name, labels } };
}

export function pod(ns: string, name: string, ip: string, labels: Record<string, string> = { pod: name }, node = NODE) {
  return {
    kind: 'Pod',
    metadata: { name, namespace: ns, labels },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'probe', ports: [{ name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' }] }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}

export function node(name: string, podCIDR: string, ip: string) {
  return {
    kind: 'Node',
    metadata: { name },
    spec: { podCIDR, podCIDRs: [podCIDR] },
    status: { addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: name }] },
  };
}

export function denyAll(ns: string, name = 'deny') {
  return { kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1', metadata: { name, namespace: ns }, spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] } };
}

/** Ingress to pods labelled pod=<to> from pods labelled pod=<from> on TCP `port`. */
export function allowFrom(ns: string, name: string, to: string, from: string, port: number) {
  return {
    kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1',
    metadata: { name, namespace: ns },
    spec: {
      podSelector: { matchLabels: { pod: to } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { pod: from } } }], ports: [{ port, protocol: 'TCP' }] }],
    },
  };
}

export function endpoint(id: number, ns: string, name: string, ip: string): LocalEndpoint {
  return {
    endpointId: id, ifindex: 100 + id, ifname: `lxc${id}`, containerId: `c${id}`,
    podNamespace: ns, podName: name, ipv4: ip,
  };
}

export const EP_XA = endpoint(1, 'x', 'a', '10.244.0.11');
export const EP_XB = endpoint(2, 'x', 'b', '10.244.0.12');

export function seed(cluster: MemoryCluster): void {
  cluster.apply(namespace('x'));
  cluster.apply(namespace('y', { team: 'blue' }));
  cluster.apply(pod('x', 'a', '10.244.0.11'));
  cluster.apply(pod('x', 'b', '10.244.0.12'));
  cluster.apply(pod('y', 'a', '10.244.1.11', { pod: 'a' }, 'node-1'));
  cluster.apply(node(NODE, '10.244.0.0/24', '10.89.0.10'));
  cluster.apply(node('node-1', '10.244.1.0/24', '10.89.0.11'));
}

/**
 * What the compiler says for the cluster's current state and these endpoints (using the
 * control plane's own compiler instance, so identity numbers agree).
 */
export function expected(cluster: MemoryCluster, compiler: PolicyCompiler, endpoints: LocalEndpoint[]): DatapathState {
  const s = cluster.store.snapshot();
  return canonical(compiler.compile({
    revision: 0, nodeName: NODE, namespaces: s.namespaces, pods: s.pods, nodes: s.nodes,
    policies: s.policies, endpoints: [...endpoints].sort((a, b) => a.endpointId - b.endpointId),
  }).state);
}

export function endpointIds(cp: ControlPlane): number[] {
  return cp.status().endpoints.map((e) => e.endpointId);
}
