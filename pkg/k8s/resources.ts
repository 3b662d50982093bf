/**
 * The Kubernetes resources the agent watches, their store keys, and the "slim" form the
 * store keeps: only the fields Palisade reads (pkg/policy/snapshot.ts), copied into plain
 * JSON. Slimming keeps memory flat at 10k pods and lets the store drop updates that change
 * nothing Palisade reads (pod status conditions, managedFields, ...), so they never wake
 * the reconciler.
 *
 * Inputs may be raw watch JSON or client-node's deserialized models (timestamps as Date);
 * both have the same field names, and the output is the same plain JSON either way.
 */
import type {
  Namespace, NetworkPolicy, Node, ObjectMeta, Pod,
} from '../policy/snapshot.ts';
import type { EndpointSlice, Service } from '../service/types.ts';

/** The store's resource kinds. */
export type ResourceKind = 'pods' | 'namespaces' | 'nodes' | 'policies' | 'services' | 'endpointslices';

export const resourceKinds: readonly ResourceKind[] = ['pods', 'namespaces', 'nodes', 'policies', 'services', 'endpointslices'];

export interface ResourceTypes {
  pods: Pod;
  namespaces: Namespace;
  nodes: Node;
  policies: NetworkPolicy;
  services: Service;
  endpointslices: EndpointSlice;
}

export type AnyResource = ResourceTypes[ResourceKind];

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => {
  if (typeof v === 'string') return v;
  if (v instanceof Date) return v.toISOString();
  return undefined;
};

function labelMap(v: unknown): Record<string, string> | undefined {
  if (!isObj(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

/** Thrown by `slim` for an object the store cannot key (no metadata.name). */
export class ResourceError extends Error {
  readonly code = 'PAL_K8S_OBJECT';
  constructor(message: string) {
    super(message);
    this.name = 'ResourceError';
  }
}

function slimMeta(v: unknown, namespaced: boolean): ObjectMeta {
  if (!isObj(v) || typeof v.name !== 'string' || v.name === '') {
    throw new ResourceError('object without metadata.name');
  }
  if (namespaced && (typeof v.namespace !== 'string' || v.namespace === '')) {
    throw new ResourceError(`object ${v.name} without metadata.namespace`);
  }
  const m: ObjectMeta = { name: v.name };
  if (namespaced) m.namespace = v.namespace as string;
  const uid = str(v.uid);
  if (uid !== undefined) m.uid = uid;
  const labels = labelMap(v.labels);
  if (labels) m.labels = labels;
  const rv = str(v.resourceVersion);
  if (rv !== undefined) m.resourceVersion = rv;
  if (typeof v.generation === 'number') m.generation = v.generation;
  const del = str(v.deletionTimestamp);
  if (del !== undefined) m.deletionTimestamp = del;
  return m;
}

function slimPorts(v: unknown): Pod['spec']['containers'][number]['ports'] {
  if (!Array.isArray(v)) return undefined;
  return v.filter(isObj).map((p) => {
    const out: { name?: string; containerPort: number; protocol?: string } = {
      containerPort: typeof p.containerPort === 'number' ? p.containerPort : Number(p.containerPort),
    };
    if (typeof p.name === 'string') out.name = p.name;
    if (typeof p.protocol === 'string') out.protocol = p.protocol;
    return out;
  });
}

function slimPod(o: Json): Pod {
  const spec = isObj(o.spec) ? o.spec : {};
  const pod: Pod = {
    kind: 'Pod',
    metadata: slimMeta(o.metadata, true),
    spec: {
      containers: (Array.isArray(spec.containers) ? spec.containers : []).filter(isObj).map((c) => {
        const ports = slimPorts(c.ports);
        return ports ? { name: String(c.name ?? ''), ports } : { name: String(c.name ?? '') };
      }),
    },
  };
  if (typeof spec.nodeName === 'string') pod.spec.nodeName = spec.nodeName;
  if (spec.hostNetwork === true) pod.spec.hostNetwork = true;
  if (isObj(o.status)) {
    const s = o.status;
    const status: NonNullable<Pod['status']> = {};
    if (typeof s.phase === 'string') status.phase = s.phase;
    if (typeof s.podIP === 'string') status.podIP = s.podIP;
    if (Array.isArray(s.podIPs)) {
      const ips = s.podIPs.filter(isObj).filter((x) => typeof x.ip === 'string')
        .map((x) => ({ ip: x.ip as string }));
      // podIPs[0] is podIP: keep the list only when it says more (dual stack).
      if (!(ips.length === 1 && ips[0]!.ip === status.podIP)) status.podIPs = ips;
    }
    pod.status = status;
  }
  return pod;
}

function slimNamespace(o: Json): Namespace {
  return { kind: 'Namespace', metadata: slimMeta(o.metadata, false) };
}

function slimNode(o: Json): Node {
  const node: Node = { kind: 'Node', metadata: slimMeta(o.metadata, false) };
  if (isObj(o.spec)) {
    const spec: NonNullable<Node['spec']> = {};
    if (typeof o.spec.podCIDR === 'string') spec.podCIDR = o.spec.podCIDR;
    if (Array.isArray(o.spec.podCIDRs)) {
      spec.podCIDRs = o.spec.podCIDRs.filter((c): c is string => typeof c === 'string');
    }
    node.spec = spec;
  }
  if (isObj(o.status) && Array.isArray(o.status.addresses)) {
    node.status = {
      addresses: o.status.addresses.filter(isObj)
        .filter((a) => typeof a.type === 'string' && typeof a.address === 'string')
        .map((a) => ({ type: a.type as string, address: a.address as string })),
    };
  }
  return node;
}

/** Plain-JSON deep copy (drops undefined fields, turns Dates into strings). */
function plain<T>(v: unknown): T {
  return JSON.parse(JSON.stringify(v ?? {})) as T;
}

function slimPolicy(o: Json, kind: string, apiVersion: string): NetworkPolicy {
  return {
    apiVersion,
    kind,
    metadata: slimMeta(o.metadata, true),
    spec: plain<NetworkPolicy['spec']>(o.spec),
  };
}

/** Only what ClusterIP translation reads (pkg/service/desired.ts). */
function slimService(o: Json): Service {
  const spec = isObj(o.spec) ? o.spec : {};
  const out: Service = { kind: 'Service', metadata: slimMeta(o.metadata, true), spec: {} };
  if (typeof spec.type === 'string') out.spec.type = spec.type;
  if (typeof spec.clusterIP === 'string') out.spec.clusterIP = spec.clusterIP;
  if (Array.isArray(spec.clusterIPs)) out.spec.clusterIPs = spec.clusterIPs.filter((x): x is string => typeof x === 'string');
  if (typeof spec.sessionAffinity === 'string') out.spec.sessionAffinity = spec.sessionAffinity;
  const sel = labelMap(spec.selector);
  if (sel) out.spec.selector = sel;
  if (isObj(spec.sessionAffinityConfig) && isObj(spec.sessionAffinityConfig.clientIP)) {
    const t = spec.sessionAffinityConfig.clientIP.timeoutSeconds;
    out.spec.sessionAffinityConfig = { clientIP: typeof t === 'number' ? { timeoutSeconds: t } : {} };
  }
  if (Array.isArray(spec.ports)) {
    out.spec.ports = spec.ports.filter(isObj).map((p) => {
      const sp: NonNullable<Service['spec']['ports']>[number] = { port: Number(p.port) };
      if (typeof p.name === 'string') sp.name = p.name;
      if (typeof p.protocol === 'string') sp.protocol = p.protocol;
      if (typeof p.targetPort === 'number' || typeof p.targetPort === 'string') sp.targetPort = p.targetPort;
      return sp;
    });
  }
  return out;
}

function slimEndpointSlice(o: Json): EndpointSlice {
  const out: EndpointSlice = { kind: 'EndpointSlice', metadata: slimMeta(o.metadata, true) };
  if (typeof o.addressType === 'string') out.addressType = o.addressType;
  if (Array.isArray(o.ports)) {
    out.ports = o.ports.filter(isObj).map((p) => {
      const sp: NonNullable<EndpointSlice['ports']>[number] = {};
      if (typeof p.name === 'string') sp.name = p.name;
      if (typeof p.protocol === 'string') sp.protocol = p.protocol;
      if (typeof p.port === 'number') sp.port = p.port;
      return sp;
    });
  }
  if (Array.isArray(o.endpoints)) {
    out.endpoints = o.endpoints.filter(isObj).map((e) => {
      const ep: NonNullable<EndpointSlice['endpoints']>[number] = {
        addresses: Array.isArray(e.addresses) ? e.addresses.filter((a): a is string => typeof a === 'string') : [],
      };
      if (isObj(e.conditions)) {
        const c: NonNullable<typeof ep.conditions> = {};
        for (const k of ['ready', 'serving', 'terminating'] as const) {
          if (typeof e.conditions[k] === 'boolean') c[k] = e.conditions[k];
        }
        ep.conditions = c;
      }
      if (typeof e.nodeName === 'string') ep.nodeName = e.nodeName;
      return ep;
    });
  }
  return out;
}

/** The watched API resources: where they live and how the store keeps them. */
export interface ResourceInfo {
  /** Informer name for logs. */
  name: string;
  kind: ResourceKind;
  apiVersion: string;
  /** The object kind (list items carry none on the wire). */
  objectKind: string;
  /** Collection path for all namespaces, e.g. `/api/v1/pods`. */
  path: string;
  /** A CRD that may be absent: a 404 means "not installed", not an error. */
  optional?: boolean;
  slim(o: unknown): AnyResource;
}

function slimmer(fn: (o: Json) => AnyResource): (o: unknown) => AnyResource {
  return (o) => {
    if (!isObj(o)) throw new ResourceError('object is not a JSON object');
    return fn(o);
  };
}

export const RESOURCES = {
  pods: {
    name: 'pods', kind: 'pods', apiVersion: 'v1', objectKind: 'Pod', path: '/api/v1/pods',
    slim: slimmer(slimPod),
  },
  namespaces: {
    name: 'namespaces', kind: 'namespaces', apiVersion: 'v1', objectKind: 'Namespace',
    path: '/api/v1/namespaces', slim: slimmer(slimNamespace),
  },
  nodes: {
    name: 'nodes', kind: 'nodes', apiVersion: 'v1', objectKind: 'Node', path: '/api/v1/nodes',
    slim: slimmer(slimNode),
  },
  networkPolicies: {
    name: 'networkpolicies', kind: 'policies', apiVersion: 'networking.k8s.io/v1',
    objectKind: 'NetworkPolicy', path: '/apis/networking.k8s.io/v1/networkpolicies',
    slim: slimmer((o) => slimPolicy(o, 'NetworkPolicy', 'networking.k8s.io/v1')),
  },
  palisadeNetworkPolicies: {
    name: 'palisadenetworkpolicies', kind: 'policies', apiVersion: 'palisade.dev/v1alpha1',
    objectKind: 'PalisadeNetworkPolicy',
    path: '/apis/palisade.dev/v1alpha1/palisadenetworkpolicies', optional: true,
    slim: slimmer((o) => slimPolicy(o, 'PalisadeNetworkPolicy', 'palisade.dev/v1alpha1')),
  },
  services: {
    name: 'services', kind: 'services', apiVersion: 'v1', objectKind: 'Service',
    path: '/api/v1/services', slim: slimmer(slimService),
  },
  endpointSlices: {
    name: 'endpointslices', kind: 'endpointslices', apiVersion: 'discovery.k8s.io/v1',
    objectKind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices',
    slim: slimmer(slimEndpointSlice),
  },
} as const satisfies Record<string, ResourceInfo>;

/**
 * The store key of an object: `namespace/name` for pods, `name` for namespaces and nodes,
 * `kind:namespace/name` for policies (as in ClusterSnapshot).
 */
export function keyOf(kind: ResourceKind, o: AnyResource): string {
  const m = o.metadata;
  switch (kind) {
    case 'pods':
    case 'services':
    case 'endpointslices': return `${m.namespace}/${m.name}`;
    case 'namespaces':
    case 'nodes': return m.name;
    case 'policies': return `${o.kind ?? 'NetworkPolicy'}:${m.namespace}/${m.name}`;
  }
}

/**
 * Equality of two slim objects ignoring metadata.resourceVersion: an update that changes
 * nothing Palisade reads is not a change.
 */
export function sameContent(a: AnyResource, b: AnyResource): boolean {
  const ra = a.metadata.resourceVersion;
  const rb = b.metadata.resourceVersion;
  return deepEqual({ ...a, metadata: { ...a.metadata, resourceVersion: undefined } },
    { ...b, metadata: { ...b.metadata, resourceVersion: undefined } }) || (ra !== undefined && ra === rb);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ao = a as Json;
  const bo = b as Json;
  const ka = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const kb = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => deepEqual(ao[k], bo[k]));
}

/**
 * Parses a resourceVersion as an integer. Kubernetes calls RVs opaque, but etcd-backed
 * servers (and the lab's server) issue increasing integers and the agent API compares
 * them that way (docs/agent-api.md). Returns undefined for anything else.
 */
export function parseResourceVersion(rv: unknown): bigint | undefined {
  if (typeof rv !== 'string' || !/^\d{1,30}$/.test(rv)) return undefined;
  return BigInt(rv);
}
