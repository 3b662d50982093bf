/**
 * `ports` of a NetworkPolicy rule (NETPOL 15-20), validated into port specs. Any invalid
 * entry invalidates the whole list: dropping one entry could turn a list into "all ports"
 * (an empty list), so the caller makes the rule allow nothing instead (NETPOL 27).
 */
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP } from '../datapath/types.ts';
import type { HttpRule, NetworkPolicyPort } from './snapshot.ts';
import { validateHttpRules } from '../l7/match.ts';

export type PortSpec =
  /** `ports` absent or empty: every protocol, every port. */
  | { kind: 'all' }
  /** A numeric port or range; port 0 = every port of the protocol. */
  | { kind: 'number'; protocol: number; port: number; endPort: number; http?: HttpRule[] }
  /** A named container port, resolved against the destination pod. */
  | { kind: 'named'; protocol: number; protoName: string; name: string; http?: HttpRule[] };

export interface PortProblem {
  field: string;
  message: string;
}

export const protocolNumbers: Readonly<Record<string, number>> = {
  TCP: PROTO_TCP,
  UDP: PROTO_UDP,
  SCTP: PROTO_SCTP,
};

/** IANA service name, as Kubernetes validates a named port (RFC 6335). */
const SVC_NAME = /^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

export function isPortName(s: string): boolean {
  return SVC_NAME.test(s) && /[a-z]/.test(s) && !s.includes('--');
}

const isPortNumber = (n: unknown): n is number =>
  typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;

export interface PortParseOptions {
  /** `http` is part of the schema (PalisadeNetworkPolicy); otherwise it is ignored. */
  l7: boolean;
  /** Proxy port for L7 redirects; 0 = L7 unsupported (an `http` rule fails closed). */
  l7ProxyPort: number;
}

function checkHttp(rules: unknown, f: string, problems: PortProblem[]): HttpRule[] | undefined {
  if (!Array.isArray(rules)) {
    problems.push({ field: f, message: 'http is not a list' });
    return undefined;
  }
  rules.forEach((r, i) => {
    const rf = `${f}[${i}]`;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) {
      problems.push({ field: rf, message: 'http rule is not an object' });
      return;
    }
    for (const k of ['method', 'path', 'host'] as const) {
      const v = (r as Record<string, unknown>)[k];
      if (v !== undefined && typeof v !== 'string') {
        problems.push({ field: `${rf}.${k}`, message: `${k} is not a string` });
      }
    }
    const headers = (r as HttpRule).headers;
    if (headers !== undefined) {
      if (!Array.isArray(headers)) {
        problems.push({ field: `${rf}.headers`, message: 'headers is not a list' });
      } else {
        headers.forEach((h, j) => {
          if (typeof h !== 'object' || h === null || typeof h.name !== 'string' || h.name === ''
            || (h.value !== undefined && typeof h.value !== 'string')) {
            problems.push({ field: `${rf}.headers[${j}]`, message: 'header needs a name and a string value' });
          }
        });
      }
    }
  });
  // Regular expressions and the rest, as the proxy will compile them (pkg/l7/match.ts):
  // a rule the proxy could not apply fails closed here, named, instead of never matching.
  const seen = new Set(problems.map((p) => p.field));
  for (const p of validateHttpRules(rules as HttpRule[], f)) if (!seen.has(p.field)) problems.push(p);
  return rules as HttpRule[];
}

/**
 * Parses a rule's `ports` (field is its path, e.g. `spec.ingress[0].ports`). Returns the
 * specs, or every problem found.
 */
export function parsePorts(
  ports: readonly NetworkPolicyPort[] | undefined | null,
  field: string,
  opts: PortParseOptions,
): { specs: PortSpec[] } | { problems: PortProblem[] } {
  if (ports === undefined || ports === null) return { specs: [{ kind: 'all' }] };
  if (!Array.isArray(ports)) return { problems: [{ field, message: 'ports is not a list' }] };
  if (ports.length === 0) return { specs: [{ kind: 'all' }] };
  const problems: PortProblem[] = [];
  const specs: PortSpec[] = [];
  ports.forEach((p, i) => {
    const f = `${field}[${i}]`;
    if (typeof p !== 'object' || p === null) {
      problems.push({ field: f, message: 'port entry is not an object' });
      return;
    }
    const protoName = p.protocol ?? 'TCP';
    const protocol = typeof protoName === 'string' ? protocolNumbers[protoName] : undefined;
    if (protocol === undefined) {
      problems.push({ field: `${f}.protocol`, message: `unsupported protocol ${JSON.stringify(protoName)}` });
      return;
    }
    let http: HttpRule[] | undefined;
    if (opts.l7 && p.http !== undefined && p.http !== null) {
      const before = problems.length;
      http = checkHttp(p.http, `${f}.http`, problems);
      if (problems.length > before) return;
      if (http && http.length === 0) http = undefined;
      if (http && protocol !== PROTO_TCP) {
        problems.push({ field: `${f}.http`, message: `http rules need protocol TCP, not ${protoName}` });
        return;
      }
      if (http && opts.l7ProxyPort === 0) {
        problems.push({ field: `${f}.http`, message: 'l7 http rules are not supported on this node (no proxy)' });
        return;
      }
    }
    const hasEnd = p.endPort !== undefined && p.endPort !== null;
    if (p.port === undefined || p.port === null) {
      if (hasEnd) {
        problems.push({ field: `${f}.endPort`, message: 'endPort needs a numeric port' });
        return;
      }
      specs.push({ kind: 'number', protocol, port: 0, endPort: 0, ...(http && { http }) });
      return;
    }
    if (typeof p.port === 'string') {
      if (!isPortName(p.port)) {
        problems.push({ field: `${f}.port`, message: `invalid port name ${JSON.stringify(p.port)}` });
        return;
      }
      if (hasEnd) {
        problems.push({ field: `${f}.endPort`, message: 'endPort needs a numeric port, not a named one' });
        return;
      }
      specs.push({ kind: 'named', protocol, protoName, name: p.port, ...(http && { http }) });
      return;
    }
    if (!isPortNumber(p.port)) {
      problems.push({ field: `${f}.port`, message: `invalid port ${JSON.stringify(p.port)}` });
      return;
    }
    let endPort = p.port;
    if (hasEnd) {
      if (!isPortNumber(p.endPort) || p.endPort < p.port) {
        problems.push({
          field: `${f}.endPort`,
          message: `invalid endPort ${JSON.stringify(p.endPort)} (must be ${p.port}..65535)`,
        });
        return;
      }
      endPort = p.endPort;
    }
    specs.push({ kind: 'number', protocol, port: p.port, endPort, ...(http && { http }) });
  });
  return problems.length > 0 ? { problems } : { specs };
}
