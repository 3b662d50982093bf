/**
 * The contract between the L7 HTTP proxy engine (pkg/l7/proxy*.ts) and the agent code that
 * feeds it the policy and receives its records (pkg/agent, the datapath redirect).
 * The engine knows HTTP; the decider knows policy. A shared contract: extend compatibly.
 */
import type { Direction } from '../datapath/types.ts';
import type { FlowRecord } from '../flow/types.ts';

/** The accepted connection as the client addressed it (TPROXY/sk_assign keep the original). */
export interface ConnectionInfo {
  srcIp: string;
  srcPort: number;
  /** The original destination (the server pod), not the proxy's own address. */
  dstIp: string;
  dstPort: number;
}

/** One parsed request head, as the decider sees it. Header names are lowercase. */
export interface RequestInfo {
  method: string;
  /** The request-target's path (origin form), query string included. */
  path: string;
  /** The Host header without port normalisation, absent when missing. */
  host?: string;
  headers: ReadonlyMap<string, readonly string[]>;
}

export interface L7Decision {
  allowed: boolean;
  /** Direction of the policy that decided (egress of the client or ingress of the server). */
  direction: Direction;
  /** The deciding policy key (`kind:namespace/name`), or `default-deny`. */
  policy?: string;
  ruleId?: number;
}

/**
 * Decides one request. Called for every request (not once per connection), so a policy
 * update applies to the next request on an open keep-alive connection.
 */
export interface L7Decider {
  decide(conn: ConnectionInfo, req: RequestInfo): L7Decision;
  /**
   * Optional (added by the proxy engine): the direction to stamp on records of requests
   * that never reach decide() (malformed, oversized, timed out). Without it the engine uses
   * the connection's last decision's direction, else `ingress`.
   */
  direction?(conn: ConnectionInfo): Direction;
}

export interface L7Limits {
  /** Largest request head (request line + headers), bytes; larger gets 431 and close. */
  maxHeaderBytes: number;
  /** Requests served on one client connection before it is closed. */
  maxRequestsPerConnection: number;
  /** Idle keep-alive timeout, ms. */
  idleTimeoutMs: number;
  /** Time allowed to receive a complete request head, ms (slowloris guard). */
  headerTimeoutMs: number;
  /** Concurrent client connections; beyond it new ones are refused. */
  maxConnections: number;
  /**
   * While a request is in progress (body, waiting for or streaming the response) or a
   * connection is a tunnel: how long no byte may move in either direction, ms. Then the
   * client gets 408 (its request body stalled) or 504 (the upstream stalled) when no
   * response has started, else both sides are cut off.
   */
  streamIdleTimeoutMs: number;
}

export interface L7ProxyOptions {
  /** Address and port the proxy listens on (the port PolicyEntry.proxyPort names). */
  host: string;
  port: number;
  decider: L7Decider;
  /** One record per request (and per malformed/refused request), for flows and metrics. */
  onRecord(record: FlowRecord): void;
  /** Node name stamped on records. */
  node: string;
  limits?: Partial<L7Limits>;
  /**
   * How to open the upstream connection to the original destination. The default is a
   * plain `net.connect` to conn.dstIp:dstPort; the datapath integration supplies one that
   * keeps the client's source address (transparent upstream).
   */
  connectUpstream?: (conn: ConnectionInfo) => import('node:net').Socket;
  /**
   * Where the original destination comes from for an accepted socket. The default is the
   * socket's local address (what TPROXY and bpf_sk_assign preserve).
   */
  originalDestination?: (socket: import('node:net').Socket) => { ip: string; port: number };
}

export interface L7Proxy {
  /** The bound port. */
  port: number;
  /** Open client connections. */
  connections(): number;
  /** Stops accepting, closes open connections, resolves when all are gone. */
  close(): Promise<void>;
}
