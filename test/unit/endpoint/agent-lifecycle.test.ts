// A standalone agent (in-memory pod network and datapath) with --cni-conf-dir: the
// conflist appears only once the socket serves, has the agent's socket, and is removed
// on stop only with --remove-cni-conf-on-shutdown. The TCP health listener answers
// /healthz and /readyz like the socket and serves nothing else. In-cluster credentials
// fail clearly outside a pod.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startAgent } from '../../../pkg/agent/agent.ts';
import { CNI_CONF_NAME } from '../../../pkg/agent/cniconf.ts';
import { loadInClusterConfig } from '../../../pkg/agent/incluster.ts';
import { NullDatapath } from '../../../pkg/agent/null-datapath.ts';
import { parseAgentArgs } from '../../../pkg/agent/options.ts';
import { MemoryPodNetwork } from '../../../pkg/endpoint/podnet-memory.ts';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'palisade-agent-life-'));
  dirs.push(d);
  return d;
}

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function start(extra: string[]) {
  const d = tmp();
  const opts = parseAgentArgs(['--standalone', '--node-name', 'n1', '--pod-cidr', '10.9.0.0/30',
    '--state-dir', join(d, 'state'), '--api-socket', join(d, 'run/agent.sock'), '--datapath', 'none',
    '--health-port', '0', ...extra.map((a) => a.replace('$D', d))]);
  const agent = await startAgent(opts, { podnet: new MemoryPodNetwork(), datapath: new NullDatapath(), log: () => {} });
  return { d, opts, agent };
}

describe('the agent with --cni-conf-dir', () => {
  it('writes the conflist once serving and removes it on stop when asked', async () => {
    const { d, agent } = await start(['--cni-conf-dir', '$D/net.d', '--remove-cni-conf-on-shutdown']);
    try {
      const file = join(d, 'net.d', CNI_CONF_NAME);
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
        cniVersion: '1.1.0', name: 'palisade',
        plugins: [{ type: 'palisade', agentSocket: join(d, 'run/agent.sock') }],
      });
      // Temp + rename: nothing else left in the directory.
      expect(readdirSync(join(d, 'net.d'))).toEqual([CNI_CONF_NAME]);
      expect(existsSync(join(d, 'run/agent.sock'))).toBe(true);
      await agent.stop();
      expect(existsSync(file)).toBe(false);
    } finally {
      await agent.stop();
    }
  });

  it('leaves the conflist in place on stop without --remove-cni-conf-on-shutdown', async () => {
    const { d, agent } = await start(['--cni-conf-dir', '$D/net.d']);
    await agent.stop();
    expect(existsSync(join(d, 'net.d', CNI_CONF_NAME))).toBe(true);
  });

  it('writes nothing without --cni-conf-dir', async () => {
    const { d, agent } = await start([]);
    await agent.stop();
    expect(readdirSync(d).sort()).toEqual(['run', 'state']);
  });
});

describe('the TCP health listener', () => {
  it('serves /healthz, /readyz and /metrics from the API, and nothing else', async () => {
    const { agent } = await start(['--cni-conf-dir', '$D/net.d']);
    try {
      expect(agent.healthPort).toBeGreaterThan(0);
      expect(await get(agent.healthPort, '/healthz')).toEqual({ status: 200, body: JSON.stringify({ ok: true }) });
      expect(await get(agent.healthPort, '/readyz')).toEqual({ status: 200, body: JSON.stringify({ ready: true }) });
      expect((await get(agent.healthPort, '/metrics')).body).toContain('palisade_ipam_addresses_used');
      // CNI ADD/DEL and endpoint listings stay on the socket only.
      expect((await get(agent.healthPort, '/v1/endpoints')).status).toBe(404);
      expect((await get(agent.healthPort, '/readyz', 'POST')).status).toBe(404);
    } finally {
      await agent.stop();
    }
  });

  it('reports not ready with the socket API\'s reason when IPAM is full', async () => {
    const { agent } = await start([]);
    try {
      expect((await get(agent.healthPort, '/readyz')).status).toBe(200);
      let i = 0;
      while (agent.ipam.used < agent.ipam.capacity) {
        await agent.ipam.allocate({ containerId: `c${i++}`, ifName: 'eth0', network: 'palisade' });
      }
      const r = await get(agent.healthPort, '/readyz');
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body)).toMatchObject({ code: 'PAL_NOT_READY' });
      expect(r.body).toContain('no free address');
    } finally {
      await agent.stop();
    }
  });

  it('fails to start, cleanly, when the port is taken', async () => {
    const first = await start([]);
    try {
      await expect(start(['--health-port', String(first.agent.healthPort)])).rejects.toThrow(/health listener 127\.0\.0\.1:\d+/);
    } finally {
      await first.agent.stop();
    }
  });
});

describe('in-cluster credentials', () => {
  it('are a clear error outside a pod', () => {
    const root = tmp();
    expect(() => loadInClusterConfig(root)).toThrow(/in-cluster credentials: missing .*serviceaccount\/token/);
  });
});
