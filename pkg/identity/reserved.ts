/**
 * Numeric identities. One space across C, TypeScript, metrics and CLI output.
 *
 * - 0 is never an identity: in policy entries it means "any peer".
 * - 1..255 are reserved (host, world, remote nodes, ...).
 * - 256..0x00ffffff are label identities allocated from (namespace, pod labels,
 *   namespace labels); equal label sets share one.
 * - 0x01000000 and above are CIDR identities: synthetic identities the compiler allocates
 *   for sets of ipBlock peers (see docs/datapath.md, "CIDR lookup").
 */
export const IDENTITY_ANY = 0;
export const IDENTITY_HOST = 1;
export const IDENTITY_WORLD = 2;
export const IDENTITY_REMOTE_NODE = 6;
/**
 * In a policy entry's peer only, never in the ipcache: any pod of the cluster, i.e. any
 * peer whose identity is a label identity (NETPOL 9: `namespaceSelector: {}` selects
 * every pod, not nodes or outside addresses). The datapath consults it after the peer's
 * own identity and IDENTITY_ANY, and only for label identities; one entry then stands
 * for what would otherwise be one entry per label identity (docs/policy.md).
 */
export const IDENTITY_CLUSTER_POD = 8;
export const IDENTITY_FIRST_LABEL = 256;
export const IDENTITY_FIRST_CIDR = 0x01000000;

export const reservedIdentityNames: Readonly<Record<number, string>> = {
  [IDENTITY_ANY]: 'any',
  [IDENTITY_HOST]: 'host',
  [IDENTITY_WORLD]: 'world',
  [IDENTITY_REMOTE_NODE]: 'remote-node',
  [IDENTITY_CLUSTER_POD]: 'cluster-pod',
};

/** True for label identities: pods (what IDENTITY_CLUSTER_POD entries match). */
export function isLabelIdentity(id: number): boolean {
  return id >= IDENTITY_FIRST_LABEL && id < IDENTITY_FIRST_CIDR;
}
