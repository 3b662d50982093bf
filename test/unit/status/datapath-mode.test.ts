/**
 * `datapathMode` in GET /v1/status and in PalisadeNode.status is the attach mode the
 * datapath actually used, not only the configured `--attach`: an agent asked for tcx on
 * a kernel without it attaches with clsact and must say so (docs/inspect.md).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startAgent } from '../../../pkg/agent/agent.ts';
import { startInspection } from '../../../pkg/agent/inspect.ts';
import { NullDatapath } from '../../../pkg/agent/null-datapath.ts';
import { parseAgentArgs } from '../../../pkg/agent/options.ts';
import { Metrics } from '../../../pkg/api/metrics.ts';
import type { EndpointManager } from '../../../pkg/endpoint/manager.ts';
import { MemoryPodNetwork } from '../../../pkg/endpoint/podnet-memory.ts';
import {
  StatusApiError, type ListedObject, type ObjectRef, type StatusApi, type StatusKind, type StatusMeta,
} from '../../../pkg/status/api.ts';

/** Attaches with clsact whatever is asked, as LinuxDatapath does on a kernel without tcx. */
class NoTcxDatapath extends NullDatapath {
  mode: 'tcx' | 'clsact' | undefined;
  override async attach(ifindex: number): Promise<void> {
    await super.attach(ifindex);
    this.mode = 'clsact';
  }
  attachMode() { return this.mode; }
}

/** Status objects kept in a map, with the status patches in the order they came. */
class MemoryStatusApi implements StatusApi {
  readonly objects = new Map<string, { labels: Record<string, string>; status?: Record<string, unknown> }>();
  readonly patches: { kind: StatusKind; name: string; status: Record<string, unknown> }[] = [];
  async list(kind: StatusKind): Promise<ListedObject[]> {
    return [...this.objects].filter(([k]) => k.startsWith(`${kind}/`))
      .map(([k, o]) => ({ name: k.split('/').pop()!, labels: o.labels, status: o.status }));
  }
  async create(kind: StatusKind, ref: ObjectRef, meta: StatusMeta): Promise<void> {
    const key = `${kind}/${ref.namespace ?? ''}/${ref.name}`;
    if (this.objects.has(key)) throw new StatusApiError(409, 'exists');
    this.objects.set(key, { labels: meta.labels });
  }
  async patchStatus(kind: StatusKind, ref: ObjectRef, status: Record<string, unknown>): Promise<void> {
    const o = this.objects.get(`${kind}/${ref.namespace ?? ''}/${ref.name}`);
    if (!o) throw new StatusApiError(404, 'not found');
    o.status = { ...o.status, ...status };
    this.patches.push({ kind, name: ref.name, status });
  }
  async patchMeta(): Promise<void> {}
  async delete(kind: StatusKind, ref: ObjectRef): Promise<void> {
    this.objects.delete(`${kind}/${ref.namespace ?? ''}/${ref.name}`);
  }
}

async function until<T>(read: () => T, ok: (v: T) => boolean, what: string): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const v = read();
    if (ok(v)) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const dir = mkdtempSync(join(tmpdir(), 'palisade-dpmode-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function call(socket: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: body ? 'POST' : 'GET', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

describe('datapathMode', () => {
  it('GET /v1/status: the configured --attach tcx until the first attach, then the clsact actually used', async () => {
    const d = join(dir, 'agent');
    const socket = join(d, 'run/agent.sock');
    const opts = parseAgentArgs(['--standalone', '--node-name', 'n1', '--pod-cidr', '10.9.0.0/29',
      '--state-dir', join(d, 'state'), '--api-socket', socket, '--datapath', 'linux', '--attach', 'tcx',
      '--health-port', '0', '--l7-proxy-port', '0']);
    const podnet = new MemoryPodNetwork();
    const datapath = new NoTcxDatapath();
    const agent = await startAgent(opts, { podnet, datapath, log: () => {} });
    try {
      expect((await call(socket, '/v1/status')).json.datapathMode).toBe('tcx');
      const netns = join(d, 'netns-a');
      writeFileSync(netns, '');
      podnet.namespaces.add(netns);
      const add = await call(socket, '/v1/cni', {
        command: 'ADD', containerId: 'cid-a', netns, ifName: 'eth0', path: '',
        args: { K8S_POD_NAMESPACE: 'demo', K8S_POD_NAME: 'a', IgnoreUnknown: '1' },
        config: { cniVersion: '1.0.0', name: 'palisade', type: 'palisade' },
      });
      expect(add.status, JSON.stringify(add.json)).toBe(200);
      expect(datapath.attached.size).toBe(1);
      expect((await call(socket, '/v1/status')).json.datapathMode).toBe('clsact');
    } finally {
      await agent.stop();
    }
  });

  it('PalisadeNode.status: rewritten when the mode in use differs from the configured one', async () => {
    const datapath = new NoTcxDatapath();
    const api = new MemoryStatusApi();
    const manager = { list: () => [] } as unknown as EndpointManager;
    const insp = startInspection({
      node: 'n1', datapath, manager, metrics: new Metrics(), log: () => {}, datapathMode: 'tcx',
    });
    try {
      insp.startStatus(api, () => undefined);
      const nodeStatus = () => api.objects.get('PalisadeNode//n1')?.status;
      await until(nodeStatus, (s) => s?.datapathMode !== undefined, 'the node object');
      expect(nodeStatus()?.datapathMode).toBe('tcx');
      await datapath.attach(7);
      insp.refreshStatus();
      await until(nodeStatus, (s) => s?.datapathMode === 'clsact', 'datapathMode clsact');
      expect(api.patches.filter((p) => p.kind === 'PalisadeNode').map((p) => p.status.datapathMode))
        .toEqual(['tcx', 'clsact']);
      expect(insp.datapathMode()).toBe('clsact');
    } finally {
      await insp.stop();
    }
  });
});
