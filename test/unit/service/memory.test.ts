/** The in-memory model of ClusterIP translation (pkg/datapath/memory/services.ts). */
import { describe, expect, test } from 'vitest';
import { MemoryDatapath, type Packet } from '../../../pkg/datapath/memory/datapath.ts';
import { SVC_HAIRPIN_IPV4 } from '../../../pkg/datapath/service-codec.ts';
import { emptyState, type ServiceEntry } from '../../../pkg/datapath/types.ts';

const A = { ifindex: 10, endpointId: 1, identity: 1001, ipv4: '10.244.0.1' };
const B = { ifindex: 11, endpointId: 2, identity: 1002, ipv4: '10.244.0.2' };
const C = { ifindex: 12, endpointId: 3, identity: 1003, ipv4: '10.244.0.3' };
const VIP = '10.96.0.10';

async function setup(services: ServiceEntry[], egressA = false) {
  const dp = new MemoryDatapath();
  await dp.apply({
    upsert: {
      ...emptyState(),
      endpoints: [A, B, C].map((e) => ({ ...e, ingressEnforced: false, egressEnforced: e === A && egressA })),
      ipcache: [A, B, C].map((e) => ({ cidr: `${e.ipv4}/32`, identity: e.identity })),
      policy: egressA ? [{ endpointId: 1, direction: 'egress', peer: 1002, protocol: 6, port: 8080, endPort: 8080, ruleId: 5, proxyPort: 0 }] : [],
    },
    delete: emptyState(),
  });
  await dp.applyServices(services);
  return dp;
}

const svc = (backends: [string, number][], extra: Partial<ServiceEntry> = {}): ServiceEntry =>
  ({ name: 'x/web', ip: VIP, port: 80, protocol: 6, affinityTimeoutSec: 0, backends: backends.map(([ip, port]) => ({ ip, port })), ...extra });
const out = (sport: number, over: Partial<Packet> = {}): Packet =>
  ({ ifindex: A.ifindex, direction: 'egress', srcIp: A.ipv4, dstIp: VIP, srcPort: sport, dstPort: 80, protocol: 6, tcpFlags: 0x02, now: 1000, ...over });

describe('memory datapath: ClusterIP translation', () => {
  test('translated to a backend, judged there, replies get the ClusterIP back', async () => {
    const dp = await setup([svc([[B.ipv4, 8080]])]);
    const r = dp.send(out(40000));
    expect(r.packet).toMatchObject({ dstIp: B.ipv4, dstPort: 8080, srcIp: A.ipv4 });
    expect(r.verdict?.verdict).toBe('allowed');
    const back = dp.send({ ifindex: A.ifindex, direction: 'ingress', srcIp: B.ipv4, dstIp: A.ipv4, srcPort: 8080, dstPort: 40000, protocol: 6, tcpFlags: 0x12, now: 1001 });
    expect(back.verdict?.by).toBe('reply');
    expect(back.packet).toMatchObject({ srcIp: VIP, srcPort: 80 });
    expect(await dp.serviceCounters()).toMatchObject({ translated: 1, newFlows: 1, reversed: 1 });
  });

  test('egress policy judges the backend: flows hashed to the disallowed backend are dropped and leave nothing', async () => {
    const dp = await setup([svc([[B.ipv4, 8080], [C.ipv4, 8080]])], true);
    const results = Array.from({ length: 20 }, (_, i) => dp.send(out(40000 + i)));
    const toB = results.filter((r) => r.packet.dstIp === B.ipv4);
    const toC = results.filter((r) => r.packet.dstIp === C.ipv4);
    expect(toB.length).toBeGreaterThan(0);
    expect(toC.length).toBeGreaterThan(0);
    expect(toB.every((r) => r.verdict?.verdict === 'allowed')).toBe(true);
    expect(toC.every((r) => r.verdict?.reason === 'policy-denied')).toBe(true);
    expect([...dp.services.nat.values()].filter((v) => !v.reverse)).toHaveLength(toB.length);
  });

  test('an open flow keeps its backend when the Service moves; a new flow takes the new one', async () => {
    const dp = await setup([svc([[B.ipv4, 8080]])]);
    dp.send(out(40000));
    await dp.applyServices([svc([[C.ipv4, 9090]])]);
    expect(dp.send(out(40000, { tcpFlags: 0x10, now: 2000 })).packet).toMatchObject({ dstIp: B.ipv4, dstPort: 8080 });
    expect(dp.send(out(40001, { now: 2000 })).packet).toMatchObject({ dstIp: C.ipv4, dstPort: 9090 });
  });

  test('a SYN reopening a closed tuple picks again; an expired UDP entry too', async () => {
    const dp = await setup([svc([[B.ipv4, 8080]]), svc([[B.ipv4, 53]], { port: 53, protocol: 17 })]);
    dp.send(out(40000));
    dp.send(out(40000, { tcpFlags: 0x11, now: 1100 })); // FIN
    await dp.applyServices([svc([[C.ipv4, 8080]]), svc([[C.ipv4, 53]], { port: 53, protocol: 17 })]);
    expect(dp.send(out(40000, { tcpFlags: 0x10, now: 1200 })).packet.dstIp).toBe(B.ipv4);
    expect(dp.send(out(40000, { tcpFlags: 0x02, now: 1300 })).packet.dstIp).toBe(C.ipv4);
    const udp = (now: number) => out(5000, { protocol: 17, dstPort: 53, tcpFlags: undefined, now });
    await dp.applyServices([svc([[B.ipv4, 8080]]), svc([[B.ipv4, 53]], { port: 53, protocol: 17 })]);
    dp.send(udp(10_000));
    await dp.applyServices([svc([[C.ipv4, 8080]]), svc([[C.ipv4, 53]], { port: 53, protocol: 17 })]);
    expect(dp.send(udp(100_000)).packet.dstIp).toBe(B.ipv4);
    expect(dp.send(udp(100_000 + 120_001)).packet.dstIp).toBe(C.ipv4);
  });

  test('a direct flow on the tuple of a finished translated one drops its claim: replies stay untouched', async () => {
    const dp = await setup([svc([[B.ipv4, 8080]])]);
    dp.send(out(40000));
    dp.send(out(40000, { tcpFlags: 0x14, now: 1100 })); // RST
    dp.send(out(40000, { dstIp: B.ipv4, dstPort: 8080, now: 1200 })); // SYN straight to B, same port
    const reply = dp.send({ ifindex: A.ifindex, direction: 'ingress', srcIp: B.ipv4, dstIp: A.ipv4, srcPort: 8080, dstPort: 40000, protocol: 6, tcpFlags: 0x12, now: 1201 });
    expect(reply.packet).toMatchObject({ srcIp: B.ipv4, srcPort: 8080 });
    expect(dp.services.nat.size).toBe(0);
  });

  test("the backend's ICMP port unreachable about a translated flow quotes the ClusterIP again", async () => {
    const dp = await setup([svc([[B.ipv4, 53]], { port: 53, protocol: 17 })]);
    dp.send(out(5000, { protocol: 17, dstPort: 53, tcpFlags: undefined }));
    const err = dp.send({ ifindex: A.ifindex, direction: 'ingress', srcIp: B.ipv4, dstIp: A.ipv4, protocol: 1, icmpType: 3, now: 1001,
      inner: { srcIp: A.ipv4, dstIp: B.ipv4, srcPort: 5000, dstPort: 53, protocol: 17 } });
    expect(err.verdict?.verdict).toBe('allowed');
    expect(err.packet.srcIp).toBe(VIP);
    expect(err.packet.inner).toMatchObject({ srcIp: A.ipv4, dstIp: VIP, dstPort: 53 });
  });

  test('fragments: later fragments follow the translation of their first one, both ways', async () => {
    const dp = await setup([svc([[B.ipv4, 53]], { port: 53, protocol: 17 })]);
    const first = dp.send(out(5000, { protocol: 17, dstPort: 53, tcpFlags: undefined, fragment: 'first', ipId: 77 }));
    expect(first.packet.dstIp).toBe(B.ipv4);
    const later = dp.send({ ifindex: A.ifindex, direction: 'egress', srcIp: A.ipv4, dstIp: VIP, protocol: 17, fragment: 'later', ipId: 77, now: 1000 });
    expect(later.packet.dstIp).toBe(B.ipv4);
    expect(later.verdict?.verdict).toBe('allowed');
    const other = dp.send({ ifindex: A.ifindex, direction: 'egress', srcIp: A.ipv4, dstIp: VIP, protocol: 17, fragment: 'later', ipId: 78, now: 1000 });
    expect(other.packet.dstIp).toBe(VIP);
    const reply = { ifindex: A.ifindex, direction: 'ingress' as const, srcIp: B.ipv4, dstIp: A.ipv4, protocol: 17, ipId: 9, now: 1001 };
    expect(dp.send({ ...reply, srcPort: 53, dstPort: 5000, fragment: 'first' }).packet.srcIp).toBe(VIP);
    expect(dp.send({ ...reply, fragment: 'later' }).packet.srcIp).toBe(VIP);
  });

  test('SCTP: ports translated both ways; a first fragment needing a port rewrite is dropped as an error', async () => {
    const dp = await setup([svc([[B.ipv4, 6000]], { port: 5000, protocol: 132 }), svc([[C.ipv4, 5001]], { ip: '10.96.0.11', port: 5001, protocol: 132 })]);
    const sctp = { protocol: 132, dstPort: 5000, tcpFlags: undefined };
    const whole = dp.send(out(7000, sctp));
    expect(whole.packet).toMatchObject({ dstIp: B.ipv4, dstPort: 6000 });
    const reply = { ifindex: A.ifindex, direction: 'ingress' as const, srcIp: B.ipv4, dstIp: A.ipv4, protocol: 132, srcPort: 6000, dstPort: 7000, now: 1001 };
    expect(dp.send(reply).packet).toMatchObject({ srcIp: VIP, srcPort: 5000 });

    const before = (await dp.serviceCounters()).errors;
    expect(dp.send(out(7000, { ...sctp, fragment: 'first', ipId: 5 })).translation.action).toBe('error');
    expect(dp.send(out(7001, { ...sctp, fragment: 'first', ipId: 6 })).translation.action).toBe('error');
    expect(dp.send({ ...reply, fragment: 'first', ipId: 7 }).translation.action).toBe('error');
    expect((await dp.serviceCounters()).errors).toBe(before + 3);
    // The same port on both sides: nothing to update, the first fragment is translated.
    const same = dp.send(out(7002, { ...sctp, dstIp: '10.96.0.11', dstPort: 5001, fragment: 'first', ipId: 8 }));
    expect(same.packet).toMatchObject({ dstIp: C.ipv4, dstPort: 5001 });
  });

  test('no ready backend: rejected before any verdict, counted', async () => {
    const dp = await setup([svc([])]);
    const r = dp.send(out(40000));
    expect(r.translation.action).toBe('reject');
    expect(r.verdict).toBeUndefined();
    expect((await dp.serviceCounters()).noBackend).toBe(1);
  });

  test('hairpin: source rewritten to the hairpin address, the reply comes back from the ClusterIP', async () => {
    const dp = await setup([svc([[A.ipv4, 8080]])]);
    const r = dp.send(out(40000));
    expect(r.packet).toMatchObject({ srcIp: SVC_HAIRPIN_IPV4, dstIp: A.ipv4, dstPort: 8080 });
    const reply = dp.send({ ifindex: A.ifindex, direction: 'egress', srcIp: A.ipv4, dstIp: SVC_HAIRPIN_IPV4, srcPort: 8080, dstPort: 40000, protocol: 6, tcpFlags: 0x12, now: 1001 });
    expect(reply.translation.action).toBe('hairpin-reply');
    expect(reply.packet).toMatchObject({ srcIp: VIP, srcPort: 80, dstIp: A.ipv4, dstPort: 40000 });
  });

  test('sessionAffinity ClientIP: one backend per client until the timeout passes', async () => {
    const dp = await setup([svc([[B.ipv4, 8080], [C.ipv4, 8080]], { affinityTimeoutSec: 10 })]);
    const first = dp.send(out(40000)).packet.dstIp;
    for (let i = 1; i < 12; i++) expect(dp.send(out(40000 + i, { now: 1000 + i * 500 })).packet.dstIp).toBe(first);
    const later = new Set(Array.from({ length: 12 }, (_, i) => dp.send(out(50000 + i, { now: 1_000_000 + i * 20_000 })).packet.dstIp));
    expect(later.size).toBe(2);
  });
});
