/**
 * The L7 union in the real datapath (bpf/lib/policy.h) under BPF_PROG_TEST_RUN: when the
 * first lookup that matches (the peer's identity, any peer, any pod, the CIDR identity)
 * finds an entry that redirects to the proxy, a later lookup's entry without redirect
 * wins, so the connection is not redirected (an L3/L4 allow without `http` allows every
 * request). No proxy is configured on this test's maps, so a redirected packet is
 * dropped: "allowed" here means "not redirected", "dropped" means "redirected". Egress
 * (from_pod): at to_pod a packet carrying a socket counts as the proxy's own upstream,
 * and BPF_PROG_TEST_RUN gives every packet a dummy socket.
 */
import { beforeAll, expect, test } from 'vitest';
import type { DatapathState, PolicyEntry } from '../../../pkg/datapath/types.ts';
import { IDENTITY_ANY, IDENTITY_CLUSTER_POD } from '../../../pkg/identity/reserved.ts';
import { describePrivileged } from '../../helpers/privileged.ts';
import { useProgRun } from '../../helpers/progrun.ts';
import { change, EP, ID_CIDR, ID_PEER, ID_POD, PEER, POD, policyEntries } from '../../helpers/state.ts';

const PROXY = 15001;

describePrivileged('L7 union in the datapath (BPF_PROG_TEST_RUN)', () => {
  const rig = useProgRun('l7u');

  const apply = (up: Partial<DatapathState>) => rig.dp.apply(change(up));
  const entry = policyEntries({
    endpointId: EP, direction: 'egress', peer: ID_PEER, protocol: 6, port: 0, endPort: 0,
    ruleId: 1, proxyPort: 0,
  });

  /** Runs a TCP SYN from POD to PEER:dport through from_pod. */
  const egress = (dport: number, sport: number): 'allowed' | 'dropped' =>
    rig.verdict({ direction: 'egress', src: POD, dst: PEER, protocol: 6, sport, dport, ifindex: rig.ifPod });
  const ruleOf = async (sport: number) => (await rig.dp.conntrack()).find((e) => e.sport === sport)?.ruleId;

  beforeAll(async () => {
    await apply({
      endpoints: [{ ifindex: rig.ifPod, endpointId: EP, identity: ID_POD, ipv4: POD, ingressEnforced: true, egressEnforced: true }],
      ipcache: [{ cidr: `${POD}/32`, identity: ID_POD }, { cidr: `${PEER}/32`, identity: ID_PEER }],
      cidrs: [{ endpointId: EP, direction: 'egress', cidr: '10.244.0.0/24', identity: ID_CIDR }],
    });
  });

  const cases: { name: string; port: number; entries: Partial<PolicyEntry>[]; want: 'allowed' | 'dropped'; rule?: number }[] = [
    { name: 'a redirect on the pod alone is redirected', port: 8801, entries: [{ proxyPort: PROXY, ruleId: 11 }], want: 'dropped' },
    { name: 'a plain ipBlock allow covering the pod wins', port: 8802, entries: [{ proxyPort: PROXY, ruleId: 21 }, { peer: ID_CIDR, ruleId: 22 }], want: 'allowed', rule: 22 },
    { name: 'a plain any-peer allow wins', port: 8803, entries: [{ proxyPort: PROXY, ruleId: 31 }, { peer: IDENTITY_ANY, ruleId: 32 }], want: 'allowed', rule: 32 },
    { name: 'a plain any-pod allow wins over a redirect on any peer', port: 8804, entries: [{ peer: IDENTITY_ANY, proxyPort: PROXY, ruleId: 41 }, { peer: IDENTITY_CLUSTER_POD, ruleId: 42 }], want: 'allowed', rule: 42 },
    { name: 'redirects on the pod, any peer, any pod and the ipBlock stay redirected', port: 8805, entries: [{ proxyPort: PROXY, ruleId: 51 }, { peer: IDENTITY_ANY, proxyPort: PROXY, ruleId: 52 }, { peer: IDENTITY_CLUSTER_POD, proxyPort: PROXY, ruleId: 53 }, { peer: ID_CIDR, proxyPort: PROXY, ruleId: 54 }], want: 'dropped' },
    { name: 'a plain allow of the pod itself is never redirected', port: 8806, entries: [{ ruleId: 61 }, { peer: IDENTITY_ANY, proxyPort: PROXY, ruleId: 62 }], want: 'allowed', rule: 61 },
  ];
  test.each(cases)('$name', async (k) => {
    await apply({ policy: k.entries.map((e) => entry({ port: k.port, endPort: k.port, ...e })) });
    const sport = 40000 + k.port;
    expect(egress(k.port, sport)).toBe(k.want);
    if (k.rule !== undefined) expect(await ruleOf(sport)).toBe(k.rule);
  });
});
