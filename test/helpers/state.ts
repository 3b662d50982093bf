/**
 * Datapath state shared by the model's unit tests (test/unit/datapath) and the kernel
 * tests that run the same cases under BPF_PROG_TEST_RUN: one pod and one peer with
 * fixed addresses and identities, and builders of changes and policy entries.
 */
import { emptyState, type DatapathChange, type DatapathState, type PolicyEntry } from '../../pkg/datapath/types.ts';

/** The pod under test, its endpoint id and identity. */
export const POD = '10.244.0.10';
export const EP = 100;
export const ID_POD = 1000;
/** The peer the policies name, and its identity. */
export const PEER = '10.244.0.20';
export const ID_PEER = 2000;
/** The identity the tests give to an ipBlock's CIDR. */
export const ID_CIDR = 0x01000001;

/** A change that upserts `up` and deletes `del` (every other table empty). */
export function change(up: Partial<DatapathState>, del: Partial<DatapathState> = {}): DatapathChange {
  return { upsert: { ...emptyState(), ...up }, delete: { ...emptyState(), ...del } };
}

/** A factory of policy entries: `base` with the fields of each call's `over` on top. */
export function policyEntries(base: PolicyEntry): (over: Partial<PolicyEntry>) => PolicyEntry {
  return (over) => ({ ...base, ...over });
}

/** An ingress allow of PEER to the pod's TCP port 80 (rule 1), `over` on top. */
export const allowPeer = policyEntries({
  endpointId: EP, direction: 'ingress', peer: ID_PEER, protocol: 6, port: 80, endPort: 80,
  ruleId: 1, proxyPort: 0,
});
