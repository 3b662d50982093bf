/**
 * The kernel's backend choice against the model's: crafted frames through the real
 * from_pod under BPF_PROG_TEST_RUN (maps written by LinuxDatapath), the translation the
 * kernel recorded (pal_svc_nat) compared with MemoryDatapath.send on the same packets.
 * Same hash, same slots, same verdict on the translated packet.
 */
import { beforeAll, expect, test } from 'vitest';
import { emptyState, type ServiceEntry } from '../../../pkg/datapath/types.ts';
import { describePrivileged } from '../../helpers/privileged.ts';
import { TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, useProgRun } from '../../helpers/progrun.ts';
import { modelPacket, type FrameSpec } from '../datapath/packets.ts';

const POD = '10.244.0.10';
const B1 = '10.244.1.11';
const B2 = '10.244.1.12';
const B3 = '10.244.2.13';
const VIP = '10.96.0.50';
const VIP_EMPTY = '10.96.0.51';

describePrivileged('service translation: kernel and model agree', () => {
  const rig = useProgRun('spr', { reload: true });
  const { model, run: kernel } = rig;
  let ifPod = 0;

  const services: ServiceEntry[] = [
    { name: 'web', ip: VIP, port: 80, protocol: 6, affinityTimeoutSec: 0,
      backends: [{ ip: B1, port: 8080 }, { ip: B2, port: 8081 }, { ip: B3, port: 8082 }] },
    { name: 'dns', ip: VIP, port: 53, protocol: 17, affinityTimeoutSec: 0,
      backends: [{ ip: B1, port: 5353 }, { ip: B3, port: 5354 }] },
    { name: 'empty', ip: VIP_EMPTY, port: 80, protocol: 6, affinityTimeoutSec: 0, backends: [] },
  ];

  beforeAll(async () => {
    ifPod = rig.ifPod;
    const up = {
      ...emptyState(),
      endpoints: [{ ifindex: ifPod, endpointId: 7, identity: 1007, ipv4: POD, ingressEnforced: false, egressEnforced: true }],
      ipcache: [{ cidr: `${POD}/32`, identity: 1007 }, { cidr: `${B1}/32`, identity: 2001 }, { cidr: `${B2}/32`, identity: 2002 }, { cidr: `${B3}/32`, identity: 2003 }],
      // Egress of the pod: B1 and B3 on any port, B2 not at all.
      policy: [
        { endpointId: 7, direction: 'egress' as const, peer: 2001, protocol: 0, port: 0, endPort: 0, ruleId: 1, proxyPort: 0 },
        { endpointId: 7, direction: 'egress' as const, peer: 2003, protocol: 0, port: 0, endPort: 0, ruleId: 3, proxyPort: 0 },
      ],
    };
    await rig.apply({ upsert: up, delete: emptyState() });
    await rig.dp.applyServices(services);
    await model.applyServices(services);
  });

  test('TCP and UDP: the same backend for every flow, the same verdict on it', async () => {
    let translatedToB2 = 0;
    for (const [protocol, dport] of [[6, 80], [17, 53]] as const) {
      for (let i = 0; i < 40; i++) {
        const spec: FrameSpec = { ifindex: ifPod, direction: 'egress', src: POD, dst: VIP, protocol, sport: 33000 + i * 7, dport, tcpFlags: 0x02 };
        const rc = kernel(spec);
        const m = model.send({ ...modelPacket(spec), now: Date.now() });
        expect(m.translation.action).toBe('translated');
        expect(rc, `flow ${spec.sport}/${protocol} to ${m.packet.dstIp}`).toBe(m.verdict!.verdict === 'allowed' ? TC_ACT_OK : TC_ACT_SHOT);
        if (m.packet.dstIp === B2) translatedToB2++;
        const nat = (await rig.dp.serviceNat()).find((n) => !n.reverse && n.sport === spec.sport && n.protocol === protocol);
        if (rc === TC_ACT_OK) expect(nat && `${nat.addr}:${nat.port}`).toBe(`${m.packet.dstIp}:${m.packet.dstPort}`);
        else expect(nat).toBeUndefined(); // a denied flow records nothing
      }
    }
    expect(translatedToB2).toBeGreaterThan(0);
  });

  test('no ready backend: redirected back (the ICMP answer) by both, and counted', async () => {
    const before = (await rig.dp.serviceCounters()).noBackend;
    const spec: FrameSpec = { ifindex: ifPod, direction: 'egress', src: POD, dst: VIP_EMPTY, protocol: 6, sport: 34000, dport: 80 };
    expect(kernel(spec)).toBe(TC_ACT_REDIRECT);
    expect(model.send({ ...modelPacket(spec), now: Date.now() }).translation.action).toBe('reject');
    expect((await rig.dp.serviceCounters()).noBackend).toBe(before + 1);
  });

  test('traffic to a pod IP or another port of the ClusterIP is not translated', async () => {
    const before = (await rig.dp.serviceCounters()).translated;
    expect(kernel({ ifindex: ifPod, direction: 'egress', src: POD, dst: B1, protocol: 6, sport: 35000, dport: 80 })).toBe(TC_ACT_OK);
    kernel({ ifindex: ifPod, direction: 'egress', src: POD, dst: VIP, protocol: 6, sport: 35001, dport: 81 });
    expect((await rig.dp.serviceCounters()).translated).toBe(before);
  });
});
