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
export const IDENTITY_FIRST_LABEL = 256;
export const IDENTITY_FIRST_CIDR = 0x01000000;

export const reservedIdentityNames: Readonly<Record<number, string>> = {
  [IDENTITY_ANY]: 'any',
  [IDENTITY_HOST]: 'host',
  [IDENTITY_WORLD]: 'world',
  [IDENTITY_REMOTE_NODE]: 'remote-node',
};
