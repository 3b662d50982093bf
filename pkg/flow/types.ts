/**
 * Flow records: what the agent keeps of the datapath's verdict/drop events and of the L7
 * proxy's requests, enriched with pod names and the deciding policy. This is the shape of
 * `GET /v1/flows` (docs/agent-api.md) and of `kubectl palisade observe -o json`.
 * A shared contract: extend it compatibly (optional fields), never change a field's meaning.
 */
import type { Direction, DropReason } from '../datapath/types.ts';

/** One side of a flow. `namespace`/`pod` are absent when the address is not a known pod. */
export interface FlowPeer {
  ip: string;
  port: number;
  namespace?: string;
  pod?: string;
  /** Identity as the datapath resolved it (reserved ones: pkg/identity/reserved.ts). */
  identity?: number;
}

/** HTTP detail of an L7 flow record (one per request seen by the proxy). */
export interface FlowHttp {
  method: string;
  path: string;
  host?: string;
  /** Status sent to the client: the upstream's, 403 when denied, 400/502/... on errors. */
  status: number;
}

export type FlowVerdict = 'allowed' | 'dropped' | 'redirected' | 'denied';

export interface FlowRecord {
  /** Milliseconds since the epoch. */
  time: number;
  /** Node whose agent recorded it. */
  node: string;
  /**
   * `allowed`/`dropped` for L3/L4 packets, `redirected` when handed to the L7 proxy,
   * and for HTTP requests `allowed` (forwarded) or `denied` (answered 403).
   */
  verdict: FlowVerdict;
  /** Why it was dropped/denied: a datapath DropReason, or `http-denied`. */
  reason?: DropReason | 'http-denied' | 'http-malformed';
  /** The direction of the policy that decided (the local endpoint's point of view). */
  direction: Direction;
  /**
   * `TCP`, `UDP`, `SCTP`, `ICMP`, or the protocol number as a string; `non-IPv4` for a
   * frame that is not IPv4 (reason `unsupported-l3`; its addresses are then 0.0.0.0).
   */
  protocol: string;
  src: FlowPeer;
  dst: FlowPeer;
  /**
   * The deciding policy as `kind:namespace/name` (the compiler's policy key), `default-deny`
   * when the endpoint is isolated and nothing allows it, `none` when no policy isolates
   * the endpoint in this direction, absent when not attributable (replies, node traffic).
   */
  policy?: string;
  /** The datapath rule id (PolicyEntry.ruleId), 0 when none. */
  ruleId: number;
  http?: FlowHttp;
}

/** Filters accepted by `GET /v1/flows` and `kubectl palisade observe`. */
export interface FlowFilter {
  verdict?: FlowVerdict;
  /** `namespace/name`: records whose src or dst is that pod. */
  pod?: string;
  /** Only records with `time` > since (ms since the epoch). */
  since?: number;
  /** At most this many (the newest), default 100. */
  limit?: number;
}
