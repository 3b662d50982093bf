/**
 * Seeded random input for the policy property tests (oracle, l7-oracle, incremental):
 * a small deterministic PRNG and the generators they share, each shaped by the options
 * its test needs. A generator draws its numbers in a fixed order, so a seed always names
 * the same cluster.
 */
import type { LabelSelector, NetworkPolicyPeer } from '../../../pkg/policy/snapshot.ts';
import { inCidr } from './oracle-read.ts';
import type { TestCluster } from './cluster.ts';

/** The PRNG's draws: an int below n, an element, a coin with probability p. */
export interface Rng {
  int(n: number): number;
  pick<T>(xs: readonly T[]): T;
  chance(p: number): boolean;
}

/** mulberry32: small deterministic PRNG. */
export function rng(seed: number): Rng {
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

/** Labels: each key of `chances`, in order, is set with its probability to one of `values`. */
export function randomLabels(r: Rng, chances: readonly (readonly [string, number])[], values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, p] of chances) if (r.chance(p)) out[k] = r.pick(values);
  return out;
}

export interface PeerOptions {
  /** Probability of no peer list at all (every peer). */
  none: number;
  /** Probability that a namespaceSelector-only peer is `{}` (every namespace). */
  anyNamespace: number;
  /** Probability that an ipBlock wider than /32 carries an `except` of one pod IP. */
  except: number;
  /** The pod selector of podSelector peers. */
  selector: (r: Rng) => LabelSelector;
  /** Values of the namespaces' `env` label. */
  envs: readonly string[];
}

/**
 * One or two peers: a podSelector, a namespaceSelector, both, or an ipBlock over the pod
 * network or a pod's /32 (its except, if any, another pod's /32 inside the block).
 */
export function randomPeers(r: Rng, c: TestCluster, o: PeerOptions): NetworkPolicyPeer[] | undefined {
  if (r.chance(o.none)) return undefined;
  const out: NetworkPolicyPeer[] = [];
  const n = 1 + r.int(2);
  for (let i = 0; i < n; i++) {
    const kind = r.int(4);
    if (kind === 0) out.push({ podSelector: o.selector(r) });
    else if (kind === 1) out.push({ namespaceSelector: r.chance(o.anyNamespace) ? {} : { matchLabels: { env: r.pick(o.envs) } } });
    else if (kind === 2) out.push({ namespaceSelector: { matchLabels: { env: r.pick(o.envs) } }, podSelector: o.selector(r) });
    else {
      const ips = [...c.pods.keys()].map((k) => c.ipOf(k));
      const ip = r.pick(ips);
      const cidr = r.pick(['10.244.0.0/16', '10.244.0.0/24', '10.244.1.0/24', '0.0.0.0/0', `${ip}/32`]);
      const except = cidr.endsWith('/32') || !r.chance(o.except) ? [] : [`${r.pick(ips)}/32`].filter((x) => inCidr(x.split('/')[0]!, cidr));
      out.push({ ipBlock: { cidr, ...(except.length && { except }) } });
    }
  }
  return out;
}
