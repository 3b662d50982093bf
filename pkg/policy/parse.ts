/**
 * One NetworkPolicy (or PalisadeNetworkPolicy) validated into the compiler's form.
 * Parsing depends only on the object, its key and the L7 options, so the compiler caches
 * it per object across compiles.
 *
 * Failing closed (NETPOL 27): an invalid peer allows nothing (the rule's other peers
 * still do; a rule whose peers are all invalid allows nothing, never "any peer"); an
 * invalid `ports` list makes its rule allow nothing; an invalid `spec.podSelector` makes
 * the policy isolate every pod of its namespace with no allows (which pods it meant to
 * select is unknown); an unknown `policyTypes` value isolates both directions. Every case
 * is a PolicyProblem naming the policy and the field.
 */
import type { Direction } from '../datapath/types.ts';
import { isIpv6, parseCidr, formatPrefix, prefixContains, type Prefix } from './ip.ts';
import { parsePorts, type PortParseOptions, type PortSpec } from './ports.ts';
import { ruleIdOf } from './ruleid.ts';
import { compileSelector, isSelectorError, type CompiledSelector } from './selector.ts';
import type { NetworkPolicy, NetworkPolicyPeer } from './snapshot.ts';
import type { PolicyProblem } from './types.ts';

export type ParsedPeer =
  | {
    kind: 'select';
    /** Absent = every pod of the selected namespaces. */
    podSelector?: CompiledSelector;
    /** Absent = the policy's own namespace. */
    namespaceSelector?: CompiledSelector;
  }
  | {
    kind: 'ipblock';
    prefix: Prefix;
    excepts: Prefix[];
    /** Canonical text, e.g. "10.0.0.0/8 except 10.1.0.0/16". */
    member: string;
  };

export interface ParsedRule {
  index: number;
  ruleId: number;
  /** `from`/`to` absent or empty: any peer (pods, nodes, outside). */
  anyPeer: boolean;
  peers: ParsedPeer[];
  /** Undefined = the ports list was invalid: the rule allows nothing. */
  ports: PortSpec[] | undefined;
}

export interface ParsedPolicy {
  key: string;
  namespace: string;
  /** Undefined = invalid selector: isolates every pod of the namespace, allows nothing. */
  podSelector: CompiledSelector | undefined;
  isolates: Record<Direction, boolean>;
  rules: Record<Direction, ParsedRule[]>;
  problems: PolicyProblem[];
}

const directions: readonly Direction[] = ['ingress', 'egress'];

/** Canonical text of an ipBlock peer (also the member text of CIDR identities). */
export function ipBlockMember(prefix: Prefix, excepts: readonly Prefix[]): string {
  const xs = [...new Set(excepts.map(formatPrefix))].sort();
  return xs.length ? `${formatPrefix(prefix)} except ${xs.join(',')}` : formatPrefix(prefix);
}

function parsePeer(
  peer: NetworkPolicyPeer, field: string, problem: (f: string, m: string) => void,
): ParsedPeer | undefined {
  if (typeof peer !== 'object' || peer === null) {
    problem(field, 'peer is not an object');
    return undefined;
  }
  const hasSel = peer.podSelector != null || peer.namespaceSelector != null;
  if (peer.ipBlock != null) {
    if (hasSel) {
      problem(field, 'ipBlock cannot be combined with podSelector or namespaceSelector');
      return undefined;
    }
    const b = peer.ipBlock;
    if (typeof b.cidr !== 'string') {
      problem(`${field}.ipBlock.cidr`, 'cidr is missing');
      return undefined;
    }
    // IPv6 blocks are valid Kubernetes but can never match the IPv4-only datapath's
    // traffic; dual-stack policies list both families, so this is not a problem.
    if (isIpv6(b.cidr)) return undefined;
    const c = parseCidr(b.cidr);
    if (!c) {
      problem(`${field}.ipBlock.cidr`, `invalid cidr ${JSON.stringify(b.cidr)}`);
      return undefined;
    }
    const excepts: Prefix[] = [];
    const exceptList = b.except ?? [];
    if (!Array.isArray(exceptList)) {
      problem(`${field}.ipBlock.except`, 'except is not a list');
      return undefined;
    }
    for (const [i, x] of exceptList.entries()) {
      const xc = typeof x === 'string' ? parseCidr(x) : undefined;
      if (!xc) {
        problem(`${field}.ipBlock.except[${i}]`, `invalid cidr ${JSON.stringify(x)}`);
        return undefined;
      }
      if (!(xc.prefix.len > c.prefix.len && prefixContains(c.prefix, xc.prefix))) {
        problem(`${field}.ipBlock.except[${i}]`,
          `${formatPrefix(xc.prefix)} is not strictly inside ${formatPrefix(c.prefix)}`);
        return undefined;
      }
      excepts.push(xc.prefix);
    }
    return { kind: 'ipblock', prefix: c.prefix, excepts, member: ipBlockMember(c.prefix, excepts) };
  }
  if (!hasSel) {
    problem(field, 'peer has none of podSelector, namespaceSelector, ipBlock');
    return undefined;
  }
  const out: ParsedPeer = { kind: 'select' };
  for (const which of ['podSelector', 'namespaceSelector'] as const) {
    if (peer[which] == null) continue;
    const s = compileSelector(peer[which]);
    if (isSelectorError(s)) {
      for (const e of s.errors) problem(`${field}.${which}${e.field ? '.' + e.field : ''}`, e.message);
      return undefined;
    }
    out[which] = s;
  }
  return out;
}

export function parsePolicy(
  key: string, np: NetworkPolicy, opts: PortParseOptions,
): ParsedPolicy {
  const problems: PolicyProblem[] = [];
  const problem = (field: string, message: string) => problems.push({ policy: key, field, message });
  const namespace = np.metadata?.namespace ?? key.slice(key.indexOf(':') + 1).split('/')[0] ?? '';
  const spec = (np.spec ?? {}) as Partial<NetworkPolicy['spec']>;
  const l7 = np.kind === 'PalisadeNetworkPolicy' && opts.l7;
  const portOpts: PortParseOptions = { l7, l7ProxyPort: opts.l7ProxyPort };

  let podSelector: CompiledSelector | undefined;
  const ps = compileSelector(spec.podSelector);
  if (isSelectorError(ps)) {
    for (const e of ps.errors) problem(`spec.podSelector${e.field ? '.' + e.field : ''}`, e.message);
  } else {
    podSelector = ps;
  }

  const rules: Record<Direction, ParsedRule[]> = { ingress: [], egress: [] };
  const listValid: Record<Direction, boolean> = { ingress: true, egress: true };
  for (const dir of directions) {
    const list = spec[dir];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      problem(`spec.${dir}`, `${dir} is not a list`);
      listValid[dir] = false;
      continue;
    }
    list.forEach((rule, index) => {
      const f = `spec.${dir}[${index}]`;
      const ruleId = ruleIdOf(key, dir, index);
      const peerField = dir === 'ingress' ? 'from' : 'to';
      const parsed: ParsedRule = { index, ruleId, anyPeer: false, peers: [], ports: undefined };
      if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) {
        problem(f, 'rule is not an object');
        rules[dir].push(parsed);
        return;
      }
      const r = rule as Record<string, unknown>;
      const peers = r[peerField] as NetworkPolicyPeer[] | undefined | null;
      if (peers === undefined || peers === null || (Array.isArray(peers) && peers.length === 0)) {
        parsed.anyPeer = true;
      } else if (!Array.isArray(peers)) {
        problem(`${f}.${peerField}`, `${peerField} is not a list`);
      } else {
        peers.forEach((p, i) => {
          const pp = parsePeer(p, `${f}.${peerField}[${i}]`, problem);
          if (pp) parsed.peers.push(pp);
        });
      }
      const ports = parsePorts(r.ports as never, `${f}.ports`, portOpts);
      if ('problems' in ports) {
        for (const p of ports.problems) problem(p.field, p.message);
      } else {
        parsed.ports = ports.specs;
      }
      rules[dir].push(parsed);
    });
  }

  // NETPOL 3: the API server fills policyTypes; an object that arrives without it gets
  // the same default: Ingress, plus Egress when egress has a rule.
  const isolates: Record<Direction, boolean> = { ingress: false, egress: false };
  const types = spec.policyTypes;
  if (types === undefined || types === null || (Array.isArray(types) && types.length === 0)) {
    isolates.ingress = true;
    const eg = spec.egress;
    isolates.egress = !listValid.egress || (Array.isArray(eg) && eg.length > 0);
  } else if (!Array.isArray(types)) {
    problem('spec.policyTypes', 'policyTypes is not a list');
    isolates.ingress = isolates.egress = true;
  } else {
    types.forEach((t, i) => {
      if (t === 'Ingress') isolates.ingress = true;
      else if (t === 'Egress') isolates.egress = true;
      else {
        problem(`spec.policyTypes[${i}]`, `unknown policy type ${JSON.stringify(t)}`);
        isolates.ingress = isolates.egress = true;
      }
    });
  }
  // Rules of a direction the policy does not list are ignored (NETPOL 3).
  for (const dir of directions) if (!isolates[dir]) rules[dir] = [];
  if (!podSelector) rules.ingress = rules.egress = [];

  return { key, namespace, podSelector, isolates, rules, problems };
}
