/**
 * Cross-node routing as data. Pods on different nodes reach each other by plain routing:
 * every node routes each other node's pod CIDR via that node's InternalIP (the nodes
 * share a network, as kind's do), with no tunnel and no NAT, so policy on the receiving
 * node sees the real source pod IP. Traffic from local pods to anything outside the
 * cluster CIDRs is masqueraded to the node's address.
 *
 * `desiredRouting` is pure; a `Routing` (pkg/datapath/linux/routing.ts, or
 * `MemoryRouting` here) makes it so.
 */
import type { Node } from '../policy/snapshot.ts';
import {
  formatIpv4, formatPrefix, parseCidr, parseIpv4, prefixContains,
} from '../policy/ip.ts';

export interface NodeRoute {
  /** Another node's pod CIDR, canonical ("10.244.1.0/24"). */
  dst: string;
  /** That node's InternalIP. */
  via: string;
  /** That node's name (for logs; not part of the kernel state). */
  node: string;
}

export interface Masquerade {
  /** Sources: this node's pod CIDRs. */
  podCIDRs: string[];
  /** Destinations never masqueraded: the cluster's pod CIDRs. */
  clusterCIDRs: string[];
}

export interface RoutingState {
  /** Sorted by dst. */
  routes: NodeRoute[];
  /** undefined when this node has no pod CIDR yet. */
  masquerade: Masquerade | undefined;
}

export interface Routing {
  /** Makes the kernel state equal `desired`, touching only what this Routing created. */
  apply(desired: RoutingState): Promise<void>;
  /** The state this Routing currently owns (routes by dst/via; node names are ''). */
  dump(): Promise<RoutingState>;
  /** Removes everything this Routing created. Idempotent. */
  clear(): Promise<void>;
}

export interface RoutingOptions {
  /**
   * The cluster's pod CIDRs (e.g. the cluster-cidr of the controller manager). When
   * empty, the union of every node's pod CIDRs is used, which is exact for kind and the
   * lab.
   */
  clusterCIDRs?: readonly string[];
}

/** Why a node contributes no route, for logs. */
export interface SkippedNode {
  node: string;
  reason: string;
}

function canonicalV4Prefix(s: string): string | undefined {
  const p = parseCidr(s);
  return p ? formatPrefix(p.prefix) : undefined;
}

/** The IPv4 pod CIDRs of a node (spec.podCIDRs, else spec.podCIDR), canonical. */
export function nodePodCIDRs(node: Node): string[] {
  const raw = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : [node.spec?.podCIDR ?? ''];
  const out: string[] = [];
  for (const c of raw) {
    const v = canonicalV4Prefix(c);
    if (v && !out.includes(v)) out.push(v);
  }
  return out;
}

/** A node's IPv4 InternalIP, if it has one. */
export function nodeInternalIP(node: Node): string | undefined {
  for (const a of node.status?.addresses ?? []) {
    if (a.type !== 'InternalIP') continue;
    const n = parseIpv4(a.address);
    if (n !== undefined) return formatIpv4(n);
  }
  return undefined;
}

/**
 * The routing this node wants: a route to every other node's pod CIDRs via its
 * InternalIP, and masquerading for traffic from this node's pod CIDRs to destinations
 * outside the cluster CIDRs. Nodes without a pod CIDR or an InternalIP are skipped (they
 * get one later; the watch brings the update), and so is any CIDR that overlaps this
 * node's own pod CIDRs (a misconfiguration that must not steal local pods' traffic).
 */
export function desiredRouting(
  nodes: ReadonlyMap<string, Node> | Iterable<Node>,
  nodeName: string,
  opts: RoutingOptions = {},
): { state: RoutingState; skipped: SkippedNode[] } {
  const list = nodes instanceof Map ? [...nodes.values()] : [...(nodes as Iterable<Node>)];
  const self = list.find((n) => n.metadata.name === nodeName);
  const own = self ? nodePodCIDRs(self) : [];
  const skipped: SkippedNode[] = [];
  const routes = new Map<string, NodeRoute>();
  const allPodCIDRs = new Set<string>(own);
  for (const node of [...list].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    if (node.metadata.name === nodeName) continue;
    const cidrs = nodePodCIDRs(node);
    for (const c of cidrs) allPodCIDRs.add(c);
    const via = nodeInternalIP(node);
    if (cidrs.length === 0) {
      skipped.push({ node: node.metadata.name, reason: 'no pod CIDR' });
      continue;
    }
    if (!via) {
      skipped.push({ node: node.metadata.name, reason: 'no IPv4 InternalIP' });
      continue;
    }
    for (const dst of cidrs) {
      if (own.some((o) => overlaps(o, dst))) {
        skipped.push({ node: node.metadata.name, reason: `pod CIDR ${dst} overlaps this node's` });
        continue;
      }
      if (routes.has(dst)) {
        skipped.push({ node: node.metadata.name, reason: `pod CIDR ${dst} also claimed by ${routes.get(dst)!.node}` });
        continue;
      }
      routes.set(dst, { dst, via, node: node.metadata.name });
    }
  }
  const configured = (opts.clusterCIDRs ?? [])
    .map((c) => {
      const v = canonicalV4Prefix(c);
      if (!v) throw new Error(`invalid cluster CIDR ${JSON.stringify(c)}`);
      return v;
    });
  const clusterCIDRs = configured.length ? configured : [...allPodCIDRs];
  return {
    state: {
      routes: [...routes.values()].sort((a, b) => a.dst.localeCompare(b.dst)),
      masquerade: own.length
        ? { podCIDRs: own, clusterCIDRs: [...new Set(clusterCIDRs)].sort() }
        : undefined,
    },
    skipped,
  };
}

function overlaps(a: string, b: string): boolean {
  const pa = parseCidr(a)!.prefix;
  const pb = parseCidr(b)!.prefix;
  return prefixContains(pa, pb) || prefixContains(pb, pa);
}

/** Equality of two routing states (ignoring node names, which the kernel does not keep). */
export function sameRouting(a: RoutingState | undefined, b: RoutingState | undefined): boolean {
  if (!a || !b) return a === b;
  const key = (s: RoutingState) => JSON.stringify([
    s.routes.map((r) => [r.dst, r.via]),
    s.masquerade ? [s.masquerade.podCIDRs, s.masquerade.clusterCIDRs] : null,
  ]);
  return key(a) === key(b);
}

/** In-memory Routing for tests: records the state and how many times it was applied. */
export class MemoryRouting implements Routing {
  state: RoutingState = { routes: [], masquerade: undefined };
  applies = 0;
  /** When set, the next apply rejects with it (once). */
  failNext: Error | undefined;

  async apply(desired: RoutingState): Promise<void> {
    if (this.failNext) {
      const err = this.failNext;
      this.failNext = undefined;
      throw err;
    }
    this.applies++;
    this.state = structuredClone(desired);
  }

  async dump(): Promise<RoutingState> {
    return {
      routes: this.state.routes.map((r) => ({ ...r, node: '' })),
      masquerade: this.state.masquerade && structuredClone(this.state.masquerade),
    };
  }

  async clear(): Promise<void> {
    this.state = { routes: [], masquerade: undefined };
  }
}
