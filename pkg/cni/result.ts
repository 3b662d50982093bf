/**
 * The ADD result, in the shape of the requested cniVersion:
 * - 0.3.x / 0.4.0: each IP carries `"version": "4"`;
 * - 1.0.0: no `version` on IPs;
 * - 1.1.0: interfaces also carry `mtu`.
 * Pure; imports nothing.
 */
import { compareVersions } from './version.ts';

/** What ADD set up, the input of `buildResult`. */
export interface AttachmentInfo {
  hostIfName: string;
  hostMac: string;
  podIfName: string;
  podMac: string;
  netns: string;
  mtu: number;
  /** Pod address, dotted quad (configured as /32). */
  ipv4: string;
  gateway: string;
}

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface CniIp {
  version?: '4' | '6';
  address: string;
  gateway?: string;
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: CniRoute[];
  dns: Record<string, unknown>;
}

/** The pod interface is always index 1 (index 0 is the host-side veth). */
export const POD_INTERFACE_INDEX = 1;

export function buildResult(cniVersion: string, a: AttachmentInfo): CniResult {
  const withMtu = compareVersions(cniVersion, '1.1.0') >= 0;
  const legacy = compareVersions(cniVersion, '1.0.0') < 0;
  const host: CniInterface = { name: a.hostIfName, mac: a.hostMac };
  const pod: CniInterface = { name: a.podIfName, mac: a.podMac, sandbox: a.netns };
  if (withMtu) {
    host.mtu = a.mtu;
    pod.mtu = a.mtu;
  }
  const ip: CniIp = { address: `${a.ipv4}/32`, gateway: a.gateway, interface: POD_INTERFACE_INDEX };
  if (legacy) ip.version = '4';
  return {
    cniVersion,
    interfaces: [host, pod],
    ips: [legacy ? { version: ip.version, address: ip.address, gateway: ip.gateway, interface: ip.interface } : ip],
    routes: [{ dst: '0.0.0.0/0', gw: a.gateway }],
    dns: {},
  };
}

/** The pod addresses (dotted quads) a prevResult lists, for CHECK. */
export function prevResultAddresses(prev: Record<string, unknown> | undefined): string[] {
  const ips = prev?.ips;
  if (!Array.isArray(ips)) return [];
  return ips
    .map((ip) => (ip && typeof ip === 'object' ? (ip as { address?: unknown }).address : undefined))
    .filter((a): a is string => typeof a === 'string')
    .map((a) => a.split('/')[0] ?? a);
}
