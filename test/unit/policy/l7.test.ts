/**
 * PalisadeNetworkPolicy: `http` rules on a port redirect matching traffic to the L7 proxy
 * (proxyPort) and export the rules; a plain L3/L4 allow of the same traffic wins (union:
 * every request allowed, no redirect).
 */
import { describe, expect, test } from 'vitest';
import { IDENTITY_ANY } from '../../../pkg/identity/reserved.ts';
import type { NetworkPolicySpec } from '../../../pkg/policy/snapshot.ts';
import type { Direction } from '../../../pkg/datapath/types.ts';
import { l7Applicable, l7RulesFor } from '../../../pkg/policy/evaluate.ts';
import { upstreamModel } from './cluster.ts';

const PROXY = 15001;
const pod = (name: string) => ({ matchLabels: { pod: name } });
const getPublic = [{ method: 'GET', path: '/public' }];

function cluster() {
  return upstreamModel({ l7ProxyPort: PROXY });
}

describe('L7 http rules', () => {
  test('an http rule redirects the allowed peer and port to the proxy and exports the rules', () => {
    const c = cluster();
    c.policy('x', 'l7', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80, http: getPublic }] }] }, 'PalisadeNetworkPolicy');
    const v = c.verdict('x/a', 'ingress', c.ipOf('x/b'), 80);
    expect(v).toMatchObject({ allowed: true, proxyPort: PROXY });
    expect(c.verdict('x/a', 'ingress', c.ipOf('x/c'), 80).allowed).toBe(false);
    expect(c.verdict('x/a', 'ingress', c.ipOf('x/b'), 81).allowed).toBe(false);
    const r = c.result('node-0');
    expect(r.problems).toEqual([]);
    expect(r.l7).toEqual([{
      endpointId: c.endpointOf('x/a'), direction: 'ingress', peer: v.remoteIdentity, protocol: 6,
      port: 80, endPort: 80, proxyPort: PROXY, ruleIds: [v.ruleId], http: getPublic, httpRuleIds: [v.ruleId],
    }]);
  });

  test('a plain allow of the same peer and port removes the redirect', () => {
    const c = cluster();
    c.policy('x', 'l7', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80, http: getPublic }] }] }, 'PalisadeNetworkPolicy');
    c.policy('x', 'l4', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80 }] }] });
    expect(c.verdict('x/a', 'ingress', c.ipOf('x/b'), 80)).toMatchObject({ allowed: true, proxyPort: 0 });
    expect(c.result('node-0').l7).toBeUndefined();
  });

  test('a plain allow of any peer on a covering port range removes the redirect', () => {
    const c = cluster();
    c.policy('x', 'l7', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80, http: getPublic }] }] }, 'PalisadeNetworkPolicy');
    c.policy('x', 'l4', { podSelector: pod('a'), ingress: [{ ports: [{ port: 79, endPort: 90 }] }] });
    expect(c.verdict('x/a', 'ingress', c.ipOf('x/b'), 80)).toMatchObject({ allowed: true, proxyPort: 0 });
    expect(c.result('node-0').l7).toBeUndefined();
  });

  test('a plain allow on another port keeps the redirect', () => {
    const c = cluster();
    c.policy('x', 'l7', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80, http: getPublic }, { port: 81 }] }] }, 'PalisadeNetworkPolicy');
    expect(c.verdict('x/a', 'ingress', c.ipOf('x/b'), 80).proxyPort).toBe(PROXY);
    expect(c.verdict('x/a', 'ingress', c.ipOf('x/b'), 81)).toMatchObject({ allowed: true, proxyPort: 0 });
    expect(c.result('node-0').l7).toHaveLength(1);
  });

  test('http rules of two policies on one peer and port are united', () => {
    const c = cluster();
    const spec = (path: string): Partial<NetworkPolicySpec> => ({
      podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80, http: [{ path }] }] }],
    });
    c.policy('x', 'one', spec('/one'), 'PalisadeNetworkPolicy');
    c.policy('x', 'two', spec('/two'), 'PalisadeNetworkPolicy');
    const l7 = c.result('node-0').l7!;
    expect(l7).toHaveLength(1);
    expect(l7[0]!.http.map((h) => h.path).sort()).toEqual(['/one', '/two']);
    expect(l7[0]!.ruleIds).toHaveLength(2);
    // Each http entry names the rule it came from.
    const byPath = new Map(l7[0]!.http.map((h, i) => [h.path, l7[0]!.httpRuleIds![i]]));
    expect(new Set(byPath.values())).toEqual(new Set(l7[0]!.ruleIds));
    expect(byPath.get('/one')).not.toBe(byPath.get('/two'));
  });

  test('egress http rules towards any peer', () => {
    const c = cluster();
    c.policy('x', 'egress-l7', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ ports: [{ port: 80, http: getPublic }] }] }, 'PalisadeNetworkPolicy');
    expect(c.verdict('x/a', 'egress', c.ipOf('y/b'), 80)).toMatchObject({ allowed: true, proxyPort: PROXY });
    expect(c.verdict('x/a', 'egress', '8.8.8.8', 80)).toMatchObject({ allowed: true, proxyPort: PROXY });
    expect(c.verdict('x/a', 'egress', c.ipOf('y/b'), 81).allowed).toBe(false);
    expect(c.result('node-0').l7![0]).toMatchObject({ peer: IDENTITY_ANY, direction: 'egress' });
  });

  test('http rules on an ipBlock peer redirect through its CIDR identity', () => {
    const c = cluster();
    c.policy('x', 'l7', { podSelector: pod('a'), ingress: [{ from: [{ ipBlock: { cidr: '8.8.8.0/24' } }], ports: [{ port: 80, http: getPublic }] }] }, 'PalisadeNetworkPolicy');
    const v = c.verdict('x/a', 'ingress', '8.8.8.8', 80);
    expect(v).toMatchObject({ allowed: true, proxyPort: PROXY, cidr: '8.8.8.0/24' });
    expect(c.result('node-0').l7![0]!.peer).toBe(v.peerIdentity);
  });

  test('l7RulesFor finds the rules behind a redirected verdict, through the CIDR lookup too', () => {
    const c = cluster();
    c.policy('x', 'l7', {
      podSelector: pod('a'),
      ingress: [
        { from: [{ podSelector: pod('b') }], ports: [{ port: 80, http: [{ path: '/b' }] }] },
        { from: [{ ipBlock: { cidr: '8.8.8.0/24' } }], ports: [{ port: 80, http: [{ path: '/outside' }] }, { port: 81 }] },
      ],
    }, 'PalisadeNetworkPolicy');
    const r = c.result('node-0');
    const paths = (ip: string, port: number) => l7RulesFor(r, c.verdict('x/a', 'ingress', ip, port))?.http.map((h) => h.path);
    expect(paths(c.ipOf('x/b'), 80)).toEqual(['/b']);
    expect(paths('8.8.8.8', 80)).toEqual(['/outside']);
    expect(paths('8.8.8.8', 81)).toBeUndefined();
    expect(paths(c.ipOf('x/c'), 80)).toBeUndefined();
  });

  test('http rules on UDP fail closed', () => {
    const c = cluster();
    c.policy('x', 'l7', { podSelector: pod('a'), ingress: [{ ports: [{ port: 80, protocol: 'UDP', http: getPublic }] }] }, 'PalisadeNetworkPolicy');
    expect(c.verdict('x/a', 'ingress', c.ipOf('y/b'), 80, 'UDP').allowed).toBe(false);
    expect(c.problems()).toEqual(['PalisadeNetworkPolicy:x/l7 spec.ingress[0].ports[0].http: http rules need protocol TCP, not UDP']);
  });

  test('a PalisadeNetworkPolicy without http behaves as a NetworkPolicy', () => {
    const c = cluster();
    c.policy('x', 'l4', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] }, 'PalisadeNetworkPolicy');
    expect(c.can('x/b', 'x/a', 80)).toBe(true);
    expect(c.can('x/c', 'x/a', 80)).toBe(false);
    expect(c.result('node-0').l7).toBeUndefined();
  });
});

/**
 * Union across the datapath's lookups: for one (endpoint, direction, peer, port), every
 * applicable rule counts, whatever lookup finds it (the peer's identity, any peer, any
 * pod, the ipBlock prefixes covering its address). A rule without `http` among them
 * allows every request and the datapath does not redirect; otherwise the proxy allows
 * the union of their `http` rules.
 */
describe('L7 union with rules found by other lookups', () => {
  type Peer = Record<string, unknown>;
  type Port = { port: number; endPort?: number; http?: { path: string }[] };
  interface Rule { peers?: Peer[]; ports: Port[] }
  interface Case {
    name: string;
    /** Rules of a second policy (a PalisadeNetworkPolicy when one has http). */
    other: (c: ReturnType<typeof cluster>) => Rule[];
    /** 'all': no redirect, every request; else the union of http paths (redirected). */
    want: 'all' | string[];
  }
  const onB: Rule = { peers: [{ podSelector: pod('b') }], ports: [{ port: 80, http: [{ path: '/b' }] }] };
  const slash16 = (ip: string) => `${ip.split('.').slice(0, 2).join('.')}.0.0/16`;
  const cases: Case[] = [
    { name: 'ipBlock /32 of the pod without http', other: (c) => [{ peers: [{ ipBlock: { cidr: `${c.ipOf('x/b')}/32` } }], ports: [{ port: 80 }] }], want: 'all' },
    { name: 'wide ipBlock covering the pod without http', other: (c) => [{ peers: [{ ipBlock: { cidr: slash16(c.ipOf('x/b')) } }], ports: [{ port: 80 }] }], want: 'all' },
    { name: 'wide ipBlock without ports covering the pod', other: (c) => [{ peers: [{ ipBlock: { cidr: slash16(c.ipOf('x/b')) } }], ports: [] }], want: 'all' },
    { name: 'ipBlock covering the pod except its /32', other: (c) => [{ peers: [{ ipBlock: { cidr: slash16(c.ipOf('x/b')), except: [`${c.ipOf('x/b')}/32`] } }], ports: [{ port: 80 }] }], want: ['/b'] },
    { name: 'ipBlock covering the pod on another port', other: (c) => [{ peers: [{ ipBlock: { cidr: `${c.ipOf('x/b')}/32` } }], ports: [{ port: 81 }] }], want: ['/b'] },
    { name: 'ipBlock covering the pod with other http rules', other: (c) => [{ peers: [{ ipBlock: { cidr: slash16(c.ipOf('x/b')) } }], ports: [{ port: 80, http: [{ path: '/cidr' }] }] }], want: ['/b', '/cidr'] },
    { name: 'any peer with other http rules', other: () => [{ ports: [{ port: 80, http: [{ path: '/any' }] }] }], want: ['/any', '/b'] },
    { name: 'any peer without http on a covering range', other: () => [{ ports: [{ port: 1, endPort: 1000 }] }], want: 'all' },
    { name: 'namespaceSelector {} without http', other: () => [{ peers: [{ namespaceSelector: {} }], ports: [{ port: 80 }] }], want: 'all' },
    { name: 'namespaceSelector {} with other http rules', other: () => [{ peers: [{ namespaceSelector: {} }], ports: [{ port: 80, http: [{ path: '/pods' }] }] }], want: ['/b', '/pods'] },
    { name: 'namespaceSelector of x with other http rules', other: () => [{ peers: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'x' } } }], ports: [{ port: 80, http: [{ path: '/x' }] }] }], want: ['/b', '/x'] },
    { name: 'namespaceSelector of y without http (does not select the pod)', other: () => [{ peers: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }], ports: [{ port: 80 }] }], want: ['/b'] },
    {
      name: 'any peer, any pod and ipBlock, all with http',
      other: (c) => [
        { ports: [{ port: 80, http: [{ path: '/any' }] }] },
        { peers: [{ namespaceSelector: {} }], ports: [{ port: 80, http: [{ path: '/pods' }] }] },
        { peers: [{ ipBlock: { cidr: `${c.ipOf('x/b')}/32` } }], ports: [{ port: 80, http: [{ path: '/cidr' }] }] },
      ],
      want: ['/any', '/b', '/cidr', '/pods'],
    },
  ];

  function spec(dir: Direction, rules: Rule[]): Partial<NetworkPolicySpec> {
    const key = dir === 'ingress' ? 'from' : 'to';
    const list = rules.map((r) => ({ ...(r.peers ? { [key]: r.peers } : {}), ports: r.ports }));
    return dir === 'ingress'
      ? { podSelector: pod('a'), ingress: list } as Partial<NetworkPolicySpec>
      : { podSelector: pod('a'), policyTypes: ['Egress'], egress: list } as Partial<NetworkPolicySpec>;
  }

  for (const dir of ['ingress', 'egress'] as const) {
    for (const k of cases) {
      test(`${dir}: http rule on the pod + ${k.name}`, () => {
        const c = cluster();
        c.policy('x', 'l7', spec(dir, [onB]), 'PalisadeNetworkPolicy');
        const other = k.other(c);
        const kind = other.some((r) => r.ports.some((p) => p.http)) ? 'PalisadeNetworkPolicy' : 'NetworkPolicy';
        c.policy('x', 'other', spec(dir, other), kind);
        expect(c.problems()).toEqual([]);
        const q = { endpointId: c.endpointOf('x/a'), direction: dir, remoteIp: c.ipOf('x/b'), protocol: 6, port: 80 };
        const v = c.verdict('x/a', dir, c.ipOf('x/b'), 80);
        const a = l7Applicable(c.result(c.nodeOf('x/a')), q);
        if (k.want === 'all') {
          expect(v).toMatchObject({ allowed: true, proxyPort: 0 });
          expect(a.kind).toBe('all');
        } else {
          expect(v).toMatchObject({ allowed: true, proxyPort: PROXY });
          expect(a.kind).toBe('http');
          if (a.kind !== 'http') return;
          expect(a.http.map((h) => h.path).sort()).toEqual(k.want);
          // Each http entry is attributed to the rule it came from.
          expect(a.httpRuleIds).toHaveLength(a.http.length);
          for (const id of a.httpRuleIds) expect(c.result(c.nodeOf('x/a')).rules.get(id)?.direction).toBe(dir);
        }
        // Another pod of x is never let in by the http rule on b alone.
        const viaOther = c.verdict('x/a', dir, c.ipOf('x/c'), 80);
        if (viaOther.allowed && viaOther.proxyPort) {
          const ac = l7Applicable(c.result(c.nodeOf('x/a')), { ...q, remoteIp: c.ipOf('x/c') });
          expect(ac.kind === 'http' && ac.http.some((h) => h.path === '/b')).toBe(false);
        }
      });
    }
  }

  test('a plain allow of the same pod on a partly overlapping range cuts the redirect to the rest', () => {
    const c = cluster();
    c.policy('x', 'l7', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 60, endPort: 100, http: getPublic }] }] }, 'PalisadeNetworkPolicy');
    c.policy('x', 'l4', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 64, endPort: 127 }] }] });
    // 70: the http range's aligned block 64-95 lies inside the plain range, so a longest
    // prefix match alone would pick the redirect.
    for (const port of [64, 70, 95, 100]) {
      expect(c.verdict('x/a', 'ingress', c.ipOf('x/b'), port), `port ${port}`).toMatchObject({ allowed: true, proxyPort: 0 });
    }
    for (const port of [60, 63]) {
      expect(c.verdict('x/a', 'ingress', c.ipOf('x/b'), port), `port ${port}`).toMatchObject({ allowed: true, proxyPort: PROXY });
    }
    expect(c.result('node-0').l7?.map((r) => [r.port, r.endPort])).toEqual([[60, 63]]);
  });

  test('a plain allow of any peer on part of an every-port http rule leaves the rest redirected', () => {
    const c = cluster();
    c.policy('x', 'l7', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ protocol: 'TCP', http: getPublic }] as never }] }, 'PalisadeNetworkPolicy');
    c.policy('x', 'l4', { podSelector: pod('a'), ingress: [{ ports: [{ port: 80 }] }] });
    expect(c.verdict('x/a', 'ingress', c.ipOf('x/b'), 80)).toMatchObject({ allowed: true, proxyPort: 0 });
    for (const port of [1, 79, 81, 65535]) {
      expect(c.verdict('x/a', 'ingress', c.ipOf('x/b'), port), `port ${port}`).toMatchObject({ allowed: true, proxyPort: PROXY });
    }
    expect(c.result('node-0').l7?.map((r) => [r.port, r.endPort])).toEqual([[1, 79], [81, 65535]]);
  });

  test('cut pieces that meet another redirect of the same peer and ports merge with it', () => {
    const c = cluster();
    c.policy('x', 'wide', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80, endPort: 90, http: [{ path: '/wide' }] }] }] }, 'PalisadeNetworkPolicy');
    c.policy('x', 'narrow', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 86, endPort: 90, http: [{ path: '/narrow' }] }] }] }, 'PalisadeNetworkPolicy');
    c.policy('x', 'l4', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80, endPort: 85 }] }] });
    const l7 = c.result('node-0').l7!;
    expect(l7.map((r) => [r.port, r.endPort])).toEqual([[86, 90]]);
    expect(l7[0]!.http.map((h) => h.path).sort()).toEqual(['/narrow', '/wide']);
    expect(l7[0]!.ruleIds).toHaveLength(2);
    const keys = c.result('node-0').state.policy.map((e) => `${e.endpointId}/${e.direction}/${e.peer}/${e.protocol}/${e.port}-${e.endPort}`);
    expect(new Set(keys).size).toBe(keys.length);
  });
});
