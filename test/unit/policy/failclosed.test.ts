/**
 * NETPOL 27: what Palisade cannot parse or does not support fails closed. The pods the
 * policy selects stay isolated, the broken rule (or peer) allows nothing, the rest of the
 * policy still works, and a problem names the policy and the field.
 */
import { describe, expect, test } from 'vitest';
import type { NetworkPolicySpec } from '../../../pkg/policy/snapshot.ts';
import { upstreamModel } from './cluster.ts';
import { expectProbes } from './probe.ts';

const pod = (name: string) => ({ matchLabels: { pod: name } });
const fromB = { from: [{ podSelector: pod('b') }] };

interface Case {
  name: string;
  spec: Partial<NetworkPolicySpec> | Record<string, unknown>;
  /** Expected problem fields (of NetworkPolicy:x/p). */
  fields: string[];
  probes: string[];
}

const cases: Case[] = [
  {
    name: 'unknown protocol: the rule allows nothing, other rules still allow',
    spec: { podSelector: pod('a'), ingress: [{ ports: [{ protocol: 'ICMP', port: 80 }] }, fromB] },
    fields: ['spec.ingress[0].ports[0].protocol'],
    probes: ['y/a > x/a 80/TCP X', 'y/a > x/a ICMP X', 'x/b > x/a 80/TCP .', 'x/c > x/a 80/TCP X'],
  },
  {
    name: 'lower-case protocol is not a protocol',
    spec: { podSelector: pod('a'), ingress: [{ ports: [{ protocol: 'tcp', port: 80 }] }] },
    fields: ['spec.ingress[0].ports[0].protocol'],
    probes: ['y/a > x/a 80/TCP X'],
  },
  {
    name: 'one bad port entry makes the whole ports list allow nothing (never "all ports")',
    spec: { podSelector: pod('a'), ingress: [{ ports: [{ port: 70000 }] }] },
    fields: ['spec.ingress[0].ports[0].port'],
    probes: ['y/a > x/a 80/TCP X', 'y/a > x/a 81/UDP X'],
  },
  {
    name: 'a bad entry next to a good one invalidates the rule',
    spec: { podSelector: pod('a'), ingress: [{ ports: [{ port: 80 }, { port: 0 }] }] },
    fields: ['spec.ingress[0].ports[1].port'],
    probes: ['y/a > x/a 80/TCP X'],
  },
  {
    name: 'an invalid port name',
    spec: { podSelector: pod('a'), ingress: [{ ports: [{ port: 'Not_A_Name' }] }] },
    fields: ['spec.ingress[0].ports[0].port'],
    probes: ['y/a > x/a 80/TCP X'],
  },
  {
    name: 'a numeric string is not a port number',
    spec: { podSelector: pod('a'), ingress: [{ ports: [{ port: '80' }] }] },
    fields: ['spec.ingress[0].ports[0].port'],
    probes: ['y/a > x/a 80/TCP X'],
  },
  {
    name: 'endPort without a port',
    spec: { podSelector: pod('a'), ingress: [{ ports: [{ endPort: 90 }] }] },
    fields: ['spec.ingress[0].ports[0].endPort'],
    probes: ['y/a > x/a 80/TCP X'],
  },
  {
    name: 'endPort with a named port',
    spec: { podSelector: pod('a'), ingress: [{ ports: [{ port: 'serve-80-tcp', endPort: 90 }] }] },
    fields: ['spec.ingress[0].ports[0].endPort'],
    probes: ['y/a > x/a 80/TCP X'],
  },
  {
    name: 'endPort below port',
    spec: { podSelector: pod('a'), ingress: [{ ports: [{ port: 81, endPort: 80 }] }] },
    fields: ['spec.ingress[0].ports[0].endPort'],
    probes: ['y/a > x/a 80/TCP X', 'y/a > x/a 81/TCP X'],
  },
  {
    name: 'invalid selector operator in a peer: that peer allows nothing, the other peer still does',
    spec: { podSelector: pod('a'), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'Equals', values: ['c'] }] } }, { podSelector: pod('b') }] }] },
    fields: ['spec.ingress[0].from[0].podSelector.matchExpressions[0].operator'],
    probes: ['x/c > x/a 80/TCP X', 'x/b > x/a 80/TCP .', 'y/a > x/a 80/TCP X'],
  },
  {
    name: 'In without values',
    spec: { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'x', operator: 'In', values: [] }] } }] }] },
    fields: ['spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values'],
    probes: ['y/a > x/a 80/TCP X', 'x/b > x/a 80/TCP X'],
  },
  {
    name: 'Exists with values',
    spec: { podSelector: pod('a'), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'Exists', values: ['b'] }] } }] }] },
    fields: ['spec.ingress[0].from[0].podSelector.matchExpressions[0].values'],
    probes: ['x/b > x/a 80/TCP X'],
  },
  {
    name: 'all peers invalid: the rule allows nothing, never "any peer"',
    spec: { podSelector: pod('a'), ingress: [{ from: [{ ipBlock: { cidr: 'not-a-cidr' } }] }] },
    fields: ['spec.ingress[0].from[0].ipBlock.cidr'],
    probes: ['y/a > x/a 80/TCP X', '8.8.8.8 > x/a 80/TCP X'],
  },
  {
    name: 'invalid CIDR: leading zeros',
    spec: { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '010.0.0.0/8' } }] }] },
    fields: ['spec.egress[0].to[0].ipBlock.cidr'],
    probes: ['x/a > 10.1.1.1 80/TCP X', 'x/a > 8.8.8.8 80/TCP X'],
  },
  {
    name: 'invalid CIDR: prefix length over 32',
    spec: { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] },
    fields: ['spec.egress[0].to[0].ipBlock.cidr'],
    probes: ['x/a > 10.1.1.1 80/TCP X'],
  },
  {
    name: 'an except outside its cidr invalidates the peer',
    spec: { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }] },
    fields: ['spec.egress[0].to[0].ipBlock.except[0]'],
    probes: ['x/a > 10.1.1.1 80/TCP X'],
  },
  {
    name: 'an except equal to its cidr invalidates the peer',
    spec: { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.0/8'] } }] }] },
    fields: ['spec.egress[0].to[0].ipBlock.except[0]'],
    probes: ['x/a > 10.1.1.1 80/TCP X'],
  },
  {
    name: 'ipBlock combined with a selector in one peer',
    spec: { podSelector: pod('a'), ingress: [{ from: [{ ipBlock: { cidr: '0.0.0.0/0' }, podSelector: {} }] }] },
    fields: ['spec.ingress[0].from[0]'],
    probes: ['y/a > x/a 80/TCP X', '8.8.8.8 > x/a 80/TCP X'],
  },
  {
    name: 'a peer with no selector and no ipBlock',
    spec: { podSelector: pod('a'), ingress: [{ from: [{}] }] },
    fields: ['spec.ingress[0].from[0]'],
    probes: ['y/a > x/a 80/TCP X'],
  },
  {
    name: 'invalid spec.podSelector: isolates every pod of the namespace, allows nothing',
    spec: { podSelector: { matchExpressions: [{ key: 'pod', operator: 'Bogus' }] }, ingress: [{}] },
    fields: ['spec.podSelector.matchExpressions[0].operator'],
    probes: ['y/a > x/a 80/TCP X', 'y/a > x/c 80/TCP X', 'x/a > y/a 80/TCP .'],
  },
  {
    name: 'unknown policyTypes value isolates both directions',
    spec: { podSelector: pod('a'), policyTypes: ['Ingress', 'Sideways'], ingress: [fromB] },
    fields: ['spec.policyTypes[1]'],
    probes: ['x/b > x/a 80/TCP .', 'x/c > x/a 80/TCP X', 'x/a > y/a 80/TCP X'],
  },
  {
    name: 'ingress that is not a list: ingress isolated, nothing allowed',
    spec: { podSelector: pod('a'), ingress: { from: [] } },
    fields: ['spec.ingress'],
    probes: ['x/b > x/a 80/TCP X'],
  },
  {
    name: 'http rules without an L7 proxy fail closed (PalisadeNetworkPolicy only)',
    spec: { podSelector: pod('a'), ingress: [{ ports: [{ port: 80, http: [{ method: 'GET' }] }] }, fromB] },
    fields: ['spec.ingress[0].ports[0].http'],
    probes: ['y/a > x/a 80/TCP X', 'x/b > x/a 80/TCP .'],
  },
];

describe('rule 27: fail closed', () => {
  test.each(cases)('$name', ({ spec, fields, probes, name }) => {
    const c = upstreamModel();
    const kind = name.includes('PalisadeNetworkPolicy') ? 'PalisadeNetworkPolicy' : 'NetworkPolicy';
    c.policy('x', 'p', spec as Partial<NetworkPolicySpec>, kind);
    expectProbes(c, probes);
    const r = c.result('node-0');
    const got = r.problems.map((p) => p.field).sort();
    expect(got).toEqual([...fields].sort());
    for (const p of r.problems) {
      expect(p.policy).toBe(`${kind}:x/p`);
      expect(p.message).toMatch(/\S/);
    }
  });

  test('an IPv6 ipBlock is not a problem: it matches no IPv4 traffic', () => {
    const c = upstreamModel();
    c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ ipBlock: { cidr: 'fd00::/8' } }, { ipBlock: { cidr: '8.8.8.0/24' } }] }] });
    expectProbes(c, ['8.8.8.8 > x/a 80/TCP .', 'y/a > x/a 80/TCP X']);
    expect(c.problems()).toEqual([]);
  });

  test('host bits in a cidr are cleared as the API server does (10.0.0.1/24 = 10.0.0.0/24)', () => {
    const c = upstreamModel();
    c.policy('x', 'p', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '8.8.8.8/24' } }] }] });
    expectProbes(c, ['x/a > 8.8.8.1 80/TCP .', 'x/a > 8.8.9.1 80/TCP X']);
    expect(c.problems()).toEqual([]);
    expect(c.result('node-0').state.cidrs.map((e) => e.cidr)).toEqual(['8.8.8.0/24']);
  });

  test('http on a plain NetworkPolicy is not part of its schema and is ignored', () => {
    const c = upstreamModel();
    c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ ports: [{ port: 80, http: [{ method: 'GET' }] }] }] });
    expectProbes(c, ['y/a > x/a 80/TCP .']);
    expect(c.problems()).toEqual([]);
  });

  test('malformed objects never throw: each yields a problem and its policy still isolates', () => {
    const shapes: Record<string, unknown>[] = [
      { ingress: [{ from: 'x' }] },
      { ingress: [{ ports: {} }] },
      { ingress: [{ ports: [{ port: {} }] }] },
      { ingress: [{ ports: [null] }] },
      { ingress: [{ from: [null] }] },
      { ingress: [{ from: [{ ipBlock: { cidr: 5 } }] }] },
      { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: 'x' } }] }] },
      { ingress: [{ from: [{ podSelector: { matchLabels: [] } }] }] },
      { ingress: [{ from: [{ podSelector: { matchLabels: { a: 1 } } }] }] },
      { ingress: [{ from: [{ podSelector: { matchExpressions: {} } }] }] },
      { ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'In', values: 'b' }] } }] }] },
      { ingress: [{ from: [{ podSelector: { matchExpressions: [null] } }] }] },
      { policyTypes: 'Ingress' },
      { ingress: 'all' },
      { ingress: ['everything'] },
      { ingress: [null] },
    ];
    for (const [i, extra] of shapes.entries()) {
      const c = upstreamModel();
      c.policy('x', 'p', { podSelector: pod('a'), ...extra } as Partial<NetworkPolicySpec>);
      expect(() => c.result('node-0'), `shape ${i}`).not.toThrow();
      expect(c.problems().length, `shape ${i}: ${JSON.stringify(extra)}`).toBeGreaterThan(0);
      expect(c.can('y/a', 'x/a', 80), `shape ${i}`).toBe(false);
      expect(c.can('y/a', 'x/c', 80), `shape ${i}`).toBe(true);
    }
  });
});
