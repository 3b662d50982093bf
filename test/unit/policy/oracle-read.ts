/**
 * The direct reading of NetworkPolicy peers shared by the differential tests (oracle,
 * l7-oracle): written from the API's documentation, reusing no compiler code but the
 * IPv4 parser, so that the compiler is checked against an independent account.
 */
import { parseIpv4 } from '../../../pkg/policy/ip.ts';
import type { LabelSelector, NetworkPolicy, NetworkPolicyPeer, Pod } from '../../../pkg/policy/snapshot.ts';
import type { TestCluster } from './cluster.ts';

/** One end of a connection: a pod and its IP, or an address outside the cluster. */
export interface Side { pod?: Pod; ip: string }

export function inCidr(ip: string, cidr: string): boolean {
  const [net, len] = cidr.split('/') as [string, string];
  const l = Number(len);
  if (l === 0) return true;
  const mask = (0xffffffff << (32 - l)) >>> 0;
  return ((parseIpv4(ip)! & mask) >>> 0) === ((parseIpv4(net)! & mask) >>> 0);
}

/** A label selector against labels: every matchLabels pair and every expression holds. */
export function matches(sel: LabelSelector, l: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = e.key in l;
    if (e.operator === 'In' && !(has && e.values!.includes(l[e.key]!))) return false;
    if (e.operator === 'NotIn' && has && e.values!.includes(l[e.key]!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** Whether `peer` of policy `np` names the other end of the connection. */
export function peerMatches(c: TestCluster, np: NetworkPolicy, peer: NetworkPolicyPeer, other: Side): boolean {
  if (peer.ipBlock) {
    return inCidr(other.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((x) => inCidr(other.ip, x));
  }
  if (!other.pod) return false;
  const ns = other.pod.metadata.namespace!;
  if (peer.namespaceSelector) {
    if (!matches(peer.namespaceSelector, c.namespaces.get(ns)!.metadata.labels!)) return false;
  } else if (ns !== np.metadata.namespace) return false;
  return peer.podSelector ? matches(peer.podSelector, other.pod.metadata.labels ?? {}) : true;
}
