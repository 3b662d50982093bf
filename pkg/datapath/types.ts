/**
 * The datapath's state as plain data, and the interface every implementation (the Linux
 * one in pkg/datapath/linux, the in-memory one in pkg/datapath/memory) satisfies.
 *
 * The policy compiler produces a `DatapathState` (the desired state); the reconciler diffs
 * it against what is applied (`diffState`) and hands the `DatapathChange` to `apply`.
 * Field names here are the field names of the C structs in bpf/lib/maps.h.
 * See docs/datapath.md for the per-packet algorithm these entries feed.
 */

/** IP protocol numbers; 0 in a policy entry means "any protocol". */
export const PROTO_ANY = 0;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_SCTP = 132;

export type Direction = 'ingress' | 'egress';

/** endpoints map: one per pod, keyed by the ifindex of the pod's host-side veth. */
export interface EndpointEntry {
  ifindex: number;
  endpointId: number;
  identity: number;
  /** Pod IPv4 address, dotted quad. */
  ipv4: string;
  /** Ingress policy enforced (the pod is isolated for ingress). */
  ingressEnforced: boolean;
  egressEnforced: boolean;
}

/** ipcache: longest-prefix match from an address to the identity of whoever holds it. */
export interface IpcacheEntry {
  /** "10.244.1.5/32", "10.0.0.0/8". IPv4 now; keys leave room for IPv6. */
  cidr: string;
  identity: number;
}

/**
 * One allow entry of an endpoint's policy in one direction.
 * Port semantics: `port` 0 and `endPort` 0 = every port of `protocol`; otherwise the
 * inclusive range [port, endPort] (a single port has endPort === port).
 * `protocol` PROTO_ANY (= `ports` absent in the NetworkPolicy) implies every port.
 */
export interface PolicyEntry {
  endpointId: number;
  direction: Direction;
  /** Peer identity; IDENTITY_ANY (0) = any peer. */
  peer: number;
  protocol: number;
  port: number;
  endPort: number;
  /** Attribution: which rule allowed it (resolved to a policy name by the agent). */
  ruleId: number;
  /** L7: the transparent proxy port to redirect to, 0 = no L7 redirect. */
  proxyPort: number;
}

/**
 * Per-endpoint CIDR lookup (ipBlock peers): consulted when the peer's ipcache identity
 * allows nothing; longest prefix wins; `identity` is a CIDR identity
 * (>= IDENTITY_FIRST_CIDR) whose policy entries give the allowed ports.
 * An `except` is a longer prefix mapped to the identity of the remaining covering peers,
 * or to IDENTITY_WORLD (which has no entries) when none remain.
 */
export interface CidrEntry {
  endpointId: number;
  direction: Direction;
  cidr: string;
  identity: number;
}

export interface DatapathState {
  endpoints: EndpointEntry[];
  ipcache: IpcacheEntry[];
  policy: PolicyEntry[];
  cidrs: CidrEntry[];
}

/** Upserts are applied before deletes (add before delete). */
export interface DatapathChange {
  upsert: DatapathState;
  delete: DatapathState;
}

/** Why a packet was dropped. Mirrors the named negative codes in bpf/lib/drop.h. */
export type DropReason =
  | 'policy-denied'
  | 'malformed'
  | 'fragment'
  | 'unsupported-l3'
  | 'no-endpoint';

/** A verdict or drop record from the datapath's event stream. */
export interface FlowEvent {
  /** Milliseconds since the epoch (converted from the kernel's monotonic clock). */
  time: number;
  verdict: 'allowed' | 'dropped' | 'redirected';
  reason?: DropReason;
  direction: Direction;
  endpointId: number;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  protocol: number;
  /** Identity of the remote side as the datapath resolved it. */
  peerIdentity: number;
  /** The PolicyEntry.ruleId that decided, 0 when none (default deny, reply, node). */
  ruleId: number;
}

/** Counters by reason and direction, summed over CPUs. */
export interface DatapathCounters {
  allowed: Record<Direction, number>;
  dropped: Record<Direction, Partial<Record<DropReason, number>>>;
}

export interface Datapath {
  /** Loads programs and creates/opens pinned maps; idempotent and restart-safe. */
  init(): Promise<void>;
  /** Applies a change: every upsert, then every delete. Idempotent. */
  apply(change: DatapathChange): Promise<void>;
  /** Reads back every entry (used after a restart to re-derive the applied state). */
  dump(): Promise<DatapathState>;
  /** Attaches the programs to a pod's host-side veth (tcx, else clsact). Idempotent. */
  attach(ifindex: number): Promise<void>;
  /** Detaches them; succeeds when the link is already gone. */
  detach(ifindex: number): Promise<void>;
  /** Flow events as they arrive; ends when `close` is called. */
  events(): AsyncIterable<FlowEvent>;
  counters(): Promise<DatapathCounters>;
  /**
   * ClusterIP Services (docs/services.md): makes the translated frontends exactly
   * `services` (the whole desired set, not a delta; the implementation diffs against what
   * it applied, adds before it deletes). Optional: a datapath without it translates
   * nothing. Bad input throws before anything is written.
   */
  applyServices?(services: readonly ServiceEntry[]): Promise<void>;
  /** Translation counters (summed over CPUs); with applyServices. */
  serviceCounters?(): Promise<ServiceCounters>;
  /**
   * How the programs were attached by the most recent successful attach: `tcx`, or
   * `clsact` (asked for, or the fallback where the kernel has no tcx). Undefined before
   * the first attach, and for datapaths that attach nothing. Optional; PalisadeNode and
   * /v1/status report it as `datapathMode` (docs/inspect.md).
   */
  attachMode?(): 'tcx' | 'clsact' | undefined;
  /** Releases file descriptors and readers; leaves programs, pins and maps in place. */
  close(): Promise<void>;
}

export function emptyState(): DatapathState {
  return { endpoints: [], ipcache: [], policy: [], cidrs: [] };
}

/** A ready backend of a Service frontend: the pod IP and the resolved targetPort. */
export interface BackendEntry {
  ip: string;
  port: number;
}

/**
 * One ClusterIP frontend: (ClusterIP, Service port, protocol) and its ready backends, in
 * a stable order. No backends = the datapath answers like kube-proxy's REJECT (ICMP port
 * unreachable). See docs/services.md.
 */
export interface ServiceEntry {
  /** "namespace/name:port" (inspection and logs only; not written to the kernel). */
  name: string;
  ip: string;
  port: number;
  /** PROTO_TCP, PROTO_UDP or PROTO_SCTP. */
  protocol: number;
  /** sessionAffinity ClientIP timeout in seconds; 0 = no affinity. */
  affinityTimeoutSec: number;
  backends: BackendEntry[];
}

/** Service translation counters, summed over CPUs (bpf/lib/service.h SVC_CNT_*). */
export interface ServiceCounters {
  /** Forward packets translated to a backend (hairpin included). */
  translated: number;
  /** New flows: backend selections recorded. */
  newFlows: number;
  /** Reply packets translated back to the ClusterIP. */
  reversed: number;
  /** Packets to a frontend without ready backends (answered with ICMP port unreachable). */
  noBackend: number;
  /** Hairpin packets (a pod reaching itself through its Service), both directions. */
  hairpin: number;
  /** Rewrites that failed (packet dropped). */
  errors: number;
}
