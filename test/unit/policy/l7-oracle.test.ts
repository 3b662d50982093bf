/**
 * Differential test of the L7 union: random small clusters with NetworkPolicies and
 * PalisadeNetworkPolicies (http rules on TCP ports), compiled and judged through
 * `l7Applicable` and the datapath model, against a direct reading of the rules written
 * here and in oracle-read.ts (no compiler code reused but the IPv4 parser).
 *
 * For every (endpoint, direction, peer, TCP port): the applicable rules are those whose
 * peers match the peer (pod selectors, namespace selectors, `{}`, ipBlock over pod IPs,
 * any peer) and whose ports match the port. None: denied. One without `http` for that
 * port: every request, and no redirect. Otherwise: redirected, and the requests allowed
 * are those matching one of the union of their `http` rules. Seeded and reproducible.
 */
import { describe, expect, test } from 'vitest';
import { l7Applicable } from '../../../pkg/policy/evaluate.ts';
import type {
  ContainerPort, LabelSelector, NetworkPolicy, NetworkPolicyPeer, Pod,
} from '../../../pkg/policy/snapshot.ts';
import { TestCluster } from './cluster.ts';
import { randomPeers, rng, type PeerOptions, type Rng as R } from './gen-random.ts';
import { matches, peerMatches, type Side } from './oracle-read.ts';

const PROXY = 15001;
const NAMESPACES = ['n1', 'n2', 'n3'];
const VALUES = ['a', 'b'];
const OUTSIDE = '172.16.5.5';
const PORTS = [80, 81, 90];

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

const PEERS: PeerOptions = { none: 0.25, anyNamespace: 0.5, except: 0.4, selector, envs: VALUES };

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
      const peers = randomPeers(r, c, PEERS);
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
