/**
 * The agent's inspection routes on both listeners: GET /v1/flows (query, bounds, follow
 * streaming over the TCP health listener), the enriched GET /v1/status, and /metrics read
 * by a strict exposition-format parser.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenHealth, type HealthListener } from '../../../pkg/agent/health.ts';
import { NullDatapath } from '../../../pkg/agent/null-datapath.ts';
import { Metrics } from '../../../pkg/api/metrics.ts';
import { buildApi } from '../../../pkg/api/server.ts';
import type { DatapathCounters } from '../../../pkg/datapath/types.ts';
import { EndpointManager } from '../../../pkg/endpoint/manager.ts';
import { MemoryPodNetwork } from '../../../pkg/endpoint/podnet-memory.ts';
import { StandaloneRealizer } from '../../../pkg/endpoint/standalone-realizer.ts';
import { EndpointStore } from '../../../pkg/endpoint/store.ts';
import { FlowStore } from '../../../pkg/flow/store.ts';
import type { FlowRecord } from '../../../pkg/flow/types.ts';
import { Ipam } from '../../../pkg/ipam/ipam.ts';
import { mapUsage } from '../../../pkg/status/maps.ts';
import { parsePrometheusText, valueOf } from './promtext.ts';

let dir: string;
let app: ReturnType<typeof buildApi>;
let health: HealthListener;
let flows: FlowStore;
let metrics: Metrics;
let counters: DatapathCounters;
let now = 1_800_000_000_000;

function rec(time: number, over: Partial<FlowRecord> = {}): FlowRecord {
  return {
    time, node: 'n1', verdict: 'dropped', reason: 'policy-denied', direction: 'ingress', protocol: 'TCP',
    src: { ip: '10.6.0.9', port: 4000, namespace: 'demo', pod: 'client' },
    dst: { ip: '10.6.0.1', port: 80, namespace: 'demo', pod: 'server' },
    policy: 'default-deny', ruleId: 0, ...over,
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'palisade-inspect-'));
  const podnet = new MemoryPodNetwork();
  const datapath = new NullDatapath();
  const manager = new EndpointManager({
    ipam: await Ipam.open({ stateDir: dir, cidr: '10.6.0.0/30' }), podnet, datapath,
    realizer: new StandaloneRealizer(datapath), store: new EndpointStore(dir), defaultMtu: 1500,
    netnsExists: async (p) => podnet.namespaces.has(p),
  });
  flows = new FlowStore({ now: () => now });
  metrics = new Metrics();
  counters = {
    allowed: { ingress: 10, egress: 20 },
    dropped: { ingress: { 'policy-denied': 3, malformed: 1 }, egress: { 'policy-denied': 2 } },
  };
  const state = {
    endpoints: [{ ifindex: 5, endpointId: 1, identity: 300, ipv4: '10.6.0.1', ingressEnforced: true, egressEnforced: false }],
    ipcache: [{ cidr: '10.6.0.1/32', identity: 300 }, { cidr: '10.6.0.9/32', identity: 301 }],
    // A range 80..83 is one LPM key (80/30); 80..84 is two.
    policy: [{ endpointId: 1, direction: 'ingress' as const, peer: 301, protocol: 6, port: 80, endPort: 84, ruleId: 7, proxyPort: 0 }],
    cidrs: [],
  };
  app = buildApi({
    node: 'n1', mode: 'kubernetes', manager, metrics, version: '9.9.9', flows,
    notReadyReason: () => undefined, revision: () => 42, resourceVersion: () => '1234',
    identities: () => 2,
    mapUsage: async () => mapUsage(state),
    counters: async () => counters,
  });
  await app.ready();
  health = await listenHealth(app, '127.0.0.1', 0);
});
afterAll(async () => {
  await health?.close();
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

function get(path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: health.port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('GET /v1/flows', () => {
  it('answers the newest matching records, oldest first, on both listeners', async () => {
    flows.record(rec(1));
    flows.record(rec(2, { verdict: 'allowed', reason: undefined, policy: 'NetworkPolicy:demo/allow', ruleId: 7 }));
    flows.record(rec(3, { src: { ip: '10.6.0.8', port: 1, namespace: 'other', pod: 'x' }, dst: { ip: '10.6.0.7', port: 1 } }));
    const socketSide = await app.inject({ method: 'GET', url: '/v1/flows?verdict=dropped&pod=demo/client' });
    expect(socketSide.statusCode).toBe(200);
    expect(socketSide.json().items.map((r: FlowRecord) => r.time)).toEqual([1]);
    const tcp = await get('/v1/flows?limit=2');
    expect(tcp.status).toBe(200);
    expect(JSON.parse(tcp.body).items.map((r: FlowRecord) => r.time)).toEqual([2, 3]);
    expect(JSON.parse(tcp.body).items[0]).toEqual(rec(2, { verdict: 'allowed', reason: undefined, policy: 'NetworkPolicy:demo/allow', ruleId: 7 }));
    expect(JSON.parse((await get('/v1/flows?since=2')).body).items.map((r: FlowRecord) => r.time)).toEqual([3]);
  });

  it.each([
    ['/v1/flows?limit=0', /limit must be an integer in 1\.\.8192/],
    ['/v1/flows?limit=abc', /limit/],
    ['/v1/flows?verdict=blocked', /verdict must be one of/],
    ['/v1/flows?pod=justname', /pod must be namespace\/name/],
    ['/v1/flows?since=yesterday', /since/],
    ['/v1/flows?follow=maybe', /follow/],
    ['/v1/flows?limit=1&limit=2', /more than once/],
    ['/v1/flows?podd=a/b', /unknown query parameter "podd"/],
  ])('%s is 400 PAL_BAD_REQUEST', async (url, msg) => {
    const r = await get(url);
    expect(r.status).toBe(400);
    const body = JSON.parse(r.body);
    expect(body.code).toBe('PAL_BAD_REQUEST');
    expect(body.message).toMatch(msg);
  });

  it('follow=1 streams the backlog, then new matching records, until the client goes away', async () => {
    const lines: string[] = [];
    let type = '';
    let buf = '';
    const req = request({ host: '127.0.0.1', port: health.port, path: '/v1/flows?follow=1&verdict=dropped&limit=1' }, (res) => {
      type = String(res.headers['content-type']);
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          lines.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      });
    });
    req.on('error', () => {});
    req.end();
    await until(() => lines.length === 1, 'the backlog');
    expect(type).toBe('application/x-ndjson');
    expect(JSON.parse(lines[0]!).time).toBe(3);
    expect(flows.subscribers).toBe(1);
    flows.record(rec(10, { verdict: 'allowed' }));
    flows.record(rec(11));
    await until(() => lines.length === 2, 'a new record');
    expect(JSON.parse(lines[1]!)).toEqual(rec(11));
    req.destroy();
    await until(() => flows.subscribers === 0, 'the stream to end');
  });

  it('cuts a follower that does not read instead of buffering without bound', async () => {
    const sock = connect(health.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write('GET /v1/flows?follow=1&verdict=denied HTTP/1.1\r\nHost: x\r\n\r\n');
    sock.pause();
    await until(() => flows.subscribers === 1, 'the stream to start');
    const big = 'x'.repeat(4000);
    for (let i = 0; i < 20_000 && flows.subscribers > 0; i++) {
      flows.record(rec(100 + i, { verdict: 'denied', http: { method: 'GET', path: `/${big}`, status: 403 } }));
    }
    await until(() => flows.subscribers === 0, 'the slow follower to be cut');
    sock.destroy();
    const text = await (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(valueOf(parsePrometheusText(text), 'palisade_flow_followers_cut_total')).toBe(1);
  });
});

describe('GET /v1/status', () => {
  it('reports version, revision, identities, map usage and drops of the last minute', async () => {
    const r = await get('/v1/status');
    expect(r.status).toBe(200);
    const s = JSON.parse(r.body);
    expect(s).toMatchObject({
      node: 'n1', mode: 'kubernetes', version: '9.9.9', ready: true, notReadyReason: null,
      revision: 42, resourceVersion: '1234', endpoints: 0, identities: 2, mapPressure: 0,
      flows: { capacity: 8192 },
    });
    expect(s.maps).toEqual([
      { name: 'endpoints', entries: 1, maxEntries: 65536, pressure: 0 },
      { name: 'ipcache', entries: 2, maxEntries: 262144, pressure: 0 },
      { name: 'policy', entries: 2, maxEntries: 1048576, pressure: 0 },
      { name: 'cidrs', entries: 0, maxEntries: 262144, pressure: 0 },
    ]);
    const before = s.drops.lastMinute;
    expect(before).toBe(s.drops.total - 0);
    now += 61_000;
    expect(JSON.parse((await get('/v1/status')).body).drops.lastMinute).toBe(0);
    flows.record(rec(now));
    expect(JSON.parse((await get('/v1/status')).body).drops).toEqual({ lastMinute: 1, total: before + 1 });
  });
});

describe('the health listener', () => {
  it.each([
    ['POST', '/v1/cni'], ['GET', '/v1/endpoints'], ['GET', '/v1/wait?resourceVersion=1'],
    ['POST', '/v1/flows'], ['GET', '/v1/flows/../cni'],
  ])('%s %s is 404 PAL_NOT_FOUND', async (method, path) => {
    const r = await get(path, method);
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).code).toBe('PAL_NOT_FOUND');
  });
});

describe('GET /metrics', () => {
  it('is valid exposition text with datapath, flow, realization and map metrics', async () => {
    metrics.policyRealized(3);
    metrics.policyRealized(40);
    metrics.policyRealized(60_000);
    metrics.statusWrite('PalisadeEndpoint', 'create', 'ok');
    metrics.cni('ADD', 'ok', 12);
    metrics.gauge('palisade_test_gauge', () => 5);
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const fams = parsePrometheusText(r.body);
    expect(fams.get('palisade_datapath_packets_total')?.type).toBe('counter');
    expect(valueOf(fams, 'palisade_datapath_packets_total', { verdict: 'dropped', direction: 'ingress' })).toBe(4);
    expect(valueOf(fams, 'palisade_datapath_packets_total', { verdict: 'allowed', direction: 'egress' })).toBe(20);
    expect(valueOf(fams, 'palisade_datapath_drops_total', { reason: 'policy-denied', direction: 'egress' })).toBe(2);
    expect(valueOf(fams, 'palisade_datapath_drops_total', { reason: 'malformed', direction: 'ingress' })).toBe(1);
    expect(valueOf(fams, 'palisade_flows_total', { verdict: 'allowed', direction: 'ingress' })).toBe(2);
    expect(valueOf(fams, 'palisade_l7_requests_total', { verdict: 'denied', direction: 'ingress' })).toBeGreaterThan(0);
    expect(valueOf(fams, 'palisade_l7_requests_total', { verdict: 'allowed', direction: 'egress' })).toBe(0);
    const h = fams.get('palisade_policy_realization_seconds')!;
    expect(h.type).toBe('histogram');
    expect(valueOf(fams, 'palisade_policy_realization_seconds_count')).toBe(3);
    expect(valueOf(fams, 'palisade_policy_realization_seconds_sum')).toBeCloseTo(60.043, 6);
    expect(valueOf(fams, 'palisade_policy_realization_seconds_bucket', { le: '0.005' })).toBe(1);
    expect(valueOf(fams, 'palisade_policy_realization_seconds_bucket', { le: '0.05' })).toBe(2);
    expect(valueOf(fams, 'palisade_policy_realization_seconds_bucket', { le: '30' })).toBe(2);
    expect(valueOf(fams, 'palisade_policy_realization_seconds_bucket', { le: '+Inf' })).toBe(3);
    expect(valueOf(fams, 'palisade_map_entries', { map: 'policy' })).toBe(2);
    expect(valueOf(fams, 'palisade_map_capacity', { map: 'ipcache' })).toBe(262144);
    expect(valueOf(fams, 'palisade_identities')).toBe(2);
    expect(valueOf(fams, 'palisade_policy_revision')).toBe(42);
    expect(valueOf(fams, 'palisade_status_writes_total', { kind: 'PalisadeEndpoint', operation: 'create', outcome: 'ok' })).toBe(1);
    expect(valueOf(fams, 'palisade_cni_request_seconds_count', { command: 'ADD', outcome: 'ok' })).toBe(1);
    expect(valueOf(fams, 'palisade_test_gauge')).toBe(5);
  });

  it('leaves out a source that fails and still answers', async () => {
    const saved = counters;
    counters = undefined as never;
    try {
      const r = await get('/metrics');
      expect(r.status).toBe(200);
      const fams = parsePrometheusText(r.body);
      expect(fams.has('palisade_datapath_packets_total')).toBe(false);
      expect(fams.has('palisade_endpoints')).toBe(true);
    } finally {
      counters = saved;
    }
  });

  it('the strict parser rejects what Prometheus would', () => {
    expect(() => parsePrometheusText('x 1\n')).toThrow(/no TYPE/);
    expect(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')).toThrow(/cumulative/);
    expect(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n')).toThrow(/\+Inf/);
    expect(() => parsePrometheusText('# TYPE a gauge\na{x="\\q"} 1\n')).toThrow(/escape/);
    expect(() => parsePrometheusText('# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n')).toThrow(/contiguous|duplicate/);
  });
});

describe('closing the API', () => {
  it('ends open follow streams instead of waiting for them', async () => {
    const { listenOnSocket } = await import('../../../pkg/api/server.ts');
    const store = new FlowStore();
    const api2 = buildApi({
      node: 'n2', mode: 'standalone', manager: { list: () => [] } as never, metrics: new Metrics(), flows: store,
      notReadyReason: () => undefined, revision: () => 0, resourceVersion: () => undefined,
    });
    const path = join(dir, 'close.sock');
    await listenOnSocket(api2, path);
    let ended = false;
    const req = request({ socketPath: path, path: '/v1/flows?follow=1' }, (res) => {
      res.resume();
      res.on('end', () => { ended = true; });
    });
    req.on('error', () => {});
    req.end();
    await until(() => store.subscribers === 1, 'the stream to start');
    await api2.close();
    await until(() => ended, 'the client to see the end');
    expect(store.subscribers).toBe(0);
  });
});

describe('HEAD /v1/flows?follow=1', () => {
  it('answers at once without opening a stream', async () => {
    const r = await get('/v1/flows?follow=1', 'HEAD');
    expect(r.status).toBe(200);
    expect(flows.subscribers).toBe(0);
  });
});
