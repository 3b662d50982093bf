import { describe, expect, test } from 'vitest';
import { Metrics } from '../../../pkg/api/metrics.ts';
import { MemoryDatapath } from '../../../pkg/datapath/memory/datapath.ts';
import { emptyState } from '../../../pkg/datapath/types.ts';

describe('/metrics: service translation counters', () => {
  test('palisade_service_packets_total by event, from the datapath counters', async () => {
    const dp = new MemoryDatapath();
    await dp.apply({ upsert: { ...emptyState(), endpoints: [{ ifindex: 5, endpointId: 1, identity: 1001, ipv4: '10.244.0.1', ingressEnforced: false, egressEnforced: false }] }, delete: emptyState() });
    await dp.applyServices([
      { name: 'x/web', ip: '10.96.0.1', port: 80, protocol: 6, affinityTimeoutSec: 0, backends: [{ ip: '10.244.0.2', port: 8080 }] },
      { name: 'x/empty', ip: '10.96.0.2', port: 80, protocol: 6, affinityTimeoutSec: 0, backends: [] },
    ]);
    const pkt = (dstIp: string, sport: number) => ({ ifindex: 5, direction: 'egress' as const, srcIp: '10.244.0.1', dstIp, srcPort: sport, dstPort: 80, protocol: 6, tcpFlags: 2 });
    dp.send(pkt('10.96.0.1', 40000));
    dp.send(pkt('10.96.0.2', 40001));
    const text = await new Metrics().render({ endpoints: 1, serviceCounters: () => dp.serviceCounters() });
    expect(text).toContain('# TYPE palisade_service_packets_total counter');
    expect(text).toContain('palisade_service_packets_total{event="translated"} 1');
    expect(text).toContain('palisade_service_packets_total{event="new_flow"} 1');
    expect(text).toContain('palisade_service_packets_total{event="no_backend"} 1');
    expect(text).toContain('palisade_service_packets_total{event="reversed"} 0');
  });

  test('a failing source leaves the family out and is reported', async () => {
    const errors: string[] = [];
    const text = await new Metrics().render({
      endpoints: 0, serviceCounters: () => Promise.reject(new Error('maps gone')), onError: (what) => errors.push(what),
    });
    expect(text).not.toContain('palisade_service_packets_total');
    expect(errors).toEqual(['service counters']);
  });
});
