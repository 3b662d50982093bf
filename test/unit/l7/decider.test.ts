/**
 * The L7 decider against compiled policy: which side judges, the union with plain
 * allows, egress rules, attribution, policy updates, invalid rules failing closed.
 */
import { describe, expect, test } from 'vitest';
import type { NetworkPolicySpec } from '../../../pkg/policy/snapshot.ts';
import type { CompileResult } from '../../../pkg/policy/types.ts';
import { PolicyDecider } from '../../../pkg/l7/decider.ts';
import type { ConnectionInfo, RequestInfo } from '../../../pkg/l7/types.ts';
import { upstreamModel, type TestCluster } from '../policy/cluster.ts';

const PROXY = 15001;
const pod = (name: string) => ({ matchLabels: { pod: name } });

function req(method: string, path: string, headers: Record<string, string> = {}, host?: string): RequestInfo {
  return { method, path, host, headers: new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), [v]])) };
}

/** A decider reading `c`'s current compile result for the node of `podKey`. */
function deciderFor(c: TestCluster, podKey: string): PolicyDecider {
  return new PolicyDecider(() => c.result(c.nodeOf(podKey)));
}

function conn(c: TestCluster, from: string, to: string, port = 80): ConnectionInfo {
  return { srcIp: c.ipOf(from), srcPort: 40000, dstIp: c.ipOf(to), dstPort: port };
}

const publicOnly: Partial<NetworkPolicySpec> = {
  podSelector: pod('a'),
  ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80, http: [{ method: 'GET', path: '/public(/.*)?' }] }] }],
};

describe('PolicyDecider', () => {
  test('ingress http rules: GET /public allowed, POST /public and GET /admin denied, attributed', () => {
    const c = upstreamModel({ l7ProxyPort: PROXY });
    c.policy('x', 'l7', publicOnly, 'PalisadeNetworkPolicy');
    const d = deciderFor(c, 'x/a');
    const k = conn(c, 'x/b', 'x/a');
    expect(d.decide(k, req('GET', '/public'))).toMatchObject({ allowed: true, direction: 'ingress', policy: 'PalisadeNetworkPolicy:x/l7' });
    expect(d.decide(k, req('GET', '/public/x?y=1')).allowed).toBe(true);
    expect(d.decide(k, req('POST', '/public'))).toMatchObject({ allowed: false, direction: 'ingress', policy: 'PalisadeNetworkPolicy:x/l7' });
    expect(d.decide(k, req('GET', '/admin')).allowed).toBe(false);
    expect(d.decide(k, req('GET', '/publicity')).allowed).toBe(false);
  });

  test('header and host rules', () => {
    const c = upstreamModel({ l7ProxyPort: PROXY });
    c.policy('x', 'l7', {
      podSelector: pod('a'),
      ingress: [{ ports: [{ port: 80, http: [{ headers: [{ name: 'X-Token', value: 's3cret' }] }, { host: 'api.example.com' }] }] }],
    }, 'PalisadeNetworkPolicy');
    const d = deciderFor(c, 'x/a');
    const k = conn(c, 'y/b', 'x/a');
    expect(d.decide(k, req('GET', '/', { 'x-token': 's3cret' })).allowed).toBe(true);
    expect(d.decide(k, req('GET', '/', { 'x-token': 'wrong' })).allowed).toBe(false);
    expect(d.decide(k, req('GET', '/', {}, 'api.example.com')).allowed).toBe(true);
    expect(d.decide(k, req('GET', '/', {}, 'other.example.com')).allowed).toBe(false);
  });

  test('union: a plain L3/L4 allow of the same peer and port allows every request', () => {
    const c = upstreamModel({ l7ProxyPort: PROXY });
    c.policy('x', 'l7', publicOnly, 'PalisadeNetworkPolicy');
    c.policy('x', 'l4', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80 }] }] });
    const d = deciderFor(c, 'x/a');
    const v = d.decide(conn(c, 'x/b', 'x/a'), req('POST', '/admin'));
    expect(v.allowed).toBe(true);
    // One merged entry: attributed to one of the two policies behind it.
    expect(['NetworkPolicy:x/l4', 'PalisadeNetworkPolicy:x/l7']).toContain(v.policy);
  });

  test('an allowed request is attributed to the policy whose http rule matched', () => {
    const c = upstreamModel({ l7ProxyPort: PROXY });
    const spec = (path: string): Partial<NetworkPolicySpec> => ({
      podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80, http: [{ path }] }] }],
    });
    c.policy('x', 'one', spec('/one'), 'PalisadeNetworkPolicy');
    c.policy('x', 'two', spec('/two'), 'PalisadeNetworkPolicy');
    const d = deciderFor(c, 'x/a');
    const k = conn(c, 'x/b', 'x/a');
    expect(d.decide(k, req('GET', '/one')).policy).toBe('PalisadeNetworkPolicy:x/one');
    expect(d.decide(k, req('GET', '/two')).policy).toBe('PalisadeNetworkPolicy:x/two');
    expect(d.decide(k, req('GET', '/three')).allowed).toBe(false);
  });

  test('egress rules on the client side judge requests whose server is elsewhere', () => {
    const c = upstreamModel({ l7ProxyPort: PROXY });
    c.policy('x', 'egress-l7', {
      podSelector: pod('a'), policyTypes: ['Egress'],
      egress: [{ ports: [{ port: 80, http: [{ method: 'GET' }] }] }],
    }, 'PalisadeNetworkPolicy');
    const d = deciderFor(c, 'x/a');
    // The server is on another node: only x/a's egress is on this node.
    const remote = c.podKeys().find((p) => c.nodeOf(p) !== c.nodeOf('x/a'))!;
    const k = conn(c, 'x/a', remote);
    expect(d.decide(k, req('GET', '/anything'))).toMatchObject({ allowed: true, direction: 'egress' });
    expect(d.decide(k, req('DELETE', '/anything'))).toMatchObject({ allowed: false, direction: 'egress' });
    expect(d.direction(k)).toBe('egress');
  });

  test('a policy update applies to the next request', () => {
    const c = upstreamModel({ l7ProxyPort: PROXY });
    c.policy('x', 'l7', publicOnly, 'PalisadeNetworkPolicy');
    const d = deciderFor(c, 'x/a');
    const k = conn(c, 'x/b', 'x/a');
    expect(d.decide(k, req('GET', '/admin')).allowed).toBe(false);
    c.policy('x', 'l7', {
      ...publicOnly,
      ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80, http: [{ path: '/admin' }] }] }],
    }, 'PalisadeNetworkPolicy');
    expect(d.decide(k, req('GET', '/admin')).allowed).toBe(true);
    expect(d.decide(k, req('GET', '/public')).allowed).toBe(false);
    // L3/L4 no longer allows the peer at all: every request denied.
    c.deletePolicy('x', 'l7', 'PalisadeNetworkPolicy');
    c.policy('x', 'deny', { podSelector: pod('a') });
    expect(d.decide(k, req('GET', '/admin'))).toMatchObject({ allowed: false, policy: 'default-deny' });
  });

  test('an invalid regular expression fails closed and is named', () => {
    const c = upstreamModel({ l7ProxyPort: PROXY });
    c.policy('x', 'bad', {
      podSelector: pod('a'),
      ingress: [{ ports: [{ port: 80, http: [{ path: '/(unclosed' }] }] }],
    }, 'PalisadeNetworkPolicy');
    expect(c.problems().join('\n')).toMatch(/PalisadeNetworkPolicy:x\/bad spec\.ingress\[0\]\.ports\[0\]\.http\[0\]\.path: invalid regular expression/);
    const d = deciderFor(c, 'x/a');
    expect(d.decide(conn(c, 'y/b', 'x/a'), req('GET', '/(unclosed')).allowed).toBe(false);
  });

  test('before the first compile result every request is denied', () => {
    const d = new PolicyDecider((): CompileResult | undefined => undefined);
    expect(d.decide({ srcIp: '10.0.0.1', srcPort: 1, dstIp: '10.0.0.2', dstPort: 80 }, req('GET', '/')).allowed).toBe(false);
  });

  /**
   * The union across lookups, per direction: an http rule naming pod x/b plus a second
   * policy whose rule reaches x/b through another lookup (ipBlock, any peer, any pod).
   */
  describe('union with rules found by other lookups', () => {
    type Rule = { peers?: Record<string, unknown>[]; ports: { port: number; http?: { path: string }[] }[] };
    interface Case {
      name: string;
      other: (c: TestCluster) => Rule;
      /** Requests (method path) and whether each is allowed, and by which policy. */
      want: [string, string, boolean, string?][];
    }
    const cases: Case[] = [
      {
        name: 'an ipBlock allow covering the pod, without http: every request',
        other: (c) => ({ peers: [{ ipBlock: { cidr: `${c.ipOf('x/b').split('.').slice(0, 2).join('.')}.0.0/16` } }], ports: [{ port: 80 }] }),
        want: [['GET', '/public', true], ['POST', '/admin', true, 'NetworkPolicy:x/other'], ['DELETE', '/', true]],
      },
      {
        name: 'an any-peer rule with other http rules: the union',
        other: () => ({ ports: [{ port: 80, http: [{ path: '/any' }] }] }),
        want: [
          ['GET', '/public', true, 'PalisadeNetworkPolicy:x/l7'], ['POST', '/any', true, 'PalisadeNetworkPolicy:x/other'],
          ['POST', '/public', false], ['GET', '/admin', false],
        ],
      },
      {
        name: 'a namespaceSelector {} rule without http: every request',
        other: () => ({ peers: [{ namespaceSelector: {} }], ports: [{ port: 80 }] }),
        want: [['GET', '/public', true], ['POST', '/admin', true, 'NetworkPolicy:x/other']],
      },
      {
        name: 'a namespaceSelector {} rule with other http rules: the union',
        other: () => ({ peers: [{ namespaceSelector: {} }], ports: [{ port: 80, http: [{ method: 'PUT' } as never] }] }),
        want: [['GET', '/public', true, 'PalisadeNetworkPolicy:x/l7'], ['PUT', '/admin', true, 'PalisadeNetworkPolicy:x/other'], ['GET', '/admin', false]],
      },
      {
        name: 'an ipBlock rule excepting the pod, without http: still filtered',
        other: (c) => ({ peers: [{ ipBlock: { cidr: `${c.ipOf('x/b').split('.').slice(0, 2).join('.')}.0.0/16`, except: [`${c.ipOf('x/b')}/32`] } }], ports: [{ port: 80 }] }),
        want: [['GET', '/public', true], ['POST', '/admin', false, 'PalisadeNetworkPolicy:x/l7']],
      },
    ];
    const specFor = (dir: 'ingress' | 'egress', r: Rule): Partial<NetworkPolicySpec> => {
      const rule = { ...(r.peers ? { [dir === 'ingress' ? 'from' : 'to']: r.peers } : {}), ports: r.ports };
      return (dir === 'ingress'
        ? { podSelector: pod('a'), ingress: [rule] }
        : { podSelector: pod('a'), policyTypes: ['Egress'], egress: [rule] }) as Partial<NetworkPolicySpec>;
    };
    for (const dir of ['ingress', 'egress'] as const) {
      for (const k of cases) {
        test(`${dir}: http rule on pod b + ${k.name}`, () => {
          const c = upstreamModel({ l7ProxyPort: PROXY });
          c.policy('x', 'l7', specFor(dir, { peers: [{ podSelector: pod('b') }], ports: [{ port: 80, http: [{ method: 'GET', path: '/public(/.*)?' } as never] }] }), 'PalisadeNetworkPolicy');
          const other = k.other(c);
          c.policy('x', 'other', specFor(dir, other), other.ports.some((p) => p.http) ? 'PalisadeNetworkPolicy' : 'NetworkPolicy');
          expect(c.problems()).toEqual([]);
          const d = deciderFor(c, 'x/a');
          const k2 = dir === 'ingress' ? conn(c, 'x/b', 'x/a') : conn(c, 'x/a', 'x/b');
          for (const [method, path, allowed, policy] of k.want) {
            const v = d.decide(k2, req(method, path));
            expect(v.allowed, `${method} ${path}`).toBe(allowed);
            // x/a's side is the one with rules (x/b is not isolated).
            expect(v.direction).toBe(dir);
            if (policy) expect(v.policy, `${method} ${path}`).toBe(policy);
          }
        });
      }
    }
  });
});
