/**
 * Differential test: random small clusters and policies, compiled and evaluated through
 * the datapath model, against a direct reading of the NetworkPolicy rules written
 * independently here and in oracle-read.ts (no compiler code reused but the IPv4
 * parser). Seeded, so a failure names a reproducible case.
 */
import { describe, expect, test } from 'vitest';
import type {
  ContainerPort, LabelSelector, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, Pod,
} from '../../../pkg/policy/snapshot.ts';
import { TestCluster } from './cluster.ts';
import { randomLabels, randomPeers, rng, type Rng as R } from './gen-random.ts';
import { matches, peerMatches, type Side } from './oracle-read.ts';

const NAMESPACES = ['n1', 'n2', 'n3'];
const KEYS = ['app', 'tier'];
const VALUES = ['a', 'b'];
const PROTOS = ['TCP', 'UDP', 'SCTP'];
const OUTSIDE = '172.16.5.5';

function labels(r: R): Record<string, string> {
  return randomLabels(r, KEYS.map((k) => [k, 0.6] as const), VALUES);
}

function selector(r: R): LabelSelector {
  const s: LabelSelector = {};
  if (r.chance(0.5)) s.matchLabels = { [r.pick(KEYS)]: r.pick(VALUES) };
  if (r.chance(0.4)) {
    const op = r.pick(['In', 'NotIn', 'Exists', 'DoesNotExist']);
    s.matchExpressions = [{ key: r.pick(KEYS), operator: op, ...(op === 'In' || op === 'NotIn' ? { values: [r.pick(VALUES)] } : {}) }];
  }
  return s;
}

function containerPorts(r: R): ContainerPort[] {
  const out: ContainerPort[] = [];
  for (const name of ['web', 'dns']) {
    if (r.chance(0.6)) out.push({ name, containerPort: r.pick([80, 81, 53]), protocol: name === 'dns' ? r.pick(['UDP', 'TCP']) : 'TCP' });
  }
  return out;
}

function ports(r: R): NetworkPolicyPort[] | undefined {
  if (r.chance(0.3)) return undefined;
  const out: NetworkPolicyPort[] = [];
  const n = 1 + r.int(2);
  for (let i = 0; i < n; i++) {
    const kind = r.int(5);
    const protocol = r.chance(0.3) ? undefined : r.pick(PROTOS);
    if (kind === 0) out.push({ ...(protocol && { protocol }) });
    else if (kind === 1) out.push({ ...(protocol && { protocol }), port: r.pick([80, 81, 53]) });
    else if (kind === 2) out.push({ ...(protocol && { protocol }), port: 80, endPort: r.pick([80, 81, 90]) });
    else out.push({ ...(protocol && { protocol }), port: r.pick(['web', 'dns']) });
  }
  return out;
}

function peers(r: R, c: TestCluster): NetworkPolicyPeer[] | undefined {
  return randomPeers(r, c, { none: 0.2, anyNamespace: 0.3, except: 0.5, selector, envs: VALUES });
}

// ---- the oracle: NetworkPolicy read directly --------------------------------------

function portMatches(ps: NetworkPolicyPort[] | undefined, dst: Side, proto: string, port: number): boolean {
  if (!ps || ps.length === 0) return true;
  return ps.some((p) => {
    if ((p.protocol ?? 'TCP') !== proto) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'string') {
      const cp = dst.pod?.spec.containers.flatMap((x) => x.ports ?? []).find((x) => x.name === p.port && (x.protocol ?? 'TCP') === proto);
      return cp !== undefined && cp.containerPort === port;
    }
    return port >= p.port && port <= (p.endPort ?? p.port);
  });
}

function oracleSide(c: TestCluster, subject: Pod, dir: 'ingress' | 'egress', other: Side, dst: Side, proto: string, port: number): boolean {
  const types = (np: NetworkPolicy) => np.spec.policyTypes ?? ['Ingress', ...((np.spec.egress?.length ?? 0) > 0 ? ['Egress'] : [])];
  const selecting = [...c.policies.values()].filter((np) => np.metadata.namespace === subject.metadata.namespace
    && matches(np.spec.podSelector, subject.metadata.labels ?? {}) && types(np).includes(dir === 'ingress' ? 'Ingress' : 'Egress'));
  if (selecting.length === 0) return true;
  return selecting.some((np) => (np.spec[dir] ?? []).some((rule) => {
    const ps = (rule as { from?: NetworkPolicyPeer[]; to?: NetworkPolicyPeer[] })[dir === 'ingress' ? 'from' : 'to'];
    const peerOk = !ps || ps.length === 0 || ps.some((p) => peerMatches(c, np, p, other));
    return peerOk && portMatches(rule.ports, dst, proto, port);
  }));
}

function oracle(c: TestCluster, from: Side, to: Side, proto: string, port: number): boolean {
  const eg = from.pod ? oracleSide(c, from.pod, 'egress', to, to, proto, port) : true;
  const ing = to.pod ? oracleSide(c, to.pod, 'ingress', from, to, proto, port) : true;
  return eg && ing;
}

// ---- the test ---------------------------------------------------------------------

function randomCluster(seed: number): TestCluster {
  const r = rng(seed);
  const c = new TestCluster(2);
  for (const n of NAMESPACES) c.ns(n, { env: r.pick(VALUES) });
  for (let i = 0; i < 7; i++) c.pod(r.pick(NAMESPACES), `p${i}`, { labels: labels(r), ports: containerPorts(r) });
  const nPolicies = 1 + r.int(4);
  for (let i = 0; i < nPolicies; i++) {
    const ns = r.pick(NAMESPACES);
    const dirs = r.int(3);
    const spec: NetworkPolicy['spec'] = { podSelector: r.chance(0.3) ? {} : selector(r) };
    if (dirs !== 1) spec.ingress = Array.from({ length: r.int(3) }, () => ({ ...(r.chance(0.8) && { from: peers(r, c) }), ...(r.chance(0.8) && { ports: ports(r) }) }));
    if (dirs !== 0) spec.egress = Array.from({ length: r.int(3) }, () => ({ ...(r.chance(0.8) && { to: peers(r, c) }), ...(r.chance(0.8) && { ports: ports(r) }) }));
    if (r.chance(0.6)) spec.policyTypes = dirs === 0 ? ['Ingress'] : dirs === 1 ? ['Egress'] : ['Ingress', 'Egress'];
    c.policy(ns, `np${i}`, spec);
  }
  return c;
}

describe('differential: compiler + evaluate vs a direct reading of the rules', () => {
  const seeds = Array.from({ length: 1000 }, (_, i) => i + 1);
  test.each(seeds)('seed %i', (seed) => {
    const c = randomCluster(seed);
    expect(c.problems()).toEqual([]);
    const keys = c.podKeys();
    const wrong: string[] = [];
    const cases: [string, number][] = [['TCP', 80], ['TCP', 81], ['UDP', 53], ['SCTP', 80], ['TCP', 90], ['UDP', 80]];
    for (const from of keys) {
      const fromSide: Side = { pod: c.pods.get(from)!, ip: c.ipOf(from) };
      for (const to of [...keys, OUTSIDE]) {
        if (from === to) continue;
        const toSide: Side = to === OUTSIDE ? { ip: OUTSIDE } : { pod: c.pods.get(to)!, ip: c.ipOf(to) };
        for (const [proto, port] of cases) {
          const got = to === OUTSIDE ? c.canReachIp(from, OUTSIDE, port, proto) : c.can(from, to, port, proto);
          const want = oracle(c, fromSide, toSide, proto, port);
          if (got !== want) wrong.push(`${from} > ${to} ${port}/${proto}: want ${want}, got ${got}`);
        }
        if (to !== OUTSIDE) continue;
        for (const [proto, port] of cases) {
          const got = c.canBeReachedFrom(OUTSIDE, from, port, proto);
          const want = oracle(c, { ip: OUTSIDE }, fromSide, proto, port);
          if (got !== want) wrong.push(`${OUTSIDE} > ${from} ${port}/${proto}: want ${want}, got ${got}`);
        }
      }
    }
    expect(wrong, JSON.stringify([...c.policies.values()].map((p) => [p.metadata.namespace, p.spec]))).toEqual([]);
  });
});
