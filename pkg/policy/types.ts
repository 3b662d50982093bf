/**
 * The compiler's output. `pkg/policy` is pure: `PolicyCompiler.compile(snapshot)` reads
 * only its argument and the compiler's own identity allocators (plain in-memory state,
 * stable across compiles so that unchanged entries stay unchanged), and does no I/O.
 */
import type { DatapathState, Direction } from '../datapath/types.ts';

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
}
