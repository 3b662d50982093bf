/**
 * The L7 decider: judges one HTTP request against the compiled policy in force now.
 *
 * For a request on a connection (src -> dst:port), with the latest CompileResult:
 * - when src is a local endpoint, its egress towards dst must allow the request;
 * - when dst is a local endpoint, its ingress from src must allow it;
 * both when both are local (the proxy on this node saw the connection once). Each side
 * is judged on every rule that applies to the peer and port (pkg/policy/evaluate.ts
 * `l7Applicable`: its identity, any peer, any pod, the ipBlock prefixes covering its
 * address), not only on the entry the datapath picked: one without `http` lets every
 * request through (the union of NetworkPolicy semantics); otherwise a request passes iff
 * one of the union of their `http` rules matches it; no allow at all (the policy changed
 * since the connection was opened) denies every request.
 *
 * Pure: the result source is a function, read on every request, so a policy update
 * applies to the next request of an open connection.
 */
import type { Direction } from '../datapath/types.ts';
import { PROTO_TCP } from '../datapath/types.ts';
import { l7Applicable, type L7Applicable } from '../policy/evaluate.ts';
import type { CompileResult } from '../policy/types.ts';
import { matchHttpRule } from './match.ts';
import type { ConnectionInfo, L7Decider, L7Decision, RequestInfo } from './types.ts';

/** Memoized side answers kept per compile result before the memo starts over. */
const MEMO_LIMIT = 4096;

interface Side {
  endpointId: number;
  direction: Direction;
  remoteIp: string;
}

export class PolicyDecider implements L7Decider {
  readonly #source: () => CompileResult | undefined;
  #indexed?: CompileResult;
  #byIp = new Map<string, number>();
  /** `l7Applicable` answers for `#indexed`, by side and port (requests of one connection repeat them). */
  #applicable = new Map<string, L7Applicable>();

  /** `source` returns the latest compile result (undefined before the first one). */
  constructor(source: () => CompileResult | undefined) {
    this.#source = source;
  }

  #endpointOf(r: CompileResult, ip: string): number | undefined {
    if (this.#indexed !== r) {
      this.#byIp = new Map(r.state.endpoints.map((e) => [e.ipv4, e.endpointId]));
      this.#applicable.clear();
      this.#indexed = r;
    }
    return this.#byIp.get(ip);
  }

  /** `l7Applicable` for one side, memoized per compile result (bounded). */
  #applicableFor(r: CompileResult, s: Side, port: number): L7Applicable {
    const k = `${s.endpointId}/${s.direction}/${s.remoteIp}/${port}`;
    let a = this.#applicable.get(k);
    if (!a) {
      a = l7Applicable(r, {
        endpointId: s.endpointId, direction: s.direction, remoteIp: s.remoteIp,
        protocol: PROTO_TCP, port,
      });
      if (this.#applicable.size >= MEMO_LIMIT) this.#applicable.clear();
      this.#applicable.set(k, a);
    }
    return a;
  }

  /** The sides that judge this connection: the client's egress first, then the server's ingress. */
  #sides(r: CompileResult, conn: ConnectionInfo): Side[] {
    const sides: Side[] = [];
    const src = this.#endpointOf(r, conn.srcIp);
    if (src !== undefined) sides.push({ endpointId: src, direction: 'egress', remoteIp: conn.dstIp });
    const dst = this.#endpointOf(r, conn.dstIp);
    if (dst !== undefined) sides.push({ endpointId: dst, direction: 'ingress', remoteIp: conn.srcIp });
    return sides;
  }

  direction(conn: ConnectionInfo): Direction {
    const r = this.#source();
    const sides = r ? this.#sides(r, conn) : [];
    return sides.at(-1)?.direction ?? 'ingress';
  }

  decide(conn: ConnectionInfo, req: RequestInfo): L7Decision {
    const r = this.#source();
    if (!r) return { allowed: false, direction: 'ingress', policy: 'default-deny' };
    const sides = this.#sides(r, conn);
    // Neither end is ours: nothing here allows it (the redirect only sends local traffic).
    if (sides.length === 0) return { allowed: false, direction: 'ingress', policy: 'default-deny' };
    let decided: L7Decision | undefined;
    for (const s of sides) {
      const a = this.#applicableFor(r, s, conn.dstPort);
      if (a.kind === 'denied') return { allowed: false, direction: s.direction, policy: 'default-deny' };
      if (a.kind === 'all') {
        // Plain allow (or not enforced): every request, attributed when a rule decided.
        decided ??= {
          allowed: true, direction: s.direction,
          policy: a.ruleId ? r.rules.get(a.ruleId)?.policy : 'none', ruleId: a.ruleId || undefined,
        };
        continue;
      }
      const i = a.http.findIndex((h) => matchHttpRule(h, req));
      if (i < 0) {
        // Denied: attributed to the (first) rule that sent the connection to the proxy.
        const ruleId = a.ruleIds[0] ?? a.verdict.ruleId;
        return { allowed: false, direction: s.direction, policy: r.rules.get(ruleId)?.policy, ruleId };
      }
      // Allowed by the rule whose http entry matched; the side with http rules is the one
      // worth naming.
      const ruleId = a.httpRuleIds[i]!;
      decided = { allowed: true, direction: s.direction, policy: r.rules.get(ruleId)?.policy, ruleId };
    }
    return decided!;
  }
}
