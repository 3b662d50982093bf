/**
 * The compiler's input: a consistent view of the cluster as plain Kubernetes JSON shapes
 * (what the watch delivers), plus the node's own endpoints. Only the fields Palisade reads
 * are typed; objects may carry more.
 */

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  generation?: number;
  deletionTimestamp?: string;
}

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | string;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: 'TCP' | 'UDP' | 'SCTP' | string;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    nodeName?: string;
    hostNetwork?: boolean;
    containers: { name: string; ports?: ContainerPort[] }[];
  };
  status?: { phase?: string; podIP?: string; podIPs?: { ip: string }[]; hostIP?: string };
}

export interface Namespace {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface Node {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { addresses?: { type: string; address: string }[] };
}

export interface NetworkPolicyPort {
  protocol?: string;
  /** A number, or the name of a container port. */
  port?: number | string;
  endPort?: number;
  /** PalisadeNetworkPolicy only: L7 HTTP rules on this port. */
  http?: HttpRule[];
}

export interface HttpRule {
  method?: string;
  path?: string;
  host?: string;
  headers?: { name: string; value?: string }[];
}

export interface IPBlock {
  cidr: string;
  except?: string[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IPBlock;
}

export interface NetworkPolicyIngressRule {
  from?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicySpec {
  podSelector: LabelSelector;
  policyTypes?: ('Ingress' | 'Egress' | string)[];
  ingress?: NetworkPolicyIngressRule[];
  egress?: NetworkPolicyEgressRule[];
}

/** A NetworkPolicy or a PalisadeNetworkPolicy (same spec plus `http` on ports). */
export interface NetworkPolicy {
  apiVersion?: string;
  kind?: 'NetworkPolicy' | 'PalisadeNetworkPolicy' | string;
  metadata: ObjectMeta;
  spec: NetworkPolicySpec;
}

/** A pod of this node that has an interface set up by the CNI. */
export interface LocalEndpoint {
  endpointId: number;
  /** ifindex of the host-side veth (the endpoints map key). */
  ifindex: number;
  ifname: string;
  containerId: string;
  podNamespace: string;
  podName: string;
  podUid?: string;
  ipv4: string;
}

/**
 * Everything the compiler reads. Maps are keyed by `namespace/name` (pods, policies) or
 * `name` (namespaces, nodes). `revision` increases with every change the agent sees and
 * is echoed in what the compiler returns.
 */
export interface ClusterSnapshot {
  revision: number;
  /** This node's name. */
  nodeName: string;
  namespaces: ReadonlyMap<string, Namespace>;
  pods: ReadonlyMap<string, Pod>;
  nodes: ReadonlyMap<string, Node>;
  /** NetworkPolicies and PalisadeNetworkPolicies, keyed `kind:namespace/name`. */
  policies: ReadonlyMap<string, NetworkPolicy>;
  endpoints: readonly LocalEndpoint[];
  /**
   * True when these maps are never mutated once handed out (ClusterStore snapshots are
   * copy-on-write): the compiler then skips comparing a map it has seen before. Leave it
   * unset for maps that are reused and changed in place.
   */
  immutableMaps?: boolean;
}
