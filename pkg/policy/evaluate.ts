/**
 * The reference model of the datapath's verdict (docs/datapath.md, steps 3-7): given a
 * datapath state, decides one packet's forward direction the way bpf/ does. Pure. It
 * powers `kubectl palisade trace` and the compiler's tests; the datapath mirrors it.
 *
 * When several entries allow a packet, the one reported is the one the datapath's lookups
 * find (see `matchAll` and `score`): the first lookup's answer, unless it redirects to
 * the L7 proxy and a later lookup finds a plain allow (union: the plain one wins).
 * Allowed or not never depends on that order, only attribution and the proxy port do.
 * `l7Applicable` gives the L7 proxy every applicable rule, not only the reported one.
 */
import {
  PROTO_ANY, PROTO_SCTP, PROTO_TCP, PROTO_UDP, type DatapathState, type Direction,
  type PolicyEntry,
} from '../datapath/types.ts';
import {
  IDENTITY_ANY, IDENTITY_CLUSTER_POD, IDENTITY_HOST, IDENTITY_WORLD, isLabelIdentity,
  reservedIdentityNames,
} from '../identity/reserved.ts';
import { LpmTable, formatPrefix, parseCidr, parseIpv4, type Prefix } from './ip.ts';
import type { HttpRule } from './snapshot.ts';
import type { CompileResult, L7Rules } from './types.ts';
import { entryKey } from '../datapath/diff.ts';

export interface VerdictQuery {
  endpointId: number;
  direction: Direction;
  /** The other side: the source for ingress, the destination for egress. */
  remoteIp: string;
  protocol: number;
  /** Destination port (TCP, UDP, SCTP); ignored for other protocols. */
  port: number;
}

export type VerdictReason = 'not-enforced' | 'allowed' | 'default-deny' | 'node';

export interface Verdict {
  allowed: boolean;
  reason: VerdictReason;
  /** Rule that allowed it; 0 when none decided (not enforced, node, default deny). */
  ruleId: number;
  /**
   * Identity the decision was made for: the CIDR identity when a cidrs entry allowed it,
   * else the remote address's ipcache identity (world on a miss).
   */
  peerIdentity: number;
  /** ipcache identity of the remote address (world on a miss). */
  remoteIdentity: number;
  /** L7 proxy port of the deciding entry (0 = no redirect). */
  proxyPort: number;
  /** The deciding entry, when one did. */
  entry?: PolicyEntry;
  /** The cidrs prefix consulted at step 6, when one matched. */
  cidr?: string;
}

export class EvaluateError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

interface Index {
  endpoints: Map<number, DatapathState['endpoints'][number]>;
  ipcache: LpmTable<number>;
  /** `endpoint/direction/peer` -> entries. */
  policy: Map<string, PolicyEntry[]>;
  /** `endpoint/direction` -> LPM of CIDR identities. */
  cidrs: Map<string, LpmTable<number>>;
}

const indexes = new WeakMap<DatapathState, Index>();

function prefixOf(cidr: string): Prefix {
  const p = parseCidr(cidr);
  if (!p) throw new EvaluateError('PAL_EVAL_STATE', `invalid cidr ${JSON.stringify(cidr)} in state`);
  return p.prefix;
}

/** Builds (once per state object) the lookup structures; the state must not be mutated after. */
function indexOf(state: DatapathState): Index {
  let ix = indexes.get(state);
  if (ix) return ix;
  ix = { endpoints: new Map(), ipcache: new LpmTable(), policy: new Map(), cidrs: new Map() };
  for (const e of state.endpoints) ix.endpoints.set(e.endpointId, e);
  for (const e of state.ipcache) ix.ipcache.set(prefixOf(e.cidr), e.identity);
  for (const e of state.policy) {
    const k = `${e.endpointId}/${e.direction}/${e.peer}`;
    const l = ix.policy.get(k);
    if (l) l.push(e); else ix.policy.set(k, [e]);
  }
  for (const e of state.cidrs) {
    const k = `${e.endpointId}/${e.direction}`;
    let t = ix.cidrs.get(k);
    if (!t) ix.cidrs.set(k, (t = new LpmTable()));
    t.set(prefixOf(e.cidr), e.identity);
  }
  indexes.set(state, ix);
  return ix;
}

const hasPorts = (proto: number) => proto === PROTO_TCP || proto === PROTO_UDP || proto === PROTO_SCTP;

/** True when a policy entry allows (protocol, port); see PolicyEntry for the semantics. */
export function entryMatches(e: PolicyEntry, protocol: number, port: number): boolean {
  if (e.protocol === PROTO_ANY) return true;
  if (e.protocol !== protocol || !hasPorts(protocol)) return false;
  return e.port === 0 || (port >= e.port && port <= e.endPort);
}

/**
 * Length (0..16) of the aligned port block containing `port` when [lo, hi] is split into
 * the fewest aligned blocks, the way the policy map stores a range (bpf/lib/maps.h).
 */
export function portPrefixLen(lo: number, hi: number, port: number): number {
  let start = lo;
  while (start <= hi) {
    let size = 1;
    while (size < 65536 && start % (size * 2) === 0 && start + size * 2 - 1 <= hi) size *= 2;
    if (port < start + size) return 16 - Math.log2(size);
    start += size;
  }
  return 0;
}

/**
 * Precedence among the matching entries of one lookup (one peer), higher first: the
 * longest match of the policy map's LPM key (exact port or the narrowest aligned block of
 * a range, then every port of the protocol, then every protocol), then the lowest rule
 * id. (The peer rank, first, only matters when entries of several peers are compared.)
 */
function score(e: PolicyEntry, port: number): [number, number, number] {
  const bits = e.protocol === PROTO_ANY ? -1 : e.port === 0 ? 0 : portPrefixLen(e.port, e.endPort, port);
  return [e.peer === IDENTITY_CLUSTER_POD ? 0 : e.peer === IDENTITY_ANY ? 1 : 2, bits, -e.ruleId];
}

function better(a: PolicyEntry, b: PolicyEntry | undefined, port: number): boolean {
  if (!b) return true;
  const sa = score(a, port);
  const sb = score(b, port);
  for (let i = 0; i < sa.length; i++) if (sa[i] !== sb[i]) return sa[i]! > sb[i]!;
  return false;
}

/** Decides the forward direction of one packet. Throws on an unknown endpoint or bad IP. */
export function evaluate(state: DatapathState, q: VerdictQuery): Verdict {
  const ix = indexOf(state);
  const ep = ix.endpoints.get(q.endpointId);
  if (!ep) throw new EvaluateError('PAL_EVAL_NO_ENDPOINT', `evaluating: no endpoint ${q.endpointId}`);
  const addr = parseIpv4(q.remoteIp);
  if (addr === undefined) throw new EvaluateError('PAL_EVAL_BAD_IP', `evaluating: invalid IPv4 ${JSON.stringify(q.remoteIp)}`);
  const port = hasPorts(q.protocol) ? q.port : 0;
  const remote = ix.ipcache.lookup(addr)?.value ?? IDENTITY_WORLD;
  const base = { ruleId: 0, peerIdentity: remote, remoteIdentity: remote, proxyPort: 0 };

  // 3. The node's own traffic to its pods (kubelet probes) always passes (NETPOL 22).
  if (remote === IDENTITY_HOST && q.direction === 'ingress') return { ...base, allowed: true, reason: 'node' };
  // 4. A direction without isolating policy allows everything.
  const enforced = q.direction === 'ingress' ? ep.ingressEnforced : ep.egressEnforced;
  if (!enforced) return { ...base, allowed: true, reason: 'not-enforced' };
  // 5-6. The datapath's lookups (bpf/lib/policy.h): a plain entry from any of them wins
  // over a redirecting one (union: a plain allow lets every request through).
  const m = matchAll(ix, q.endpointId, q.direction, remote, addr, q.protocol, port, false);
  if (m.first) {
    const e = m.first.entry;
    const cidr = m.first.cidr ? { cidr: m.first.cidr } : {};
    const peerIdentity = m.first.cidr ? e.peer : remote;
    return { ...base, allowed: true, reason: 'allowed', ruleId: e.ruleId, peerIdentity, proxyPort: e.proxyPort, entry: e, ...cidr };
  }
  // 7. Nothing allows it.
  return { ...base, allowed: false, reason: 'default-deny', ...(m.cidr ? { cidr: m.cidr } : {}) };
}

interface Match {
  entry: PolicyEntry;
  /** The cidrs prefix it was found through (CIDR identity entries only). */
  cidr?: string;
}

/**
 * The lookups of steps 5-6, in the datapath's order: the remote's identity, any peer, any
 * pod (for a pod), then the CIDR identity of the endpoint's longest matching prefix.
 * `first` is what the datapath picks: the first lookup's answer that does not redirect,
 * else the first answer. With `all`, `entries` holds every matching entry in that order
 * (best first within one lookup), i.e. every rule that applies to the peer and port.
 */
function matchAll(
  ix: Index, ep: number, dir: Direction, remote: number, addr: number, protocol: number, port: number,
  all: boolean,
): { first?: Match; entries: Match[]; cidr?: string } {
  const entries: Match[] = [];
  let first: Match | undefined;
  const c = ix.cidrs.get(`${ep}/${dir}`)?.lookup(addr);
  const cidr = c ? formatPrefix(c.prefix) : undefined;
  const stages: [number, string | undefined][] = [[remote, undefined], [IDENTITY_ANY, undefined]];
  if (isLabelIdentity(remote)) stages.push([IDENTITY_CLUSTER_POD, undefined]);
  if (c) stages.push([c.value, cidr]);
  for (const [peer, via] of stages) {
    const found = (ix.policy.get(`${ep}/${dir}/${peer}`) ?? []).filter((e) => entryMatches(e, protocol, port));
    if (!found.length) continue;
    let best = found[0]!;
    for (const e of found) if (better(e, best, port)) best = e;
    const hit: Match = via ? { entry: best, cidr: via } : { entry: best };
    if (!first || (first.entry.proxyPort !== 0 && best.proxyPort === 0)) first = hit;
    if (all) {
      entries.push(hit);
      for (const e of found) if (e !== best) entries.push(via ? { entry: e, cidr: via } : { entry: e });
    } else if (best.proxyPort === 0) {
      break;
    }
  }
  return { first, entries, cidr };
}

/** What L7 policy says about requests on one connection side (see `l7Applicable`). */
export type L7Applicable =
  /** No rule allows the peer and port at all (L3/L4 deny). */
  | { kind: 'denied'; verdict: Verdict }
  /** Every request: not enforced, the node, or a rule without `http` applies. */
  | { kind: 'all'; verdict: Verdict; ruleId: number }
  /**
   * Only requests matching one of `http` (the union over every applicable rule, in the
   * datapath's lookup order); `httpRuleIds[i]` is the rule of `http[i]`, `ruleIds` every
   * rule that applies.
   */
  | { kind: 'http'; verdict: Verdict; http: HttpRule[]; httpRuleIds: number[]; ruleIds: number[] };

/**
 * The L7 semantics of one side of a connection (docs/l7.md): the applicable rules are
 * every entry any of the datapath's lookups matches for the peer and port (its
 * identity, any peer, any pod, and the ipBlock prefixes covering its address), not only
 * the one the datapath picked. A rule without `http` among them allows every request;
 * otherwise a request is allowed iff one of their `http` rules matches it.
 */
export function l7Applicable(result: CompileResult, q: VerdictQuery): L7Applicable {
  const verdict = evaluate(result.state, q);
  if (!verdict.allowed) return { kind: 'denied', verdict };
  if (verdict.proxyPort === 0) return { kind: 'all', verdict, ruleId: verdict.ruleId };
  const ix = indexOf(result.state);
  const port = hasPorts(q.protocol) ? q.port : 0;
  const m = matchAll(ix, q.endpointId, q.direction, verdict.remoteIdentity, parseIpv4(q.remoteIp)!, q.protocol, port, true);
  const http: HttpRule[] = [];
  const httpRuleIds: number[] = [];
  const ruleIds = new Set<number>();
  for (const { entry } of m.entries) {
    const rules = l7RulesOf(result, entry);
    // A redirecting entry always has its record; one missing fails closed (no rules).
    if (!rules) continue;
    http.push(...rules.http);
    httpRuleIds.push(...(rules.httpRuleIds ?? rules.http.map(() => rules.ruleIds[0]!)));
    for (const id of rules.ruleIds) ruleIds.add(id);
  }
  return { kind: 'http', verdict, http, httpRuleIds, ruleIds: [...ruleIds] };
}

const l7Indexes = new WeakMap<readonly L7Rules[], Map<string, L7Rules>>();

/**
 * The HTTP rules behind a redirected verdict (the record of the entry that decided), for
 * the L7 proxy; undefined when the verdict does not redirect.
 */
export function l7RulesFor(result: CompileResult, v: Verdict): L7Rules | undefined {
  if (!v.entry || v.proxyPort === 0) return undefined;
  return l7RulesOf(result, v.entry);
}

/** The L7 record of a redirecting entry (undefined for a plain one). */
function l7RulesOf(result: CompileResult, e: PolicyEntry): L7Rules | undefined {
  if (e.proxyPort === 0 || !result.l7) return undefined;
  let ix = l7Indexes.get(result.l7);
  if (!ix) {
    ix = new Map(result.l7.map((r) => [entryKey.policy(r as unknown as PolicyEntry), r]));
    l7Indexes.set(result.l7, ix);
  }
  return ix.get(entryKey.policy(e));
}

/** Human-readable name of an identity, from a compile result. */
export function describeIdentity(result: CompileResult, id: number): string {
  const reserved = reservedIdentityNames[id];
  if (reserved !== undefined) return `${id} (${reserved})`;
  const labels = result.identities.get(id);
  if (!labels) return `${id} (unknown)`;
  const text = Object.entries(labels).map(([k, v]) => (v === 'ipblock' ? k : `${k}=${v}`)).join(', ');
  return `${id} (${text})`;
}

/** One line saying what decided a verdict and which policy, for `kubectl palisade trace`. */
export function explain(result: CompileResult, q: VerdictQuery, v: Verdict): string {
  const who = describeIdentity(result, v.peerIdentity);
  switch (v.reason) {
    case 'node':
      return `allowed: traffic from this node (${who}) to its pods always passes`;
    case 'not-enforced':
      return `allowed: no policy isolates endpoint ${q.endpointId} for ${q.direction}`;
    case 'default-deny': {
      const s = result.endpoints.get(q.endpointId);
      const pols = (q.direction === 'ingress' ? s?.ingressPolicies : s?.egressPolicies) ?? [];
      return `denied: no rule allows peer ${who}; isolated for ${q.direction} by ${pols.join(', ') || '(none)'}`;
    }
    case 'allowed': {
      const o = result.rules.get(v.ruleId);
      const rule = o ? `${o.policy} ${o.direction}[${o.ruleIndex}]` : `rule ${v.ruleId}`;
      const via = v.cidr ? ` via ${v.cidr}` : '';
      const l7 = v.proxyPort ? `, redirected to the L7 proxy on port ${v.proxyPort}` : '';
      return `allowed by ${rule}: peer ${who}${via}${l7}`;
    }
  }
}
