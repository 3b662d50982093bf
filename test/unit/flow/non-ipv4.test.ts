// Flow records of frames that are not IPv4 (drop reason unsupported-l3: IPv6 router
// solicitations, MLD, DAD from a pod whose policy is enforced). The datapath reads no
// addresses from them (0.0.0.0, port 0, protocol 0): the record says `non-IPv4` and
// names the local pod, so `kubectl palisade observe` shows who sent it.
import { describe, expect, it } from 'vitest';
import { startInspection } from '../../../pkg/agent/inspect.ts';
import { Metrics } from '../../../pkg/api/metrics.ts';
import { MemoryDatapath } from '../../../pkg/datapath/memory/index.ts';
import type { FlowEvent } from '../../../pkg/datapath/types.ts';
import type { EndpointManager } from '../../../pkg/endpoint/manager.ts';
import { enrichEvent, type FlowSources } from '../../../pkg/flow/enrich.ts';
import { flowRow } from '../../../pkg/inspect/render.ts';

const sources: FlowSources = {
  node: 'n1',
  podByIp: (ip) => (ip === '10.8.0.2' ? { namespace: 'web', name: 'front' } : undefined),
  policyOfRule: () => undefined,
  endpoint: (id) => (id === 1 ? { identity: 300, ingressEnforced: true, egressEnforced: true } : undefined),
  podOfEndpoint: (id) => (id === 1 ? { namespace: 'web', name: 'front' } : undefined),
};

function event(direction: 'ingress' | 'egress', over: Partial<FlowEvent> = {}): FlowEvent {
  return {
    time: 7, verdict: 'dropped', reason: 'unsupported-l3', direction, endpointId: 1,
    srcIp: '0.0.0.0', dstIp: '0.0.0.0', srcPort: 0, dstPort: 0, protocol: 0, peerIdentity: 0, ruleId: 0, ...over,
  };
}

describe('flow records of non-IPv4 frames', () => {
  it('egress: protocol non-IPv4, the source is the local pod', () => {
    expect(enrichEvent(event('egress'), sources)).toEqual({
      time: 7, node: 'n1', verdict: 'dropped', reason: 'unsupported-l3', direction: 'egress', protocol: 'non-IPv4',
      src: { ip: '0.0.0.0', port: 0, namespace: 'web', pod: 'front', identity: 300 },
      dst: { ip: '0.0.0.0', port: 0, identity: 0 }, ruleId: 0,
    });
  });

  it('ingress: the destination is the local pod', () => {
    const r = enrichEvent(event('ingress'), sources);
    expect(r.protocol).toBe('non-IPv4');
    expect(r.dst).toEqual({ ip: '0.0.0.0', port: 0, namespace: 'web', pod: 'front', identity: 300 });
    expect(r.src).toEqual({ ip: '0.0.0.0', port: 0, identity: 0 });
  });

  it('without podOfEndpoint or an unknown endpoint: still non-IPv4, no pod invented', () => {
    const { podOfEndpoint: _, ...bare } = sources;
    expect(enrichEvent(event('egress'), bare)).toMatchObject({ protocol: 'non-IPv4', src: { ip: '0.0.0.0' } });
    expect(enrichEvent(event('egress'), bare).src.pod).toBeUndefined();
    expect(enrichEvent(event('egress', { endpointId: 9 }), sources).src.pod).toBeUndefined();
  });

  it('other drops keep their protocol number', () => {
    expect(enrichEvent(event('egress', { reason: 'malformed', protocol: 47 }), sources).protocol).toBe('47');
  });

  it('through the agent\'s inspection: observe shows the pod and non-IPv4', async () => {
    const records = [{ endpointId: 1, podNamespace: 'web', podName: 'front', ipv4: '10.8.0.2', ifindex: 12 }];
    const manager = { list: () => records } as unknown as EndpointManager;
    const dp = new MemoryDatapath();
    await dp.init();
    await dp.apply({
      upsert: {
        endpoints: [{ ifindex: 12, endpointId: 1, identity: 256, ipv4: '10.8.0.2', ingressEnforced: true, egressEnforced: true }],
        ipcache: [{ cidr: '10.8.0.2/32', identity: 256 }], policy: [], cidrs: [],
      },
      delete: { endpoints: [], ipcache: [], policy: [], cidrs: [] },
    });
    const insp = startInspection({ node: 'n1', datapath: dp, manager, metrics: new Metrics(), log: () => {} });
    try {
      // An IPv6 router solicitation leaving the pod, as the programs see it: no IPv4 header.
      expect(dp.verdict({ ifindex: 12, direction: 'egress', l3: 'other', srcIp: '0.0.0.0', dstIp: '0.0.0.0', protocol: 0 }).reason)
        .toBe('unsupported-l3');
      for (let i = 0; i < 100 && insp.flows.size === 0; i++) await new Promise((r) => setTimeout(r, 5));
      const [r] = insp.flows.query({ pod: 'web/front' });
      expect(r).toMatchObject({ protocol: 'non-IPv4', reason: 'unsupported-l3', src: { namespace: 'web', pod: 'front' } });
      const row = flowRow(r!);
      expect(row.slice(4, 8)).toEqual(['web/front', '0.0.0.0', 'non-IPv4', 'unsupported-l3']);
    } finally {
      await insp.stop();
      await dp.close();
    }
  });
});
