/**
 * Names and hardware addresses derived from the attachment (container id + ifname), so
 * that every step — ADD, DEL, GC, restart — finds the same objects without lookups.
 */
import { createHash } from 'node:crypto';

/** Prefix of every host-side veth Palisade creates. */
export const HOST_IF_PREFIX = 'pal';
/** The pod's gateway: link-local, answered by the host veth's MAC (a permanent neighbour). */
export const POD_GATEWAY = '169.254.1.1';

function digest(containerId: string, ifName: string): string {
  return createHash('sha256').update(`${containerId}/${ifName}`).digest('hex');
}

/** `pal` + 11 hex chars = 14 bytes (IFNAMSIZ allows 15). */
export function hostIfName(containerId: string, ifName: string): string {
  return HOST_IF_PREFIX + digest(containerId, ifName).slice(0, 11);
}

function mac(hex10: string): string {
  // 0x02 in the first octet: locally administered, unicast.
  return ['02', ...hex10.match(/../g)!].join(':');
}

/** Stable MACs for both veth ends (set at creation, so one batch can program neighbours). */
export function vethMacs(containerId: string, ifName: string): { host: string; pod: string } {
  const d = digest(containerId, ifName);
  return { host: mac(d.slice(12, 22)), pod: mac(d.slice(22, 32)) };
}
