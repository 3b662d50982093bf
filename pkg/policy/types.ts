/**
 * The compiler's output. `pkg/policy` is pure: `PolicyCompiler.compile(snapshot)` reads
 * only its argument and the compiler's own identity allocators (plain in-memory state,
 * stable across compiles so that unchanged entries stay unchanged), and does no I/O.
 */
import type { DatapathState, Direction } from '../datapath/types.ts';
import type { HttpRule } from './snapshot.ts';

/** Where a policy entry came from; `ruleId` is a stable 32-bit hash of this origin. */
export interface RuleOrigin {
  ruleId: number;
  /** `kind:namespace/name`, the snapshot's policy key. */
  policy: string;
  direction: Direction;
  /** Index of the rule in spec.ingress / spec.egress. */
  ruleIndex: number;
}

export interface EndpointPolicySummary {
  endpointId: number;
  /** `namespace/name` of the pod. */
  pod: string;
  identity: number;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  /** Policy keys that select this endpoint, per direction. */
  ingressPolicies: string[];
  egressPolicies: string[];
}

/** Something in a policy that Palisade cannot parse or does not support (fails closed). */
export interface PolicyProblem {
  policy: string;
  /** JSON-path-like field, e.g. `spec.ingress[0].ports[1].port`. */
  field: string;
  message: string;
}

export interface CompileResult {
  revision: number;
  state: DatapathState;
  rules: ReadonlyMap<number, RuleOrigin>;
  endpoints: ReadonlyMap<number, EndpointPolicySummary>;
  /** Identity of every label set in use, for inspection: identity -> labels. */
  identities: ReadonlyMap<number, Readonly<Record<string, string>>>;
  problems: PolicyProblem[];
  /**
   * L7 HTTP rules (PalisadeNetworkPolicy), one record per policy entry that redirects to
   * the proxy (`proxyPort` != 0), keyed like that entry. Absent when there are none.
   * A request is allowed iff one of the `http` rules of every record whose entry applies
   * to its peer and port matches it, unless a plain entry applies too (then every
   * request is): `l7Applicable` in evaluate.ts computes that union (docs/l7.md).
   */
  l7?: L7Rules[];
}

/** The HTTP rules behind one redirecting policy entry. */
export interface L7Rules {
  endpointId: number;
  direction: Direction;
  peer: number;
  protocol: number;
  port: number;
  endPort: number;
  proxyPort: number;
  /** Rules that contributed (sorted). */
  ruleIds: number[];
  /** Union of the `http` rules of those rules: a request matching any one is allowed. */
  http: HttpRule[];
  /** The rule id each `http` entry came from, in the same order (per-request attribution). */
  httpRuleIds?: number[];
}
