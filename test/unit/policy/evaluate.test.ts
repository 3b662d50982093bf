/**
 * The reference verdict (docs/datapath.md steps 3-7) on hand-written datapath states.
 */
import { describe, expect, test } from 'vitest';
import {
  PROTO_ANY, PROTO_ICMP, PROTO_SCTP, PROTO_TCP, PROTO_UDP, type DatapathState, type PolicyEntry,
} from '../../../pkg/datapath/types.ts';
import { IDENTITY_ANY, IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_WORLD } from '../../../pkg/identity/reserved.ts';
import { evaluate, explain, portPrefixLen, type VerdictQuery } from '../../../pkg/policy/evaluate.ts';
import type { CompileResult } from '../../../pkg/policy/types.ts';

const E = 7;
const WEB = 300;
const DB = 301;
const CIDR = 0x01000005;

const allow = (peer: number, protocol: number, port: number, endPort: number, ruleId: number, direction: 'ingress' | 'egress' = 'ingress', proxyPort = 0): PolicyEntry =>
  ({ endpointId: E, direction, peer, protocol, port, endPort, ruleId, proxyPort });

function state(policy: PolicyEntry[], extra: Partial<DatapathState> = {}): DatapathState {
  return {
    endpoints: [{ ifindex: 3, endpointId: E, identity: DB, ipv4: '10.0.0.7', ingressEnforced: true, egressEnforced: false }],
    ipcache: [
      { cidr: '10.0.0.0/24', identity: WEB },
      { cidr: '10.0.0.9/32', identity: DB },
      { cidr: '192.168.0.10/32', identity: IDENTITY_HOST },
      { cidr: '192.168.0.11/32', identity: IDENTITY_REMOTE_NODE },
    ],
    policy,
    cidrs: [],
    ...extra,
  };
}

const q = (remoteIp: string, protocol = PROTO_TCP, port = 80, direction: 'ingress' | 'egress' = 'ingress'): VerdictQuery =>
  ({ endpointId: E, direction, remoteIp, protocol, port });

describe('evaluate', () => {
  const cases: { name: string; policy: PolicyEntry[]; query: VerdictQuery; want: Partial<ReturnType<typeof evaluate>> }[] = [
    { name: 'ipcache is longest-prefix: a /32 inside a /24 has its own identity', policy: [allow(WEB, PROTO_TCP, 80, 80, 11)], query: q('10.0.0.9'), want: { allowed: false, remoteIdentity: DB, reason: 'default-deny' } },
    { name: 'an address in the /24 gets its identity', policy: [allow(WEB, PROTO_TCP, 80, 80, 11)], query: q('10.0.0.3'), want: { allowed: true, ruleId: 11, peerIdentity: WEB } },
    { name: 'an ipcache miss is world', policy: [allow(IDENTITY_WORLD, PROTO_TCP, 0, 0, 12)], query: q('8.8.8.8', PROTO_TCP, 443), want: { allowed: true, remoteIdentity: IDENTITY_WORLD, ruleId: 12 } },
    { name: 'port range is inclusive at both ends', policy: [allow(WEB, PROTO_TCP, 80, 90, 13)], query: q('10.0.0.3', PROTO_TCP, 90), want: { allowed: true } },
    { name: 'port past the range is denied', policy: [allow(WEB, PROTO_TCP, 80, 90, 13)], query: q('10.0.0.3', PROTO_TCP, 91), want: { allowed: false } },
    { name: 'port 0 in an entry means every port of its protocol', policy: [allow(WEB, PROTO_UDP, 0, 0, 14)], query: q('10.0.0.3', PROTO_UDP, 5353), want: { allowed: true } },
    { name: 'protocol must match', policy: [allow(WEB, PROTO_UDP, 0, 0, 14)], query: q('10.0.0.3', PROTO_TCP, 53), want: { allowed: false } },
    { name: 'SCTP entries do not open TCP', policy: [allow(WEB, PROTO_SCTP, 80, 80, 15)], query: q('10.0.0.3', PROTO_TCP, 80), want: { allowed: false } },
    { name: 'protocol any matches ICMP', policy: [allow(WEB, PROTO_ANY, 0, 0, 16)], query: q('10.0.0.3', PROTO_ICMP, 0), want: { allowed: true } },
    { name: 'a TCP all-ports entry does not match ICMP', policy: [allow(WEB, PROTO_TCP, 0, 0, 17)], query: q('10.0.0.3', PROTO_ICMP, 0), want: { allowed: false } },
    { name: 'any-peer entries match every remote', policy: [allow(IDENTITY_ANY, PROTO_TCP, 80, 80, 18)], query: q('8.8.8.8'), want: { allowed: true, ruleId: 18 } },
    { name: 'a specific peer is reported over any peer', policy: [allow(IDENTITY_ANY, PROTO_TCP, 80, 80, 1), allow(WEB, PROTO_TCP, 0, 0, 99)], query: q('10.0.0.3'), want: { ruleId: 99 } },
    { name: 'an exact port is reported over a range containing it', policy: [allow(WEB, PROTO_TCP, 70, 90, 1), allow(WEB, PROTO_TCP, 80, 80, 50)], query: q('10.0.0.3'), want: { ruleId: 50 } },
    { name: 'a range is reported over every port of the protocol', policy: [allow(WEB, PROTO_TCP, 0, 0, 1), allow(WEB, PROTO_TCP, 80, 81, 51)], query: q('10.0.0.3', PROTO_TCP, 81), want: { ruleId: 51 } },
    { name: 'equal matches: the lowest rule id is reported', policy: [allow(WEB, PROTO_TCP, 80, 80, 9), allow(WEB, PROTO_TCP, 80, 80, 5)], query: q('10.0.0.3'), want: { ruleId: 5 } },
    { name: 'the narrowest port range is reported', policy: [allow(WEB, PROTO_TCP, 1, 65535, 1), allow(WEB, PROTO_TCP, 80, 80, 50)], query: q('10.0.0.3'), want: { ruleId: 50 } },
    { name: 'a specific protocol is reported over any protocol', policy: [allow(WEB, PROTO_ANY, 0, 0, 1), allow(WEB, PROTO_TCP, 0, 0, 60)], query: q('10.0.0.3'), want: { ruleId: 60 } },
    { name: 'the node itself always reaches the pod', policy: [], query: q('192.168.0.10'), want: { allowed: true, reason: 'node', ruleId: 0 } },
    { name: 'another node does not', policy: [], query: q('192.168.0.11'), want: { allowed: false, reason: 'default-deny', remoteIdentity: IDENTITY_REMOTE_NODE } },
    { name: 'a direction that is not enforced allows everything', policy: [], query: q('8.8.8.8', PROTO_UDP, 53, 'egress'), want: { allowed: true, reason: 'not-enforced' } },
    { name: 'the proxy port of the deciding entry is reported', policy: [allow(WEB, PROTO_TCP, 80, 80, 70, 'ingress', 15001)], query: q('10.0.0.3'), want: { allowed: true, proxyPort: 15001 } },
  ];
  test.each(cases)('$name', ({ policy, query, want }) => {
    expect(evaluate(state(policy), query)).toMatchObject(want);
  });

  test('portPrefixLen follows the aligned split of a range', () => {
    expect(portPrefixLen(80, 80, 80)).toBe(16);
    expect(portPrefixLen(80, 95, 90)).toBe(12);
    expect(portPrefixLen(63, 100, 63)).toBe(16);
    expect(portPrefixLen(63, 100, 70)).toBe(11); // 64-95
    expect(portPrefixLen(63, 100, 97)).toBe(14); // 96-99
    expect(portPrefixLen(63, 100, 100)).toBe(16);
    expect(portPrefixLen(0, 65535, 1234)).toBe(0);
    expect(portPrefixLen(1, 65535, 1)).toBe(16);
    expect(portPrefixLen(1, 65535, 40000)).toBe(1); // 32768-65535
  });

  test('host traffic on egress is not special (step 3 is ingress only)', () => {
    const s = state([]);
    s.endpoints[0]!.egressEnforced = true;
    expect(evaluate(s, q('192.168.0.10', PROTO_TCP, 10250, 'egress'))).toMatchObject({ allowed: false, reason: 'default-deny' });
  });

  describe('cidrs (step 6)', () => {
    const cidrs = [
      { endpointId: E, direction: 'ingress' as const, cidr: '10.0.0.0/8', identity: CIDR },
      { endpointId: E, direction: 'ingress' as const, cidr: '10.0.0.9/32', identity: IDENTITY_WORLD },
    ];
    test('consulted when the ipcache identity allows nothing', () => {
      const s = state([allow(CIDR, PROTO_TCP, 443, 443, 21)], { cidrs });
      expect(evaluate(s, q('10.0.0.3', PROTO_TCP, 443))).toMatchObject({ allowed: true, peerIdentity: CIDR, remoteIdentity: WEB, ruleId: 21, cidr: '10.0.0.0/8' });
      expect(evaluate(s, q('10.0.0.3', PROTO_TCP, 80))).toMatchObject({ allowed: false, cidr: '10.0.0.0/8' });
    });
    test('an except prefix maps to world, which allows nothing', () => {
      const s = state([allow(CIDR, PROTO_TCP, 0, 0, 21)], { cidrs });
      expect(evaluate(s, q('10.0.0.9'))).toMatchObject({ allowed: false, cidr: '10.0.0.9/32' });
    });
    test('not consulted when the identity already allows (attribution stays on the identity)', () => {
      const s = state([allow(CIDR, PROTO_TCP, 0, 0, 21), allow(WEB, PROTO_TCP, 80, 80, 22)], { cidrs });
      expect(evaluate(s, q('10.0.0.3'))).toMatchObject({ allowed: true, ruleId: 22, peerIdentity: WEB });
    });
    test('per endpoint and direction', () => {
      const s = state([allow(CIDR, PROTO_TCP, 0, 0, 21, 'egress')], { cidrs: cidrs.map((c) => ({ ...c, direction: 'egress' as const })) });
      expect(evaluate(s, q('10.0.0.3'))).toMatchObject({ allowed: false });
    });
  });

  test('errors: unknown endpoint, invalid address', () => {
    expect(() => evaluate(state([]), { ...q('10.0.0.3'), endpointId: 99 })).toThrow(expect.objectContaining({ code: 'PAL_EVAL_NO_ENDPOINT' }));
    expect(() => evaluate(state([]), q('10.0.0.300'))).toThrow(expect.objectContaining({ code: 'PAL_EVAL_BAD_IP' }));
  });

  test('explain names the policy and rule that decided', () => {
    const s = state([allow(WEB, PROTO_TCP, 80, 80, 11)]);
    const result: CompileResult = {
      revision: 1, state: s, problems: [],
      rules: new Map([[11, { ruleId: 11, policy: 'NetworkPolicy:x/web', direction: 'ingress', ruleIndex: 2 }]]),
      endpoints: new Map([[E, { endpointId: E, pod: 'x/db', identity: DB, ingressEnforced: true, egressEnforced: false, ingressPolicies: ['NetworkPolicy:x/web'], egressPolicies: [] }]]),
      identities: new Map([[WEB, { namespace: 'x', 'pod:app': 'web' }]]),
    };
    const qa = q('10.0.0.3');
    expect(explain(result, qa, evaluate(s, qa))).toBe('allowed by NetworkPolicy:x/web ingress[2]: peer 300 (namespace=x, pod:app=web)');
    const qd = q('8.8.8.8');
    expect(explain(result, qd, evaluate(s, qd))).toBe('denied: no rule allows peer 2 (world); isolated for ingress by NetworkPolicy:x/web');
  });
});
