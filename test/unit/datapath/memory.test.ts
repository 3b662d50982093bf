/**
 * The in-memory datapath's per-packet model (docs/datapath.md): the same cases the
 * programs are tested with under BPF_PROG_TEST_RUN (test/system/datapath/prog-run.test.ts).
 */
import { beforeEach, describe, expect, test } from 'vitest';
import { MemoryDatapath, type Packet } from '../../../pkg/datapath/memory/datapath.ts';
import { ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_ECHOREPLY, TCP_ACK, TCP_SYN } from '../../../pkg/datapath/memory/datapath.ts';
import type { FlowEvent } from '../../../pkg/datapath/types.ts';
import { allowPeer as allow, change, EP, ID_CIDR, ID_PEER, ID_POD, PEER, POD } from '../../helpers/state.ts';

const HOST = '192.168.1.1';
const IF_POD = 10;
const IF_PEER = 20;
const EP_PEER = 200;

/** A TCP packet from PEER to POD entering POD (its ingress). */
const tcpIn = (dport: number, over: Partial<Packet> = {}): Packet => ({
  ifindex: IF_POD, direction: 'ingress', srcIp: PEER, dstIp: POD, protocol: 6,
  srcPort: 40000, dstPort: dport, tcpFlags: TCP_SYN, ...over,
});

let dp: MemoryDatapath;

beforeEach(async () => {
  dp = new MemoryDatapath();
  await dp.init();
  await dp.apply(change({
    endpoints: [
      { ifindex: IF_POD, endpointId: EP, identity: ID_POD, ipv4: POD, ingressEnforced: true, egressEnforced: true },
      { ifindex: IF_PEER, endpointId: EP_PEER, identity: ID_PEER, ipv4: PEER, ingressEnforced: false, egressEnforced: false },
    ],
    ipcache: [
      { cidr: `${POD}/32`, identity: ID_POD }, { cidr: `${PEER}/32`, identity: ID_PEER },
      { cidr: `${HOST}/32`, identity: 1 },
    ],
  }));
});

describe('policy lookup', () => {
  test('default deny of an enforced direction', () => {
    expect(dp.verdict(tcpIn(80))).toMatchObject({ verdict: 'dropped', reason: 'policy-denied', by: 'default-deny' });
  });

  test('an unenforced direction allows everything', () => {
    const p: Packet = { ifindex: IF_PEER, direction: 'ingress', srcIp: POD, dstIp: PEER, protocol: 17, srcPort: 1, dstPort: 53 };
    expect(dp.verdict(p)).toMatchObject({ verdict: 'allowed', by: 'unenforced' });
  });

  test('port range edges: port-1, port, endPort-1, endPort, endPort+1', async () => {
    await dp.apply(change({ policy: [allow({ port: 8000, endPort: 8100, ruleId: 5 })] }));
    const got = [7999, 8000, 8099, 8100, 8101].map((p) => dp.verdict(tcpIn(p)).verdict);
    expect(got).toEqual(['dropped', 'allowed', 'allowed', 'allowed', 'dropped']);
  });

  test('the deciding rule id is reported, the most specific entry wins', async () => {
    await dp.apply(change({ policy: [allow({ port: 0, endPort: 0, ruleId: 3 }), allow({ ruleId: 4 })] }));
    expect(dp.verdict(tcpIn(80)).ruleId).toBe(4);
    expect(dp.verdict(tcpIn(81)).ruleId).toBe(3);
  });

  test('any-peer entry allows an unknown (world) source', async () => {
    await dp.apply(change({ policy: [allow({ peer: 0 })] }));
    expect(dp.verdict(tcpIn(80, { srcIp: '8.8.8.8' }))).toMatchObject({ verdict: 'allowed', peerIdentity: 2 });
  });

  test('a TCP entry opens neither UDP nor SCTP; an SCTP entry opens only SCTP', async () => {
    await dp.apply(change({ policy: [allow({ protocol: 132 })] }));
    expect(dp.verdict(tcpIn(80)).verdict).toBe('dropped');
    expect(dp.verdict(tcpIn(80, { protocol: 17 })).verdict).toBe('dropped');
    expect(dp.verdict(tcpIn(80, { protocol: 132 })).verdict).toBe('allowed');
  });

  test('ICMP passes only a protocol-any entry (NETPOL 20)', async () => {
    const ping: Packet = { ifindex: IF_POD, direction: 'ingress', srcIp: PEER, dstIp: POD, protocol: 1, icmpType: ICMP_ECHO, icmpId: 7 };
    await dp.apply(change({ policy: [allow({ port: 0, endPort: 0 })] }));
    expect(dp.verdict(ping).verdict).toBe('dropped');
    await dp.apply(change({ policy: [allow({ protocol: 0, port: 0, endPort: 0, ruleId: 9 })] }));
    expect(dp.verdict(ping)).toMatchObject({ verdict: 'allowed', ruleId: 9 });
  });

  test('ipBlock with except: the excepted /16 maps to world, the rest to the CIDR identity', async () => {
    await dp.apply(change({
      cidrs: [
        { endpointId: EP, direction: 'ingress', cidr: '172.16.0.0/12', identity: ID_CIDR },
        { endpointId: EP, direction: 'ingress', cidr: '172.17.0.0/16', identity: 2 },
      ],
      policy: [allow({ peer: ID_CIDR, ruleId: 11 })],
    }));
    expect(dp.verdict(tcpIn(80, { srcIp: '172.16.5.5' }))).toMatchObject({ verdict: 'allowed', by: 'cidr', ruleId: 11 });
    expect(dp.verdict(tcpIn(80, { srcIp: '172.17.5.5' })).verdict).toBe('dropped');
    expect(dp.verdict(tcpIn(80, { srcIp: '172.32.0.1' })).verdict).toBe('dropped');
  });
});

describe('state', () => {
  test('the reply of an allowed egress flow passes ingress default deny, UDP included', async () => {
    await dp.apply(change({ policy: [allow({ direction: 'egress', protocol: 17, port: 53, endPort: 53 })] }));
    const out: Packet = { ifindex: IF_POD, direction: 'egress', srcIp: POD, dstIp: PEER, protocol: 17, srcPort: 5000, dstPort: 53 };
    expect(dp.verdict(out).verdict).toBe('allowed');
    const back: Packet = { ifindex: IF_POD, direction: 'ingress', srcIp: PEER, dstIp: POD, protocol: 17, srcPort: 53, dstPort: 5000 };
    expect(dp.verdict(back)).toMatchObject({ verdict: 'allowed', by: 'reply' });
    // A different source port is not a reply.
    expect(dp.verdict({ ...back, srcPort: 54 }).verdict).toBe('dropped');
  });

  test('a flow tracked for one endpoint is no reply path for another', async () => {
    const out: Packet = { ifindex: IF_PEER, direction: 'egress', srcIp: PEER, dstIp: POD, protocol: 6, srcPort: 40000, dstPort: 80 };
    expect(dp.verdict(out).verdict).toBe('allowed'); // PEER unenforced: tracked for EP_PEER
    expect(dp.verdict(tcpIn(80)).verdict).toBe('dropped'); // POD's ingress still decides
    const spoofedReply: Packet = { ifindex: IF_POD, direction: 'egress', srcIp: POD, dstIp: PEER, protocol: 6, srcPort: 80, dstPort: 40000 };
    expect(dp.verdict(spoofedReply).verdict).toBe('dropped');
  });

  test('NETPOL 25: after the allow is removed, forward packets of an open flow drop, its replies stop too', async () => {
    await dp.apply(change({ policy: [allow({})] }));
    expect(dp.verdict(tcpIn(80)).verdict).toBe('allowed');
    expect(dp.verdict(tcpIn(80, { tcpFlags: TCP_ACK })).verdict).toBe('allowed');
    await dp.apply(change({}, { policy: [allow({})] }));
    expect(dp.verdict(tcpIn(80, { tcpFlags: TCP_ACK })).verdict).toBe('dropped');
  });

  test('node to pod is allowed under ingress default deny and the pod replies under egress default deny', () => {
    const probe: Packet = { ifindex: IF_POD, direction: 'ingress', srcIp: HOST, dstIp: POD, protocol: 6, srcPort: 50000, dstPort: 8080 };
    expect(dp.verdict(probe)).toMatchObject({ verdict: 'allowed', by: 'host', ruleId: 0 });
    const reply: Packet = { ifindex: IF_POD, direction: 'egress', srcIp: POD, dstIp: HOST, protocol: 6, srcPort: 8080, dstPort: 50000 };
    expect(dp.verdict(reply)).toMatchObject({ verdict: 'allowed', by: 'reply' });
    // The pod opening a connection to its node is an egress policy matter.
    expect(dp.verdict({ ...reply, srcPort: 41000, dstPort: 10250 }).verdict).toBe('dropped');
  });

  test('ICMP echo reply passes as a reply; an echo request with the same id does not', async () => {
    await dp.apply(change({ policy: [allow({ direction: 'egress', protocol: 0, port: 0, endPort: 0 })] }));
    const req: Packet = { ifindex: IF_POD, direction: 'egress', srcIp: POD, dstIp: PEER, protocol: 1, icmpType: ICMP_ECHO, icmpId: 9 };
    expect(dp.verdict(req).verdict).toBe('allowed');
    const rep: Packet = { ifindex: IF_POD, direction: 'ingress', srcIp: PEER, dstIp: POD, protocol: 1, icmpType: ICMP_ECHOREPLY, icmpId: 9 };
    expect(dp.verdict(rep).by).toBe('reply');
    expect(dp.verdict({ ...rep, icmpType: ICMP_ECHO }).verdict).toBe('dropped');
  });

  test('an ICMP error about a tracked flow passes as related', async () => {
    await dp.apply(change({ policy: [allow({ direction: 'egress' })] }));
    const out: Packet = { ifindex: IF_POD, direction: 'egress', srcIp: POD, dstIp: PEER, protocol: 6, srcPort: 40001, dstPort: 80 };
    expect(dp.verdict(out).verdict).toBe('allowed');
    const err: Packet = { ifindex: IF_POD, direction: 'ingress', srcIp: '10.9.9.9', dstIp: POD, protocol: 1,
      icmpType: ICMP_DEST_UNREACH, inner: { srcIp: POD, dstIp: PEER, protocol: 6, srcPort: 40001, dstPort: 80 } };
    expect(dp.verdict(err).by).toBe('reply');
    expect(dp.verdict({ ...err, inner: { ...err.inner!, srcPort: 40002 } }).verdict).toBe('dropped');
  });

  test('conntrack entries expire: a UDP reply after the lifetime is judged as new', async () => {
    await dp.apply(change({ policy: [allow({ direction: 'egress', protocol: 17, port: 53, endPort: 53 })] }));
    dp.verdict({ ifindex: IF_POD, direction: 'egress', srcIp: POD, dstIp: PEER, protocol: 17, srcPort: 5000, dstPort: 53, now: 1000 });
    const back: Packet = { ifindex: IF_POD, direction: 'ingress', srcIp: PEER, dstIp: POD, protocol: 17, srcPort: 53, dstPort: 5000 };
    expect(dp.verdict({ ...back, now: 1000 + 119_000 }).verdict).toBe('allowed');
    expect(dp.verdict({ ...back, now: 1000 + 119_000 + 121_000 }).verdict).toBe('dropped');
  });
});

describe('parsing outcomes', () => {
  test('fragments follow their first fragment; an orphan later fragment drops', async () => {
    await dp.apply(change({ policy: [allow({ protocol: 17, port: 9000, endPort: 9000 })] }));
    const first = tcpIn(9000, { protocol: 17, fragment: 'first', ipId: 77 });
    const later: Packet = { ifindex: IF_POD, direction: 'ingress', srcIp: PEER, dstIp: POD, protocol: 17, fragment: 'later', ipId: 77 };
    expect(dp.verdict(later).reason).toBe('fragment');
    expect(dp.verdict(first).verdict).toBe('allowed');
    expect(dp.verdict(later).verdict).toBe('allowed');
    expect(dp.verdict({ ...later, ipId: 78 }).reason).toBe('fragment');
    // A denied first fragment leaves its later fragments without a record.
    expect(dp.verdict(tcpIn(9001, { protocol: 17, fragment: 'first', ipId: 79 })).verdict).toBe('dropped');
    expect(dp.verdict({ ...later, ipId: 79 }).reason).toBe('fragment');
  });

  test('malformed drops, ARP passes, other L3 drops only where enforced, unknown interface drops', () => {
    expect(dp.verdict(tcpIn(80, { malformed: true })).reason).toBe('malformed');
    expect(dp.verdict(tcpIn(80, { l3: 'arp' })).verdict).toBe('allowed');
    expect(dp.verdict(tcpIn(80, { l3: 'other' })).reason).toBe('unsupported-l3');
    expect(dp.verdict(tcpIn(80, { l3: 'other', ifindex: IF_PEER })).verdict).toBe('allowed');
    expect(dp.verdict(tcpIn(80, { ifindex: 999 })).reason).toBe('no-endpoint');
  });
});

describe('events, counters, apply', () => {
  test('a new flow reports its rule once; drops report their reason; counters count packets', async () => {
    await dp.apply(change({ policy: [allow({ ruleId: 42 })] }));
    const seen: FlowEvent[] = [];
    const it = dp.events()[Symbol.asyncIterator]();
    dp.verdict(tcpIn(80));
    dp.verdict(tcpIn(80, { tcpFlags: TCP_ACK }));
    dp.verdict(tcpIn(81));
    seen.push((await it.next()).value as FlowEvent, (await it.next()).value as FlowEvent);
    expect(seen.map((e) => [e.verdict, e.ruleId, e.reason, e.dstPort])).toEqual([
      ['allowed', 42, undefined, 80], ['dropped', 0, 'policy-denied', 81],
    ]);
    expect(await dp.counters()).toEqual({
      allowed: { ingress: 2, egress: 0 }, dropped: { ingress: { 'policy-denied': 1 }, egress: {} },
    });
    await dp.close();
    expect((await it.next()).done).toBe(true);
  });

  test('a bad entry rejects the whole change and changes nothing', async () => {
    const before = await dp.dump();
    await expect(dp.apply(change({ policy: [allow({ ruleId: 1 }), allow({ port: 90, endPort: 80 })] })))
      .rejects.toThrow(/invalid datapath entry/);
    expect(await dp.dump()).toEqual(before);
  });

  test('attach and detach are recorded', async () => {
    await dp.attach(IF_POD);
    await dp.attach(IF_POD);
    await dp.detach(IF_POD);
    expect(dp.attachLog.map((x) => x.op)).toEqual(['attach', 'attach', 'detach']);
    expect(dp.attached.size).toBe(0);
  });
});
