/**
 * The Linux network edge of the endpoint lifecycle: one veth pair per pod attachment.
 * The Linux implementation is pkg/datapath/linux/net/podnet.ts (it runs `ip`); the
 * in-memory one (./podnet-memory.ts) lets the lifecycle be tested unprivileged.
 *
 * The layout set up for a pod (routed, no bridge, no ARP dependency):
 *   pod netns:  <podIfName> address <ipv4>/32, route <gateway> scope link,
 *               default via <gateway>, permanent neighbour <gateway> -> <hostMac>
 *   host:       <hostIfName> up, route <ipv4>/32 dev <hostIfName>,
 *               permanent neighbour <ipv4> -> <podMac>
 */

export interface PodLinkSpec {
  hostIfName: string;
  hostMac: string;
  podIfName: string;
  podMac: string;
  /** Path of the pod's network namespace (/var/run/netns/X, /proc/PID/ns/net). */
  netns: string;
  mtu: number;
  ipv4: string;
  /** Link-local gateway address the pod routes through (169.254.1.1). */
  gateway: string;
}

export interface PodLinkInfo {
  /** ifindex of the host-side veth in the agent's namespace. */
  hostIfindex: number;
}

/** A step of the pod network failed; `cause` holds the tool's message. */
export class PodNetworkError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PodNetworkError';
  }
}

export interface PodSetupOptions {
  /**
   * Runs as soon as the host veth exists, concurrently with configuring the pod's side
   * (e.g. attaching programs). When it rejects, setup removes the veth and rejects
   * with that same error (not a PodNetworkError).
   */
  onHostLink?: (hostIfindex: number) => Promise<void>;
  /** When given, setup adds its own phase durations (ms) here, for the debug log. */
  phases?: Record<string, number>;
}

export interface PodNetwork {
  /**
   * Creates the veth pair (the pod end directly inside `netns`, named `podIfName`) and
   * configures both ends. On failure nothing it created is left behind.
   * Rejects with PodNetworkError, whose message says which step failed.
   */
  setup(spec: PodLinkSpec, opts?: PodSetupOptions): Promise<PodLinkInfo>;
  /** Deletes the host-side veth (its peer, routes and neighbours go with it). Succeeds when already gone. */
  teardown(hostIfName: string): Promise<void>;
  /** The host-side veth's ifindex, or undefined when it does not exist. */
  hostLink(hostIfName: string): Promise<{ ifindex: number } | undefined>;
  /** What differs from `spec` (an empty list when everything is in place). */
  check(spec: PodLinkSpec): Promise<string[]>;
  /** Names of host-side veths starting with `prefix`. */
  listHostLinks(prefix: string): Promise<string[]>;
}
