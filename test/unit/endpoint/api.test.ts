// The agent API on top of a real endpoint manager (in-memory pod network and datapath),
// through fastify's inject: routes, status codes and stable PAL_* codes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NullDatapath } from '../../../pkg/agent/null-datapath.ts';
import { Metrics } from '../../../pkg/api/metrics.ts';
import { buildApi } from '../../../pkg/api/server.ts';
import { EndpointManager } from '../../../pkg/endpoint/manager.ts';
import { MemoryPodNetwork } from '../../../pkg/endpoint/podnet-memory.ts';
import { StandaloneRealizer } from '../../../pkg/endpoint/standalone-realizer.ts';
import { EndpointStore } from '../../../pkg/endpoint/store.ts';
import { Ipam } from '../../../pkg/ipam/ipam.ts';

let dir: string;
let app: ReturnType<typeof buildApi>;
let notReady: string | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'palisade-api-'));
  const podnet = new MemoryPodNetwork();
  podnet.namespaces.add('/var/run/netns/p1');
  const datapath = new NullDatapath();
  const manager = new EndpointManager({
    ipam: await Ipam.open({ stateDir: dir, cidr: '10.6.0.0/30' }), podnet, datapath,
    realizer: new StandaloneRealizer(datapath), store: new EndpointStore(dir), defaultMtu: 1500,
    netnsExists: async (p) => podnet.namespaces.has(p),
  });
  app = buildApi({
    node: 'n1', mode: 'standalone', manager, metrics: new Metrics(),
    notReadyReason: () => notReady, revision: () => 0, resourceVersion: () => undefined,
  });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

const cni = (command: string, extra: Record<string, unknown> = {}) => app.inject({
  method: 'POST', url: '/v1/cni',
  payload: {
    command, containerId: 'c1', netns: '/var/run/netns/p1', ifName: 'eth0',
    args: { K8S_POD_NAMESPACE: 'x', K8S_POD_NAME: 'a', IgnoreUnknown: '1' }, path: '',
    config: { cniVersion: '1.0.0', name: 'net', type: 'palisade' }, ...extra,
  },
});

describe('agent API', () => {
  it('POST /v1/cni ADD answers the result', async () => {
    const r = await cni('ADD');
    expect(r.statusCode).toBe(200);
    expect(r.json().result.ips[0].address).toBe('10.6.0.1/32');
  });

  it('GET /v1/endpoints lists it with standalone details', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/endpoints' });
    expect(r.json()).toMatchObject([{ containerId: 'c1', pod: 'x/a', ipv4: '10.6.0.1', ifName: 'eth0' }]);
  });

  it('GET /v1/status counts endpoints', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/status' });
    expect(r.json()).toMatchObject({ node: 'n1', mode: 'standalone', ready: true, revision: 0, resourceVersion: null, endpoints: 1 });
  });

  it('a CNI error carries the CNI code and the PAL code', async () => {
    const r = await cni('ADD', { containerId: 'c2', netns: '/var/run/netns/missing' });
    expect(r.statusCode).toBe(404);
    expect(r.json().error).toMatchObject({ code: 3, palCode: 'PAL_UNKNOWN_CONTAINER' });
  });

  it('exhaustion is 409 / code 102', async () => {
    await cni('ADD', { containerId: 'c3' });
    const r = await cni('ADD', { containerId: 'c4' });
    expect(r.statusCode).toBe(409);
    expect(r.json().error).toMatchObject({ code: 102, palCode: 'PAL_IPAM_EXHAUSTED' });
  });

  it('an invalid body is a CNI decode/env error', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/cni', payload: { command: 'NOPE', config: {} } });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe(4);
  });

  it('GET /v1/wait is 501 in standalone mode and 400 for a bad resourceVersion', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/wait?resourceVersion=5' })).json())
      .toMatchObject({ code: 'PAL_WAIT_UNSUPPORTED' });
    const bad = await app.inject({ method: 'GET', url: '/v1/wait?resourceVersion=x' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('PAL_BAD_REQUEST');
  });

  it('/readyz follows the readiness reason; STATUS says 50 when not ready', async () => {
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    notReady = 'restoring endpoints';
    const r = await app.inject({ method: 'GET', url: '/readyz' });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual({ code: 'PAL_NOT_READY', message: 'restoring endpoints' });
    const s = await cni('STATUS', { config: { cniVersion: '1.1.0', name: 'net' } });
    expect(s.json().error).toMatchObject({ code: 50, msg: 'restoring endpoints' });
    notReady = undefined;
  });

  it('/metrics counts CNI requests', async () => {
    const r = await app.inject({ method: 'GET', url: '/metrics' });
    expect(r.body).toMatch(/palisade_cni_requests_total\{command="ADD",outcome="ok"\} 2/);
    expect(r.body).toMatch(/palisade_endpoints 2/);
  });

  it('unknown routes are PAL_NOT_FOUND', async () => {
    const r = await app.inject({ method: 'GET', url: '/v2/x' });
    expect(r.statusCode).toBe(404);
    expect(r.json().code).toBe('PAL_NOT_FOUND');
  });
});
