/**
 * Differential test of the L7 union: random small clusters with NetworkPolicies and
 * PalisadeNetworkPolicies (http rules on TCP ports), compiled and judged through
 * `l7Applicable` and the datapath model, against a direct reading of the rules written
 * here (no compiler code reused but the IPv4 parser).
 *
 * For every (endpoint, direction, peer, TCP port): the applicable rules are those whose
 * peers match the peer (pod selectors, namespace selectors, `{}`, ipBlock over pod IPs,
 * any peer) and whose ports match the port. None: denied. One without `http` for that
 * port: every request, and no redirect. Otherwise: redirected, and the requests allowed
 * are those matching one of the union of their `http` rules. Seeded and reproducible.
 */
import { describe, expect, test } from 'vitest';
import { parseIpv4 } from '../../../pkg/policy/ip.ts';
import { l7Applicable } from '../../../pkg/policy/evaluate.ts';
import type {
  ContainerPort, LabelSelector, NetworkPolicy, NetworkPolicyPeer, Pod,
} from '../../../pkg/policy/snapshot.ts';
import { TestCluster } from './cluster.ts';

const PROXY = 15001;
const NAMESPACES = ['n1', 'n2', 'n3'];
const VALUES = ['a', 'b'];
const OUTSIDE = '172.16.5.5';
const PORTS = [80, 81, 90];

/** mulberry32: small deterministic PRNG. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const chance = (p: number) => next() < p;
  return { int, pick, chance };
}
type R = ReturnType<typeof rng>;

/** A port entry as written in a policy, `http` included. */
interface PortEntry {
  protocol?: string;
  port?: number | string;
  endPort?: number;
  http?: { path: string }[];
}
interface Rule { peers?: NetworkPolicyPeer[]; ports?: PortEntry[] }

function selector(r: R): LabelSelector {
  return r.chance(0.5) ? { matchLabels: { app: r.pick(VALUES) } } : { matchExpressions: [{ key: 'app', operator: 'NotIn', values: [r.pick(VALUES)] }] };
}

function inCidr(ip: string, cidr: string): boolean {
  const [net, len] = cidr.split('/') as [string, string];
  const l = Number(len);
  if (l === 0) return true;
  const mask = (0xffffffff << (32 - l)) >>> 0;
  return ((parseIpv4(ip)! & mask) >>> 0) === ((parseIpv4(net)! & mask) >>> 0);
}

function randomPeers(r: R, c: TestCluster): NetworkPolicyPeer[] | undefined {
  if (r.chance(0.25)) return undefined;
  const out: NetworkPolicyPeer[] = [];
  const n = 1 + r.int(2);
  for (let i = 0; i < n; i++) {
    const kind = r.int(4);
    if (kind === 0) out.push({ podSelector: selector(r) });
    else if (kind === 1) out.push({ namespaceSelector: r.chance(0.5) ? {} : { matchLabels: { env: r.pick(VALUES) } } });
    else if (kind === 2) out.push({ namespaceSelector: { matchLabels: { env: r.pick(VALUES) } }, podSelector: selector(r) });
    else {
      const ips = [...c.pods.keys()].map((k) => c.ipOf(k));
      const ip = r.pick(ips);
      const cidr = r.pick(['10.244.0.0/16', '10.244.0.0/24', '10.244.1.0/24', '0.0.0.0/0', `${ip}/32`]);
      const except = cidr.endsWith('/32') || !r.chance(0.4) ? [] : [`${r.pick(ips)}/32`].filter((x) => inCidr(x.split('/')[0]!, cidr));
      out.push({ ipBlock: { cidr, ...(except.length && { except }) } });
    }
  }
  return out;
}

function randomPorts(r: R, l7: boolean, paths: { n: number }): PortEntry[] | undefined {
  if (r.chance(0.15)) return undefined;
  const out: PortEntry[] = [];
  const n = 1 + r.int(2);
  for (let i = 0; i < n; i++) {
    const kind = r.int(5);
    const p: PortEntry = r.chance(0.15) ? { protocol: 'UDP' } : r.chance(0.5) ? { protocol: 'TCP' } : {};
    if (kind === 1 || kind === 2) p.port = r.pick([80, 81, 90]);
    if (kind === 2) p.endPort = r.pick([90, 100]);
    if (kind === 3) p.port = 'web';
    if (kind === 4) p.port = 80;
    const tcp = (p.protocol ?? 'TCP') === 'TCP';
    if (l7 && tcp && r.chance(0.7)) p.http = [{ path: `/p${paths.n++}` }];
    out.push(p);
  }
  return out;
}

function randomCluster(seed: number): TestCluster {
  const r = rng(seed);
  const c = new TestCluster(2, { l7ProxyPort: PROXY });
  for (const n of NAMESPACES) c.ns(n, { env: r.pick(VALUES) });
  for (let i = 0; i < 6; i++) {
    const ports: ContainerPort[] = r.chance(0.7) ? [{ name: 'web', containerPort: r.pick([80, 81]), protocol: 'TCP' }] : [];
    c.pod(r.pick(NAMESPACES), `p${i}`, { labels: r.chance(0.8) ? { app: r.pick(VALUES) } : {}, ports });
  }
  const paths = { n: 0 };
  const nPolicies = 1 + r.int(4);
  for (let i = 0; i < nPolicies; i++) {
    const l7 = r.chance(0.6);
    const dirs = r.int(3);
    const rules = (key: 'from' | 'to') => Array.from({ length: 1 + r.int(2) }, () => {
      const peers = randomPeers(r, c);
      const ports = randomPorts(r, l7, paths);
      return { ...(peers && { [key]: peers }), ...(ports && { ports }) };
    });
    const spec: NetworkPolicy['spec'] = { podSelector: r.chance(0.3) ? {} : selector(r) };
    if (dirs !== 1) spec.ingress = rules('from') as NetworkPolicy['spec']['ingress'];
    if (dirs !== 0) spec.egress = rules('to') as NetworkPolicy['spec']['egress'];
    spec.policyTypes = dirs === 0 ? ['Ingress'] : dirs === 1 ? ['Egress'] : ['Ingress', 'Egress'];
    c.policy(r.pick(NAMESPACES), `p${i}`, spec, l7 ? 'PalisadeNetworkPolicy' : 'NetworkPolicy');
  }
  return c;
}

// ---- the oracle ---------------------------------------------------------------------

function matches(sel: LabelSelector, l: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    if (e.operator === 'NotIn' && e.key in l && e.values!.includes(l[e.key]!)) return false;
  }
  return true;
}

interface Side { pod?: Pod; ip: string }

function peerMatches(c: TestCluster, np: NetworkPolicy, peer: NetworkPolicyPeer, other: Side): boolean {
  if (peer.ipBlock) {
    return inCidr(other.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((x) => inCidr(other.ip, x));
  }
  if (!other.pod) return false;
  const ns = other.pod.metadata.namespace!;
  if (peer.namespaceSelector) {
    if (!matches(peer.namespaceSelector, c.namespaces.get(ns)!.metadata.labels!)) return false;
  } else if (ns !== np.metadata.namespace) return false;
  return peer.podSelector ? matches(peer.podSelector, other.pod.metadata.labels ?? {}) : true;
}

function portMatches(p: PortEntry, dst: Side, port: number): boolean {
  if ((p.protocol ?? 'TCP') !== 'TCP') return false;
  if (p.port === undefined) return true;
  if (typeof p.port === 'string') {
    const cp = dst.pod?.spec.containers.flatMap((x) => x.ports ?? []).find((x) => x.name === p.port && (x.protocol ?? 'TCP') === 'TCP');
    return cp !== undefined && cp.containerPort === port;
  }
  return port >= p.port && port <= (p.endPort ?? p.port);
}

/** 'denied', 'all', or the sorted http paths allowed. */
function oracleSide(c: TestCluster, subject: Pod, dir: 'ingress' | 'egress', other: Side, dst: Side, port: number): string {
  const selecting = [...c.policies.values()].filter((np) => np.metadata.namespace === subject.metadata.namespace
    && matches(np.spec.podSelector, subject.metadata.labels ?? {})
    && np.spec.policyTypes!.includes(dir === 'ingress' ? 'Ingress' : 'Egress'));
  if (selecting.length === 0) return 'all';
  let applies = false;
  let plain = false;
  const paths: string[] = [];
  for (const np of selecting) {
    for (const rule of (np.spec[dir] ?? []) as Rule[]) {
      const ps = (rule as { from?: NetworkPolicyPeer[]; to?: NetworkPolicyPeer[] })[dir === 'ingress' ? 'from' : 'to'];
      if (ps && ps.length > 0 && !ps.some((p) => peerMatches(c, np, p, other))) continue;
      if (!rule.ports || rule.ports.length === 0) {
        applies = plain = true;
        continue;
      }
      for (const p of rule.ports) {
        if (!portMatches(p, dst, port)) continue;
        applies = true;
        if (p.http && np.kind === 'PalisadeNetworkPolicy') paths.push(...p.http.map((h) => h.path));
        else plain = true;
      }
    }
  }
  if (!applies) return 'denied';
  return plain ? 'all' : [...new Set(paths)].sort().join(' ');
}

// ---- the test -----------------------------------------------------------------------

describe('differential: L7 union vs a direct reading of the rules', () => {
  const seeds = Array.from({ length: 300 }, (_, i) => i + 1);
  test.each(seeds)('seed %i', (seed) => {
    const c = randomCluster(seed);
    expect(c.problems()).toEqual([]);
    const wrong: string[] = [];
    const keys = c.podKeys();
    const judge = (subjectKey: string, dir: 'ingress' | 'egress', other: Side, dst: Side, port: number, label: string) => {
      const want = oracleSide(c, c.pods.get(subjectKey)!, dir, other, dst, port);
      const r = c.result(c.nodeOf(subjectKey));
      const q = { endpointId: c.endpointOf(subjectKey), direction: dir, remoteIp: other.ip, protocol: 6, port };
      const a = l7Applicable(r, q);
      const got = a.kind === 'http' ? [...new Set(a.http.map((h) => h.path))].sort().join(' ') : a.kind;
      if (got !== want) wrong.push(`${label} ${dir} ${port}: want ${want || '(no paths)'}, got ${got || '(no paths)'}`);
      // The datapath redirects exactly when only http rules apply.
      const v = c.verdict(subjectKey, dir, other.ip, port);
      if (v.allowed && (v.proxyPort !== 0) !== (a.kind === 'http')) wrong.push(`${label} ${dir} ${port}: redirect ${v.proxyPort} for ${a.kind}`);
    };
    for (const from of keys) {
      const fromSide: Side = { pod: c.pods.get(from)!, ip: c.ipOf(from) };
      for (const to of [...keys, OUTSIDE]) {
        if (from === to) continue;
        const toSide: Side = to === OUTSIDE ? { ip: OUTSIDE } : { pod: c.pods.get(to)!, ip: c.ipOf(to) };
        for (const port of PORTS) {
          judge(from, 'egress', toSide, toSide, port, `${from} > ${to}`);
          if (to !== OUTSIDE) judge(to, 'ingress', fromSide, toSide, port, `${from} > ${to}`);
          else judge(from, 'ingress', { ip: OUTSIDE }, fromSide, port, `${OUTSIDE} > ${from}`);
        }
      }
    }
    expect(wrong, JSON.stringify([...c.policies.values()].map((p) => [p.kind, p.metadata.namespace, p.spec]))).toEqual([]);
  });
});
