/**
 * Services + EndpointSlices -> the ClusterIP frontends the datapath translates. Pure:
 * plain objects in, plain objects out.
 *
 * The same reading kube-proxy makes (docs/services.md):
 * - Frontends are (ClusterIP, port, protocol) of Services of type ClusterIP, NodePort and
 *   LoadBalancer; NodePorts, load balancer IPs and external IPs stay with kube-proxy.
 *   Headless (`clusterIP: None`), ExternalName and non-IPv4 ClusterIPs have none.
 * - Backends come from the Service's EndpointSlices (label kubernetes.io/service-name):
 *   per Service port, the slice port with the same name and protocol gives the backend
 *   port. The EndpointSlice controller resolved a named targetPort against each backend
 *   pod's container ports, and pods that resolve differently sit in different slices, so
 *   one Service port can have backends on different ports.
 * - Only ready endpoints (`conditions.ready` true or unset, as the API defines it).
 * - sessionAffinity ClientIP: timeoutSeconds, default 10800 (Kubernetes' default).
 * - A Service with a ClusterIP but no ready endpoint still gets its frontends (with no
 *   backends): the datapath then rejects, as kube-proxy does.
 */
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP, type BackendEntry, type ServiceEntry } from '../datapath/types.ts';
import type { EndpointSlice, Service } from './types.ts';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const DEFAULT_AFFINITY_TIMEOUT_SEC = 10800;

/** Something that made a frontend or backend be left out, for the agent's status. */
export interface ServiceProblem {
  service: string;
  message: string;
}

export interface DesiredServices {
  /** Sorted by frontend (ip, port, protocol); backends sorted by (ip, port). */
  entries: ServiceEntry[];
  problems: ServiceProblem[];
}

const protocols: Record<string, number> = { TCP: PROTO_TCP, UDP: PROTO_UDP, SCTP: PROTO_SCTP };

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

function ipNum(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

/** The ClusterIP frontends of `services`, with the ready backends of `slices`. */
export function desiredServices(
  services: Iterable<Service>, slices: Iterable<EndpointSlice>,
): DesiredServices {
  const problems: ServiceProblem[] = [];
  const byService = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!svc || (s.addressType !== undefined && s.addressType !== 'IPv4')) continue;
    const key = `${s.metadata.namespace}/${svc}`;
    if (!byService.has(key)) byService.set(key, []);
    byService.get(key)!.push(s);
  }

  const out = new Map<string, ServiceEntry>();
  const sorted = [...services].sort((a, b) =>
    `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  for (const svc of sorted) {
    const name = `${svc.metadata.namespace}/${svc.metadata.name}`;
    const spec = svc.spec;
    if (spec.type === 'ExternalName') continue;
    const ip = spec.clusterIP;
    if (!ip || ip === 'None' || !IPV4.test(ip)) continue;
    const affinity = spec.sessionAffinity === 'ClientIP'
      ? spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT_SEC : 0;
    const svcSlices = byService.get(name) ?? [];
    for (const p of spec.ports ?? []) {
      const protoName = p.protocol ?? 'TCP';
      const protocol = protocols[protoName];
      const label = `${name}:${p.name ?? p.port}`;
      if (protocol === undefined) {
        problems.push({ service: name, message: `port ${label}: protocol ${protoName} not supported` });
        continue;
      }
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
        problems.push({ service: name, message: `port ${label}: bad port ${p.port}` });
        continue;
      }
      const backends = new Map<string, BackendEntry>();
      for (const slice of svcSlices) {
        const sp = (slice.ports ?? []).find((x) => (x.name ?? '') === (p.name ?? '') && (x.protocol ?? 'TCP') === protoName);
        if (sp?.port === undefined) continue;
        for (const ep of slice.endpoints ?? []) {
          if (ep.conditions?.ready === false) continue;
          for (const addr of ep.addresses) {
            if (!IPV4.test(addr)) continue;
            backends.set(`${addr}:${sp.port}`, { ip: addr, port: sp.port });
          }
        }
      }
      const key = `${ip}:${p.port}/${protocol}`;
      if (out.has(key)) {
        problems.push({ service: name, message: `frontend ${key} already belongs to ${out.get(key)!.name}` });
        continue;
      }
      out.set(key, {
        name: label, ip, port: p.port, protocol, affinityTimeoutSec: affinity,
        backends: [...backends.values()].sort((a, b) => ipNum(a.ip) - ipNum(b.ip) || a.port - b.port),
      });
    }
  }
  const entries = [...out.values()].sort((a, b) =>
    ipNum(a.ip) - ipNum(b.ip) || a.port - b.port || a.protocol - b.protocol);
  return { entries, problems };
}

/** Whether two desired sets are the same (names ignored: they are not in the kernel). */
export function sameServices(a: readonly ServiceEntry[], b: readonly ServiceEntry[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i]!;
    return x.ip === y.ip && x.port === y.port && x.protocol === y.protocol
      && x.affinityTimeoutSec === y.affinityTimeoutSec && x.backends.length === y.backends.length
      && x.backends.every((bx, j) => bx.ip === y.backends[j]!.ip && bx.port === y.backends[j]!.port);
  });
}
