/**
 * The flow store, its query parser and enrichment: packets judged by the in-memory
 * datapath with state from the real compiler come out as records naming pods and the
 * deciding policy (or default-deny).
 */
import { describe, expect, it } from 'vitest';
import { diffState } from '../../../pkg/datapath/diff.ts';
import { MemoryDatapath } from '../../../pkg/datapath/memory/index.ts';
import { TCP_SYN } from '../../../pkg/datapath/memory/datapath.ts';
import { PROTO_TCP } from '../../../pkg/datapath/types.ts';
import { collectFlows } from '../../../pkg/flow/collector.ts';
import { enrichEvent, type FlowSources } from '../../../pkg/flow/enrich.ts';
import { PodIpIndex } from '../../../pkg/flow/pods.ts';
import { FlowQueryError, parseFlowQuery } from '../../../pkg/flow/query.ts';
import { FlowStore } from '../../../pkg/flow/store.ts';
import type { FlowRecord } from '../../../pkg/flow/types.ts';
import { PolicyCompiler } from '../../../pkg/policy/compile.ts';
import type { ClusterSnapshot, LocalEndpoint, NetworkPolicy, Pod } from '../../../pkg/policy/snapshot.ts';

function rec(over: Partial<FlowRecord> = {}): FlowRecord {
  return {
    time: 1000, node: 'n', verdict: 'allowed', direction: 'ingress', protocol: 'TCP',
    src: { ip: '10.0.0.1', port: 1234 }, dst: { ip: '10.0.0.2', port: 80 }, ruleId: 0, ...over,
  };
}

describe('FlowStore', () => {
  it('keeps the newest records up to its capacity and answers oldest first', () => {
    const s = new FlowStore({ capacity: 5 });
    for (let i = 1; i <= 12; i++) s.record(rec({ time: i }));
    expect(s.size).toBe(5);
    expect(s.query({ limit: 100 }).map((r) => r.time)).toEqual([8, 9, 10, 11, 12]);
    expect(s.query({ limit: 2 }).map((r) => r.time)).toEqual([11, 12]);
    expect(s.query({ since: 10, limit: 100 }).map((r) => r.time)).toEqual([11, 12]);
  });

  it('filters by verdict and by pod on either side', () => {
    const s = new FlowStore();
    s.record(rec({ time: 1, verdict: 'dropped', src: { ip: '1.1.1.1', port: 1, namespace: 'x', pod: 'a' } }));
    s.record(rec({ time: 2, verdict: 'allowed', dst: { ip: '1.1.1.2', port: 1, namespace: 'x', pod: 'a' } }));
    s.record(rec({ time: 3, verdict: 'dropped', dst: { ip: '1.1.1.3', port: 1, namespace: 'y', pod: 'a' } }));
    expect(s.query({ verdict: 'dropped' }).map((r) => r.time)).toEqual([1, 3]);
    expect(s.query({ pod: 'x/a' }).map((r) => r.time)).toEqual([1, 2]);
    expect(s.query({ pod: 'x/a', verdict: 'dropped' }).map((r) => r.time)).toEqual([1]);
    expect(s.query({ pod: 'y/b' })).toEqual([]);
  });

  it('counts drops of the last minute on its clock, and totals per verdict', () => {
    let now = 1_000_000;
    const s = new FlowStore({ now: () => now });
    s.record(rec({ verdict: 'dropped' }));
    s.record(rec({ verdict: 'denied', direction: 'egress', http: { method: 'GET', path: '/', status: 403 } }));
    s.record(rec({ verdict: 'allowed' }));
    expect(s.dropsLastMinute()).toBe(2);
    now += 30_000;
    s.record(rec({ verdict: 'dropped' }));
    expect(s.dropsLastMinute()).toBe(3);
    now += 31_000;
    expect(s.dropsLastMinute()).toBe(1);
    now += 60_000;
    expect(s.dropsLastMinute()).toBe(0);
    expect(s.dropsTotal).toBe(3);
    expect(s.totals().dropped.ingress).toBe(2);
    expect(s.l7Totals().denied.egress).toBe(1);
    expect(s.l7Totals().allowed.ingress).toBe(0);
  });

  it('hands every record to subscribers until they unsubscribe', () => {
    const s = new FlowStore();
    const got: number[] = [];
    const off = s.subscribe((r) => got.push(r.time));
    s.record(rec({ time: 1 }));
    off();
    s.record(rec({ time: 2 }));
    expect(got).toEqual([1]);
    expect(s.subscribers).toBe(0);
  });

  it('refuses malformed records (nothing stored)', () => {
    const s = new FlowStore();
    expect(() => s.record({ ...rec(), verdict: 'maybe' as never })).toThrow(/unknown verdict/);
    expect(() => s.record({ ...rec(), time: Number.NaN })).toThrow(/time/);
    expect(() => s.record({ ...rec(), src: undefined as never })).toThrow(/ip/);
    expect(s.size).toBe(0);
    expect(() => new FlowStore({ capacity: 0 })).toThrow(/capacity/);
  });
});

describe('parseFlowQuery', () => {
  it('accepts every documented parameter', () => {
    expect(parseFlowQuery({ verdict: 'dropped', pod: 'demo/web-1', since: '17', limit: '5', follow: '1' }))
      .toEqual({ filter: { verdict: 'dropped', pod: 'demo/web-1', since: 17, limit: 5 }, follow: true });
    expect(parseFlowQuery({})).toEqual({ filter: { limit: 100 }, follow: false });
    expect(parseFlowQuery({ follow: 'false' }).follow).toBe(false);
  });

  it.each([
    [{ verdict: 'nope' }, /verdict must be one of/],
    [{ pod: 'nopod' }, /pod must be namespace\/name/],
    [{ pod: 'A/b' }, /pod must be/],
    [{ since: '-1' }, /since must be an integer/],
    [{ since: '1e3' }, /since must be an integer/],
    [{ limit: '0' }, /limit must be an integer in 1\.\.8192/],
    [{ limit: '8193' }, /limit must be an integer in 1\.\.8192/],
    [{ follow: 'yes' }, /follow must be/],
    [{ verdict: ['dropped', 'allowed'] }, /given more than once/],
    [{ verdicts: 'dropped' }, /unknown query parameter "verdicts"/],
  ])('refuses %j', (q, msg) => {
    expect(() => parseFlowQuery(q as Record<string, unknown>)).toThrow(FlowQueryError);
    expect(() => parseFlowQuery(q as Record<string, unknown>)).toThrow(msg);
  });
});

// A namespace with a client and a server on this node, and a client elsewhere.
const NODE = 'node-0';
function pod(ns: string, name: string, ip: string, labels: Record<string, string>, nodeName = NODE): Pod {
  return {
    metadata: { name, namespace: ns, labels },
    spec: { nodeName, containers: [{ name: 'c' }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}
const ENDPOINTS: LocalEndpoint[] = [
  { endpointId: 1, ifindex: 101, ifname: 'lxc1', containerId: 'c1', podNamespace: 'demo', podName: 'server', ipv4: '10.244.0.11' },
  { endpointId: 2, ifindex: 102, ifname: 'lxc2', containerId: 'c2', podNamespace: 'demo', podName: 'client', ipv4: '10.244.0.12' },
];
const PODS = new Map<string, Pod>([
  ['demo/server', pod('demo', 'server', '10.244.0.11', { app: 'server' })],
  ['demo/client', pod('demo', 'client', '10.244.0.12', { app: 'client' })],
  ['demo/other', pod('demo', 'other', '10.244.1.13', { app: 'other' }, 'node-1')],
]);
const DENY: NetworkPolicy = {
  kind: 'NetworkPolicy', metadata: { name: 'deny', namespace: 'demo' },
  spec: { podSelector: { matchLabels: { app: 'server' } }, policyTypes: ['Ingress'] },
};
const ALLOW: NetworkPolicy = {
  kind: 'NetworkPolicy', metadata: { name: 'allow-client', namespace: 'demo' },
  spec: {
    podSelector: { matchLabels: { app: 'server' } }, policyTypes: ['Ingress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80, protocol: 'TCP' }] }],
  },
};

function snapshot(policies: NetworkPolicy[]): ClusterSnapshot {
  return {
    revision: 1, nodeName: NODE,
    namespaces: new Map([['demo', { metadata: { name: 'demo', labels: {} } }]]),
    pods: PODS, nodes: new Map(),
    policies: new Map(policies.map((p) => [`NetworkPolicy:${p.metadata.namespace}/${p.metadata.name}`, p])),
    endpoints: ENDPOINTS,
  };
}

describe('enrichment of datapath events', () => {
  it('names the pods and the deciding policy, default-deny, or none', async () => {
    const compiler = new PolicyCompiler();
    const dp = new MemoryDatapath();
    await dp.init();
    const store = new FlowStore();
    let result = compiler.compile(snapshot([DENY, ALLOW]));
    const pods = new PodIpIndex(() => PODS);
    const sources: FlowSources = {
      node: NODE,
      podByIp: (ip) => pods.lookup(ip),
      policyOfRule: (id) => result.rules.get(id)?.policy,
      endpoint: (id) => result.endpoints.get(id),
    };
    const collector = collectFlows(dp, store, sources);
    await dp.apply({ upsert: result.state, delete: { endpoints: [], ipcache: [], policy: [], cidrs: [] } });

    const syn = (src: string, sport: number) => ({
      ifindex: 101, direction: 'ingress' as const, srcIp: src, dstIp: '10.244.0.11',
      protocol: PROTO_TCP, srcPort: sport, dstPort: 80, tcpFlags: TCP_SYN,
    });
    expect(dp.verdict(syn('10.244.1.13', 40000)).verdict).toBe('dropped');
    expect(dp.verdict(syn('10.244.0.12', 40001)).verdict).toBe('allowed');
    // The client is not isolated for egress: its own side of the flow is "none".
    expect(dp.verdict({ ifindex: 102, direction: 'egress', srcIp: '10.244.0.12', dstIp: '10.244.0.11',
      protocol: PROTO_TCP, srcPort: 40002, dstPort: 80, tcpFlags: TCP_SYN }).verdict).toBe('allowed');
    for (let i = 0; i < 50 && store.size < 3; i++) await new Promise((r) => setTimeout(r, 5));

    const [drop, allow, egress] = store.query();
    expect(drop).toMatchObject({
      node: NODE, verdict: 'dropped', reason: 'policy-denied', direction: 'ingress', protocol: 'TCP',
      src: { ip: '10.244.1.13', port: 40000, namespace: 'demo', pod: 'other' },
      dst: { ip: '10.244.0.11', port: 80, namespace: 'demo', pod: 'server', identity: result.endpoints.get(1)!.identity },
      policy: 'default-deny', ruleId: 0,
    });
    expect(allow).toMatchObject({
      verdict: 'allowed', src: { pod: 'client' }, dst: { pod: 'server' },
      policy: 'NetworkPolicy:demo/allow-client',
    });
    expect(allow!.ruleId).not.toBe(0);
    expect(allow!.reason).toBeUndefined();
    expect(egress).toMatchObject({ verdict: 'allowed', direction: 'egress', policy: 'none', src: { pod: 'client' } });

    // Only the deny policy left: the same client is now dropped by default deny.
    result = compiler.compile(snapshot([DENY]));
    await dp.apply(diffState(result.state, await dp.dump()));
    expect(dp.verdict(syn('10.244.0.12', 40003)).verdict).toBe('dropped');
    for (let i = 0; i < 50 && store.size < 4; i++) await new Promise((r) => setTimeout(r, 5));
    expect(store.query({ verdict: 'dropped', pod: 'demo/client' })).toMatchObject([{ policy: 'default-deny', src: { port: 40003 } }]);
    collector.stop();
    await collector.done;
    await dp.close();
  });

  it('leaves the policy out when it cannot attribute it', () => {
    const sources: FlowSources = {
      node: 'n', podByIp: () => undefined, policyOfRule: () => undefined, endpoint: () => undefined,
    };
    const r = enrichEvent({
      time: 5, verdict: 'dropped', reason: 'malformed', direction: 'egress', endpointId: 9,
      srcIp: '10.0.0.1', dstIp: '10.0.0.2', srcPort: 0, dstPort: 0, protocol: 47, peerIdentity: 2, ruleId: 0,
    }, sources);
    expect(r).toEqual({
      time: 5, node: 'n', verdict: 'dropped', reason: 'malformed', direction: 'egress', protocol: '47',
      src: { ip: '10.0.0.1', port: 0 }, dst: { ip: '10.0.0.2', port: 0, identity: 2 }, ruleId: 0,
    });
  });
});

describe('PodIpIndex', () => {
  it('skips host-network and finished pods, and follows a new pod map', () => {
    let pods = new Map<string, Pod>([
      ['a/h', { ...pod('a', 'h', '10.0.0.1', {}), spec: { hostNetwork: true, containers: [] } }],
      ['a/done', { ...pod('a', 'done', '10.0.0.2', {}), status: { phase: 'Succeeded', podIP: '10.0.0.2' } }],
      ['a/run', pod('a', 'run', '10.0.0.3', {})],
    ]);
    const idx = new PodIpIndex(() => pods);
    expect(idx.lookup('10.0.0.1')).toBeUndefined();
    expect(idx.lookup('10.0.0.2')).toBeUndefined();
    expect(idx.lookup('10.0.0.3')).toEqual({ namespace: 'a', name: 'run' });
    pods = new Map([['b/new', pod('b', 'new', '10.0.0.2', {})]]);
    expect(idx.lookup('10.0.0.2')).toEqual({ namespace: 'b', name: 'new' });
    expect(idx.lookup('10.0.0.3')).toBeUndefined();
  });
});
