/**
 * The programs under BPF_PROG_TEST_RUN with crafted frames: each case runs the real
 * from_pod/to_pod program (skb->ifindex set through ctx_in, so the endpoint lookup is the
 * real one) against maps written by LinuxDatapath, and checks the verdict against both
 * the expectation and the in-memory model (pkg/datapath/memory).
 */
import { beforeAll, expect, test } from 'vitest';
import { ensureBpffs, LinuxDatapath } from '../../../pkg/datapath/linux/datapath.ts';
import type { DatapathState, FlowEvent } from '../../../pkg/datapath/types.ts';
import { describePrivileged } from '../../helpers/privileged.ts';
import { useProgRun } from '../../helpers/progrun.ts';
import { allowPeer as allow, change, EP, ID_CIDR, ID_PEER, ID_POD, PEER, POD } from '../../helpers/state.ts';
import { bpffsDir, dropBpffs, sh } from './env.ts';
import type { FrameSpec } from './packets.ts';

const HOST = '192.168.77.1';

describePrivileged('datapath programs under BPF_PROG_TEST_RUN', () => {
  const rig = useProgRun('prg');
  const { prefix, model, apply: both, judge } = rig;
  let dp: LinuxDatapath;
  let ifOther = 0;

  const tcpIn = (dport: number, over: Partial<FrameSpec> = {}): Omit<FrameSpec, 'ifindex'> =>
    ({ direction: 'ingress', src: PEER, dst: POD, protocol: 6, sport: 40000, dport, ...over });

  beforeAll(async () => {
    dp = rig.dp;
    ifOther = rig.ifOther;
    await both(change({
      endpoints: [{ ifindex: rig.ifPod, endpointId: EP, identity: ID_POD, ipv4: POD, ingressEnforced: true, egressEnforced: true }],
      ipcache: [{ cidr: `${POD}/32`, identity: ID_POD }, { cidr: `${PEER}/32`, identity: ID_PEER },
        { cidr: `${HOST}/32`, identity: 1 }],
    }));
  });

  test('default deny, then an exact-port allow, both directions', async () => {
    expect(judge(tcpIn(80))).toBe('dropped');
    expect(judge({ direction: 'egress', src: POD, dst: PEER, protocol: 6, sport: 41000, dport: 80 })).toBe('dropped');
    await both(change({ policy: [allow({}), allow({ direction: 'egress', ruleId: 2 })] }));
    expect(judge(tcpIn(80))).toBe('allowed');
    expect(judge(tcpIn(81))).toBe('dropped');
    expect(judge({ direction: 'egress', src: POD, dst: PEER, protocol: 6, sport: 41000, dport: 80 })).toBe('allowed');
  });

  test('a cached forward verdict is re-judged after every apply (NETPOL 25)', async () => {
    const gen = await dp.policyGeneration();
    await both(change({ policy: [allow({ port: 6060, endPort: 6060, ruleId: 60 })] }));
    expect(await dp.policyGeneration()).toBe(gen + 1);
    const fwd = tcpIn(6060, { sport: 45000, tcpFlags: 0x10 });
    expect(judge(fwd)).toBe('allowed');
    expect(judge(fwd)).toBe('allowed'); // served from the conntrack cache
    const cached = (await dp.conntrack()).find((e) => e.sport === 45000);
    expect(cached).toMatchObject({ ruleId: 60, generation: gen + 1, direction: 'ingress' });
    await both(change({}, { policy: [allow({ port: 6060, endPort: 6060, ruleId: 60 })] }));
    expect(judge(fwd)).toBe('dropped');
    // The flow lost its reply path as well.
    expect(judge({ direction: 'egress', src: POD, dst: PEER, protocol: 6, sport: 6060, dport: 45000, tcpFlags: 0x10 })).toBe('dropped');
    expect((await dp.conntrack()).find((e) => e.sport === 45000)).toBeUndefined();
  });

  test('port range edges: port-1, port, endPort-1, endPort, endPort+1', async () => {
    await both(change({ policy: [allow({ port: 30000, endPort: 30999, ruleId: 3 })] }));
    const got = [29999, 30000, 30998, 30999, 31000].map((p) => judge(tcpIn(p, { sport: 42000 })));
    expect(got).toEqual(['dropped', 'allowed', 'allowed', 'allowed', 'dropped']);
  });

  test('reply of an allowed egress flow passes ingress default deny (UDP), a non-reply does not', async () => {
    await both(change({ policy: [allow({ direction: 'egress', protocol: 17, port: 53, endPort: 53 })] }));
    expect(judge({ direction: 'egress', src: POD, dst: PEER, protocol: 17, sport: 5353, dport: 53 })).toBe('allowed');
    expect(judge({ direction: 'ingress', src: PEER, dst: POD, protocol: 17, sport: 53, dport: 5353 })).toBe('allowed');
    expect(judge({ direction: 'ingress', src: PEER, dst: POD, protocol: 17, sport: 53, dport: 5354 })).toBe('dropped');
  });

  test('ipBlock with except via the cidrs map', async () => {
    await both(change({
      cidrs: [
        { endpointId: EP, direction: 'ingress', cidr: '172.16.0.0/12', identity: ID_CIDR },
        { endpointId: EP, direction: 'ingress', cidr: '172.17.0.0/16', identity: 2 },
      ],
      policy: [allow({ peer: ID_CIDR, port: 443, endPort: 443, ruleId: 4 })],
    }));
    expect(judge(tcpIn(443, { src: '172.16.1.1' }))).toBe('allowed');
    expect(judge(tcpIn(443, { src: '172.17.1.1' }))).toBe('dropped');
    expect(judge(tcpIn(443, { src: '172.31.255.254' }))).toBe('allowed');
    expect(judge(tcpIn(443, { src: '172.32.0.1' }))).toBe('dropped');
  });

  test('protocol-only rules: every TCP port opens no UDP and no ICMP; protocol any opens ICMP', async () => {
    const other = '10.244.9.9';
    await both(change({ ipcache: [{ cidr: `${other}/32`, identity: 3000 }],
      policy: [allow({ peer: 3000, port: 0, endPort: 0, ruleId: 5 })] }));
    expect(judge(tcpIn(12345, { src: other }))).toBe('allowed');
    expect(judge(tcpIn(12345, { src: other, protocol: 17 }))).toBe('dropped');
    expect(judge({ direction: 'ingress', src: other, dst: POD, protocol: 1, icmpType: 8, icmpId: 3 })).toBe('dropped');
    await both(change({ policy: [allow({ peer: 3000, protocol: 0, port: 0, endPort: 0, ruleId: 6 })] }));
    expect(judge({ direction: 'ingress', src: other, dst: POD, protocol: 1, icmpType: 8, icmpId: 3 })).toBe('allowed');
    // GRE: no ports, only protocol-any entries apply.
    expect(judge({ direction: 'ingress', src: other, dst: POD, protocol: 47 })).toBe('allowed');
  });

  test('SCTP is its own protocol', async () => {
    const s = '10.244.9.10';
    await both(change({ ipcache: [{ cidr: `${s}/32`, identity: 3001 }],
      policy: [allow({ peer: 3001, protocol: 132, port: 5000, endPort: 5000, ruleId: 7 })] }));
    expect(judge(tcpIn(5000, { src: s, protocol: 132 }))).toBe('allowed');
    expect(judge(tcpIn(5000, { src: s }))).toBe('dropped');
    expect(judge(tcpIn(5001, { src: s, protocol: 132 }))).toBe('dropped');
  });

  test('ICMP echo: request allowed by protocol any, reply passes, an ICMP error about the flow passes', async () => {
    await both(change({ policy: [allow({ direction: 'egress', peer: ID_PEER, protocol: 0, port: 0, endPort: 0, ruleId: 8 })] }));
    expect(judge({ direction: 'egress', src: POD, dst: PEER, protocol: 1, icmpType: 8, icmpId: 77 })).toBe('allowed');
    expect(judge({ direction: 'ingress', src: PEER, dst: POD, protocol: 1, icmpType: 0, icmpId: 77 })).toBe('allowed');
    expect(judge({ direction: 'ingress', src: PEER, dst: POD, protocol: 1, icmpType: 8, icmpId: 77 })).toBe('dropped');
    expect(judge({ direction: 'egress', src: POD, dst: PEER, protocol: 17, sport: 6000, dport: 7000 })).toBe('allowed');
    expect(judge({ direction: 'ingress', src: '10.1.1.1', dst: POD, protocol: 1, icmpType: 3,
      inner: { src: POD, dst: PEER, protocol: 17, sport: 6000, dport: 7000 } })).toBe('allowed');
    expect(judge({ direction: 'ingress', src: '10.1.1.1', dst: POD, protocol: 1, icmpType: 3,
      inner: { src: POD, dst: PEER, protocol: 17, sport: 6001, dport: 7000 } })).toBe('dropped');
  });

  test('node to pod: allowed under ingress default deny, the pod replies under egress default deny', () => {
    expect(judge({ direction: 'ingress', src: HOST, dst: POD, protocol: 6, sport: 50000, dport: 9999 })).toBe('allowed');
    expect(judge({ direction: 'egress', src: POD, dst: HOST, protocol: 6, sport: 9999, dport: 50000, tcpFlags: 0x12 })).toBe('allowed');
    expect(judge({ direction: 'egress', src: POD, dst: HOST, protocol: 6, sport: 41234, dport: 10250 })).toBe('dropped');
  });

  test('malformed and truncated frames drop as malformed', async () => {
    const before = (await dp.counters()).dropped.ingress.malformed ?? 0;
    const cases: FrameSpec['corrupt'][] = [
      // (BPF_PROG_TEST_RUN itself refuses IPv4 frames shorter than 14 + 20 bytes, so a
      // cut IP header cannot be sent from here; the parser's load checks cover it.)
      { truncateTo: 40 },           // frame cut inside the TCP header, total length says more
      { l4Bytes: 0 },               // IP header only, TCP header missing
      { ihl: 4 },                   // IHL below 5
      { version: 6 },               // IPv6 inside an IPv4 ethertype
      { totLenDelta: 100 },         // total length beyond the frame
      { totLenDelta: -30 },         // total length shorter than the headers claim
      { l4Bytes: 10 },              // TCP header cut
    ];
    for (const corrupt of cases) expect(judge(tcpIn(80, { corrupt })), JSON.stringify(corrupt)).toBe('dropped');
    expect((await dp.counters()).dropped.ingress.malformed).toBe(before + cases.length);
  });

  test('IP options: L4 is found after them', () => {
    // Four NOP options: if the parser ignored IHL it would read them as the ports.
    expect(judge(tcpIn(80, { ipOptions: [1, 1, 1, 1] }))).toBe('allowed');
    expect(judge(tcpIn(81, { ipOptions: [1, 1, 1, 1, 1, 1, 1, 0] }))).toBe('dropped');
  });

  test('fragments: later fragments follow an allowed first one; orphans and tiny first fragments drop', async () => {
    await both(change({ policy: [allow({ protocol: 17, port: 8472, endPort: 8472, ruleId: 9 })] }));
    const later = { direction: 'ingress' as const, src: PEER, dst: POD, protocol: 17, fragment: 'later' as const };
    expect(judge({ ...later, ipId: 500 })).toBe('dropped');
    expect(judge(tcpIn(8472, { protocol: 17, fragment: 'first', ipId: 501, payload: 100 }))).toBe('allowed');
    expect(judge({ ...later, ipId: 501 })).toBe('allowed');
    expect(judge(tcpIn(8473, { protocol: 17, fragment: 'first', ipId: 502, payload: 100 }))).toBe('dropped');
    expect(judge({ ...later, ipId: 502 })).toBe('dropped');
    expect(judge(tcpIn(80, { fragment: 'first', ipId: 503, corrupt: { l4Bytes: 8 } }))).toBe('dropped');
    expect((await dp.counters()).dropped.ingress.fragment).toBeGreaterThanOrEqual(2);
  });

  test('ARP passes; other L3 drops where enforced; an interface without endpoint drops', () => {
    expect(judge(tcpIn(80, { ethertype: 0x0806 }))).toBe('allowed');
    expect(judge(tcpIn(80, { ethertype: 0x86dd }))).toBe('dropped');
    expect(judge(tcpIn(80, { ifindex: ifOther }))).toBe('dropped');
  });

  test('events carry the deciding rule id of a new flow and the reason of a drop', async () => {
    const it = dp.events()[Symbol.asyncIterator]();
    await both(change({ policy: [allow({ port: 7070, endPort: 7070, ruleId: 4242 })] }));
    expect(judge(tcpIn(7070, { sport: 43210 }))).toBe('allowed');
    expect(judge(tcpIn(7071, { sport: 43210 }))).toBe('dropped');
    const got: FlowEvent[] = [];
    const deadline = Date.now() + 5000;
    while (got.length < 2 && Date.now() < deadline) {
      const r = await Promise.race([it.next(), new Promise<null>((res) => setTimeout(() => res(null), 5000))]);
      if (!r || r.done) break;
      if (r.value.srcPort === 43210) got.push(r.value);
    }
    await it.return?.();
    expect(got.map((e) => [e.verdict, e.dstPort, e.ruleId, e.reason, e.endpointId, e.peerIdentity])).toEqual([
      ['allowed', 7070, 4242, undefined, EP, ID_PEER],
      ['dropped', 7071, 0, 'policy-denied', EP, ID_PEER],
    ]);
  });

  test('a change with one bad entry is refused with a stable code and writes nothing', async () => {
    const before = await dp.dump();
    const gen = await dp.policyGeneration();
    const bad = change({ policy: [allow({ port: 1111, endPort: 1111 }), allow({ port: 2000, endPort: 1999 })],
      ipcache: [{ cidr: '10.77.0.0/16', identity: 5 }] });
    await expect(dp.apply(bad)).rejects.toMatchObject({ code: 'PAL_DATAPATH_INVALID_ENTRY' });
    expect(await dp.dump()).toEqual(before);
    expect(await dp.policyGeneration()).toBe(gen);
  });

  test('pins of another layout are refused at init with the fix in the message', async () => {
    const other = bpffsDir(`${prefix}x`);
    try {
      await ensureBpffs(other);
      sh('mkdir', ['-p', `${other}/palisade/maps`]);
      // A conntrack map as an older build (16-byte values) would have pinned it.
      sh('bpftool', ['map', 'create', `${other}/palisade/maps/pal_conntrack`, 'type', 'lru_hash',
        'key', '20', 'value', '16', 'entries', '16', 'name', 'pal_conntrack']);
      const stale = new LinuxDatapath({ bpffsRoot: other });
      await expect(stale.init()).rejects.toThrow(/pal_conntrack has type\/key\/value 9\/20\/16.*remove/);
      await stale.close();
    } finally {
      dropBpffs(other);
    }
  });

  test('dump reads back what was applied; a delete removes exactly its keys', async () => {
    const wanted = await model.dump();
    const got = await dp.dump();
    const sort = (s: DatapathState) => JSON.stringify(Object.fromEntries(
      Object.entries(s).map(([k, v]) => [k, (v as object[]).map((x) => JSON.stringify(x)).sort()])));
    expect(sort(got)).toEqual(sort(wanted));
    await both(change({}, { policy: [allow({ port: 30000, endPort: 30999, ruleId: 3 })] }));
    expect(judge(tcpIn(30500, { sport: 44000 }))).toBe('dropped');
    expect(sort(await dp.dump())).toEqual(sort(await model.dump()));
  });
});
