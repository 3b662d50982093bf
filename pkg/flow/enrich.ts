/**
 * From the datapath's FlowEvent to a FlowRecord: pod names for both addresses, the local
 * endpoint's identity, and the deciding policy (docs/agent-api.md#get-v1flows):
 * - a non-zero ruleId: the policy key of that rule in the last compile;
 * - a `policy-denied` drop with ruleId 0 on an endpoint isolated in that direction:
 *   `default-deny` (nothing allowed it);
 * - an allowed flow with ruleId 0 of an endpoint not isolated in that direction: `none`;
 * - anything else (host traffic, malformed packets, an unknown endpoint): absent.
 * A frame that is not IPv4 (an `unsupported-l3` drop: IPv6, or another ethertype) has no
 * addresses or ports the datapath read (they stay 0.0.0.0/0): its protocol is
 * `non-IPv4` rather than the meaningless `0`, and the local side is named after the
 * endpoint's pod (FlowSources.podOfEndpoint), so the drop is attributable.
 */
import {
  PROTO_ICMP, PROTO_SCTP, PROTO_TCP, PROTO_UDP, type FlowEvent,
} from '../datapath/types.ts';
import type { FlowPeer, FlowRecord } from './types.ts';

/** What the enricher reads; every lookup may miss (the record then carries less). */
export interface FlowSources {
  node: string;
  /** The pod holding an address (any node's pod, or a local endpoint). */
  podByIp(ip: string): { namespace: string; name: string } | undefined;
  /** Policy key (`kind:namespace/name`) of a rule id from the last compile. */
  policyOfRule(ruleId: number): string | undefined;
  /** A local endpoint by id: its identity and enforcement per direction. */
  endpoint(endpointId: number): { identity?: number; ingressEnforced: boolean; egressEnforced: boolean } | undefined;
  /** The pod of a local endpoint by id; names the local side of a frame without addresses. */
  podOfEndpoint?(endpointId: number): { namespace: string; name: string } | undefined;
}

/** FlowRecord.protocol of a frame that is not IPv4 (drop reason `unsupported-l3`). */
export const PROTOCOL_NON_IPV4 = 'non-IPv4';

const PROTOCOLS: Record<number, string> = {
  [PROTO_TCP]: 'TCP', [PROTO_UDP]: 'UDP', [PROTO_SCTP]: 'SCTP', [PROTO_ICMP]: 'ICMP',
};

export function protocolName(n: number): string {
  return PROTOCOLS[n] ?? String(n);
}

function peer(ip: string, port: number, src: FlowSources, identity: number | undefined): FlowPeer {
  const p: FlowPeer = { ip, port };
  const pod = src.podByIp(ip);
  if (pod) {
    p.namespace = pod.namespace;
    p.pod = pod.name;
  }
  if (identity !== undefined) p.identity = identity;
  return p;
}

export function enrichEvent(e: FlowEvent, src: FlowSources): FlowRecord {
  const ep = src.endpoint(e.endpointId);
  // The remote side is the source of an ingress packet and the destination of an egress one.
  const remoteIsSrc = e.direction === 'ingress';
  const record: FlowRecord = {
    time: e.time,
    node: src.node,
    verdict: e.verdict,
    direction: e.direction,
    protocol: protocolName(e.protocol),
    src: peer(e.srcIp, e.srcPort, src, remoteIsSrc ? e.peerIdentity : ep?.identity),
    dst: peer(e.dstIp, e.dstPort, src, remoteIsSrc ? ep?.identity : e.peerIdentity),
    ruleId: e.ruleId,
  };
  if (e.reason) record.reason = e.reason;
  if (e.reason === 'unsupported-l3') {
    record.protocol = PROTOCOL_NON_IPV4;
    const pod = src.podOfEndpoint?.(e.endpointId);
    const local = remoteIsSrc ? record.dst : record.src;
    if (pod) {
      local.namespace = pod.namespace;
      local.pod = pod.name;
    }
  }
  const enforced = ep ? (e.direction === 'ingress' ? ep.ingressEnforced : ep.egressEnforced) : undefined;
  if (e.ruleId !== 0) {
    const policy = src.policyOfRule(e.ruleId);
    if (policy) record.policy = policy;
  } else if (e.verdict === 'dropped' && e.reason === 'policy-denied' && enforced === true) {
    record.policy = 'default-deny';
  } else if (e.verdict === 'allowed' && enforced === false) {
    record.policy = 'none';
  }
  return record;
}
