/**
 * ipBlock peers through the per-endpoint CIDR lookup: nested excepts, overlapping blocks
 * with different ports, shared CIDR identities, and the overlay computation itself.
 */
import { describe, expect, test } from 'vitest';
import { IDENTITY_FIRST_CIDR, IDENTITY_WORLD } from '../../../pkg/identity/reserved.ts';
import { computeOverlay } from '../../../pkg/policy/cidr-overlay.ts';
import { formatPrefix, parseCidr } from '../../../pkg/policy/ip.ts';
import { upstreamModel } from './cluster.ts';
import { expectProbes } from './probe.ts';

const pod = (name: string) => ({ matchLabels: { pod: name } });
const P = (s: string) => parseCidr(s)!.prefix;

describe('ipBlock overlay through the compiler', () => {
  const cases: { name: string; egress: object[]; probes: string[] }[] = [
    {
      name: 'nested excepts: a block inside another block\'s except, with its own except',
      egress: [
        { to: [{ ipBlock: { cidr: '20.0.0.0/8', except: ['20.1.0.0/16'] } }], ports: [{ port: 80 }] },
        { to: [{ ipBlock: { cidr: '20.1.0.0/16', except: ['20.1.1.0/24'] } }], ports: [{ port: 443 }] },
      ],
      probes: [
        'x/a > 20.2.0.1 80/TCP .', 'x/a > 20.2.0.1 443/TCP X',
        'x/a > 20.1.2.3 80/TCP X', 'x/a > 20.1.2.3 443/TCP .',
        'x/a > 20.1.1.5 80/TCP X', 'x/a > 20.1.1.5 443/TCP X',
        'x/a > 21.0.0.1 80/TCP X',
      ],
    },
    {
      name: 'two overlapping blocks with different ports: the inner range gets both',
      egress: [
        { to: [{ ipBlock: { cidr: '20.0.0.0/8' } }], ports: [{ port: 80 }] },
        { to: [{ ipBlock: { cidr: '20.1.0.0/16' } }], ports: [{ port: 443 }, { protocol: 'UDP', port: 53 }] },
      ],
      probes: [
        'x/a > 20.1.0.9 80/TCP .', 'x/a > 20.1.0.9 443/TCP .', 'x/a > 20.1.0.9 53/UDP .',
        'x/a > 20.9.0.9 80/TCP .', 'x/a > 20.9.0.9 443/TCP X', 'x/a > 20.9.0.9 53/UDP X',
      ],
    },
    {
      name: 'an except of one block inside another block: the other block still allows it',
      egress: [
        { to: [{ ipBlock: { cidr: '20.0.0.0/8', except: ['20.1.0.0/16'] } }, { ipBlock: { cidr: '20.1.0.0/17' } }] },
      ],
      probes: ['x/a > 20.1.0.1 80/TCP .', 'x/a > 20.1.200.1 80/TCP X', 'x/a > 20.2.0.1 80/TCP .'],
    },
    {
      name: 'a block equal to an except of another one',
      egress: [
        { to: [{ ipBlock: { cidr: '20.0.0.0/8', except: ['20.1.0.0/16'] } }], ports: [{ port: 80 }] },
        { to: [{ ipBlock: { cidr: '20.1.0.0/16' } }], ports: [{ port: 81 }] },
      ],
      probes: ['x/a > 20.1.0.1 80/TCP X', 'x/a > 20.1.0.1 81/TCP .', 'x/a > 20.2.0.1 80/TCP .', 'x/a > 20.2.0.1 81/TCP X'],
    },
    {
      name: '0.0.0.0/0 except the pod network: the outside but no pod',
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.244.0.0/16'] } }] }],
      probes: ['x/a > 8.8.8.8 53/UDP .', 'x/a > y/b 80/TCP X', 'x/a > 192.168.0.11 80/TCP .'],
    },
    {
      name: 'the same block in two rules with different ports',
      egress: [
        { to: [{ ipBlock: { cidr: '20.0.0.0/8' } }], ports: [{ port: 80 }] },
        { to: [{ ipBlock: { cidr: '20.0.0.0/8' } }], ports: [{ port: 81, protocol: 'UDP' }] },
      ],
      probes: ['x/a > 20.0.0.1 80/TCP .', 'x/a > 20.0.0.1 81/UDP .', 'x/a > 20.0.0.1 81/TCP X'],
    },
  ];
  test.each(cases)('$name', ({ egress, probes }) => {
    const c = upstreamModel();
    c.policy('x', 'p', { podSelector: pod('a'), policyTypes: ['Egress'], egress } as never);
    expectProbes(c, probes);
    expect(c.problems()).toEqual([]);
  });

  test('an except entry maps to world, which allows nothing', () => {
    const c = upstreamModel();
    c.policy('x', 'p', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '20.0.0.0/8', except: ['20.1.0.0/16'] } }] }] });
    const cidrs = c.result('node-0').state.cidrs;
    expect(cidrs.map((e) => [e.cidr, e.identity >= IDENTITY_FIRST_CIDR ? 'cidr' : e.identity])).toEqual([
      ['20.0.0.0/8', 'cidr'], ['20.1.0.0/16', IDENTITY_WORLD],
    ]);
    expect(c.verdict('x/a', 'egress', '20.1.0.1', 80)).toMatchObject({ allowed: false, peerIdentity: IDENTITY_WORLD, cidr: '20.1.0.0/16' });
  });

  test('endpoints with the same ipBlock set share one CIDR identity', () => {
    const c = upstreamModel();
    c.policy('x', 'p', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '20.0.0.0/8' } }] }] });
    const r = c.result('node-0');
    const ids = new Set(r.state.cidrs.map((e) => e.identity));
    expect(r.state.cidrs.length).toBe(2); // x/a and x/c are on node-0
    expect(ids.size).toBe(1);
    const id = [...ids][0]!;
    expect(r.identities.get(id)).toEqual({ '20.0.0.0/8': 'ipblock' });
  });

  test('an ipBlock allow on a pod IP is per endpoint: it does not open other endpoints', () => {
    const c = upstreamModel();
    c.policy('x', 'p', { podSelector: {}, policyTypes: ['Egress'], egress: [] });
    c.policy('x', 'q', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${c.ipOf('y/b')}/32` } }] }] });
    expectProbes(c, ['x/a > y/b 80/TCP .', 'x/c > y/b 80/TCP X']);
  });
});

describe('computeOverlay', () => {
  const el = (member: string, cidr: string, excepts: string[], ports: string[]) =>
    ({ member, prefix: P(cidr), excepts: excepts.map(P), ports });
  const show = (o: ReturnType<typeof computeOverlay<string>>) =>
    o.map((x) => `${formatPrefix(x.prefix)} ${x.members.join('+') || 'world'} ${[...x.ports].sort().join(',')}`);

  test('a nested prefix with the same set as its parent is left out', () => {
    expect(show(computeOverlay([el('A', '10.0.0.0/8', [], ['80']), el('A', '10.0.0.0/8', [], ['81'])]))).toEqual(['10.0.0.0/8 A 80,81']);
    expect(show(computeOverlay([el('A', '10.0.0.0/8', [], ['80']), el('B', '10.1.0.0/16', ['10.1.1.0/24'], ['443'])]))).toEqual([
      '10.0.0.0/8 A 80', '10.1.0.0/16 A+B 443,80', '10.1.1.0/24 A 80',
    ]);
  });

  test('an except with no covering peer left maps to world; top-level empties are left out', () => {
    expect(show(computeOverlay([el('A', '10.0.0.0/8', ['10.1.0.0/16', '10.1.2.0/24'], ['80'])]))).toEqual([
      '10.0.0.0/8 A 80', '10.1.0.0/16 world ',
    ]);
  });

  test('disjoint blocks are independent', () => {
    expect(show(computeOverlay([el('A', '10.0.0.0/8', [], ['1']), el('B', '11.0.0.0/8', [], ['2'])]))).toEqual([
      '10.0.0.0/8 A 1', '11.0.0.0/8 B 2',
    ]);
  });

  test('brute force: LPM over the overlay equals direct matching for every address of a small space', () => {
    // Blocks inside 10.0.0.0/24 so every address can be checked.
    const els = [
      el('A', '10.0.0.0/24', ['10.0.0.64/26', '10.0.0.200/29'], ['a']),
      el('B', '10.0.0.64/27', ['10.0.0.72/30'], ['b']),
      el('C', '10.0.0.0/25', ['10.0.0.0/28'], ['c']),
      el('D', '10.0.0.72/31', [], ['d']),
    ];
    const ov = computeOverlay(els);
    for (let i = 0; i < 256; i++) {
      const addr = P('10.0.0.0/24').addr + i;
      const inP = (p: { addr: number; len: number }) => (addr >>> (32 - p.len)) === (p.addr >>> (32 - p.len));
      const want = els.filter((e) => inP(e.prefix) && !e.excepts.some(inP)).map((e) => e.member).sort();
      const hit = ov.filter((o) => inP(o.prefix)).sort((a, b) => b.prefix.len - a.prefix.len)[0];
      expect(hit ? hit.members : [], `address 10.0.0.${i}`).toEqual(want);
    }
  });
});
