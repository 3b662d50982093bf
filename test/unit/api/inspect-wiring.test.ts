/**
 * The agent's inspection wiring in standalone mode: datapath events and L7 records reach
 * the flow store with the local pods named, map usage is read from the datapath.
 */
import { describe, expect, it } from 'vitest';
import { startInspection } from '../../../pkg/agent/inspect.ts';
import { Metrics } from '../../../pkg/api/metrics.ts';
import { MemoryDatapath } from '../../../pkg/datapath/memory/index.ts';
import { TCP_SYN } from '../../../pkg/datapath/memory/datapath.ts';
import { PROTO_TCP } from '../../../pkg/datapath/types.ts';
import type { EndpointManager } from '../../../pkg/endpoint/manager.ts';

const records = [
  { endpointId: 1, podNamespace: 'web', podName: 'front', ipv4: '10.8.0.2', ifindex: 12 },
  { endpointId: 2, podNamespace: 'web', podName: 'back', ipv4: '10.8.0.3', ifindex: 13 },
];
const manager = { list: () => records } as unknown as EndpointManager;

describe('startInspection (standalone)', () => {
  it('names local pods in datapath and L7 records; reads map usage from the datapath', async () => {
    const dp = new MemoryDatapath();
    await dp.init();
    await dp.apply({
      upsert: {
        endpoints: records.map((r) => ({ ifindex: r.ifindex, endpointId: r.endpointId, identity: 256, ipv4: r.ipv4, ingressEnforced: false, egressEnforced: false })),
        ipcache: records.map((r) => ({ cidr: `${r.ipv4}/32`, identity: 256 })), policy: [], cidrs: [],
      },
      delete: { endpoints: [], ipcache: [], policy: [], cidrs: [] },
    });
    const insp = startInspection({ node: 'n1', datapath: dp, manager, metrics: new Metrics(), log: () => {} });
    try {
      dp.verdict({ ifindex: 13, direction: 'ingress', srcIp: '10.8.0.2', dstIp: '10.8.0.3', protocol: PROTO_TCP, srcPort: 5000, dstPort: 8080, tcpFlags: TCP_SYN });
      for (let i = 0; i < 100 && insp.flows.size === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(insp.flows.query()).toMatchObject([{
        verdict: 'allowed', policy: 'none', src: { pod: 'front', namespace: 'web' }, dst: { pod: 'back', identity: 256 },
      }]);

      insp.record({
        time: Date.now(), node: 'n1', verdict: 'denied', reason: 'http-denied', direction: 'ingress', protocol: 'TCP',
        src: { ip: '10.8.0.2', port: 5001 }, dst: { ip: '10.8.0.3', port: 8080 }, ruleId: 0,
        http: { method: 'GET', path: '/admin', status: 403 },
      });
      expect(insp.flows.query({ verdict: 'denied', pod: 'web/front' })).toMatchObject([{ src: { pod: 'front' }, dst: { pod: 'back' }, http: { status: 403 } }]);
      expect(insp.flows.l7Totals().denied.ingress).toBe(1);
      expect(() => insp.record({ time: 1, verdict: 'allowed', direction: 'ingress' } as never)).toThrow(/src and dst need an ip/);
      expect(insp.flows.size).toBe(2);

      const usage = await insp.mapUsage();
      expect(usage.find((m) => m.name === 'endpoints')?.entries).toBe(2);
      expect(usage.find((m) => m.name === 'ipcache')?.entries).toBe(2);
      expect(insp.identities()).toBe(0);
    } finally {
      await insp.stop();
      await dp.close();
    }
  });
});
