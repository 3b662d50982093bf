/**
 * PalisadeNetworkPolicy: `http` rules on a port redirect matching traffic to the L7 proxy
 * (proxyPort) and export the rules; a plain L3/L4 allow of the same traffic wins (union:
 * every request allowed, no redirect).
 */
import { describe, expect, test } from 'vitest';
import { IDENTITY_ANY } from '../../../pkg/identity/reserved.ts';
import type { NetworkPolicySpec } from '../../../pkg/policy/snapshot.ts';
import { l7RulesFor } from '../../../pkg/policy/evaluate.ts';
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
