/** Flow records for the proxy's requests (pkg/flow/types.ts). */
import type { Direction } from '../datapath/types.ts';
import type { FlowRecord } from '../flow/types.ts';
import type { ConnectionInfo, L7Decision } from './types.ts';

export interface RequestOutcome {
  method: string;
  path: string;
  host?: string;
  /** Status sent to the client; 0 when the client or upstream went away before one. */
  status: number;
}

/** The record of one request: decided (allowed/denied) or refused as malformed. */
export function requestRecord(
  node: string,
  conn: ConnectionInfo,
  out: RequestOutcome,
  decision: L7Decision | { malformed: true; direction: Direction },
): FlowRecord {
  const rec: FlowRecord = {
    time: Date.now(),
    node,
    verdict: 'denied',
    direction: decision.direction,
    protocol: 'TCP',
    src: { ip: conn.srcIp, port: conn.srcPort },
    dst: { ip: conn.dstIp, port: conn.dstPort },
    ruleId: 0,
    http: out.host === undefined
      ? { method: out.method, path: out.path, status: out.status }
      : { method: out.method, path: out.path, host: out.host, status: out.status },
  };
  if ('malformed' in decision) {
    rec.reason = 'http-malformed';
    return rec;
  }
  if (decision.allowed) rec.verdict = 'allowed';
  else rec.reason = 'http-denied';
  if (decision.policy !== undefined) rec.policy = decision.policy;
  rec.ruleId = decision.ruleId ?? 0;
  return rec;
}
