// The shim against a fake agent on a real unix socket: what reaches the agent, what the
// runtime sees on stdout and in the exit status.
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runShim } from '../../../pkg/cni/shim.ts';

let dir: string;
let server: Server;
let socket: string;
let received: Record<string, unknown>[] = [];
let reply: (body: Record<string, unknown>) => { status: number; body: unknown } = () => ({ status: 200, body: {} });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'palisade-shim-'));
  socket = join(dir, 'agent.sock');
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      received.push(body);
      const r = reply(body);
      res.writeHead(r.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  received = [];
  reply = () => ({ status: 200, body: {} });
});

const env = (cmd: string, extra: Record<string, string> = {}) => ({
  CNI_COMMAND: cmd, CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/p', CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=a', ...extra,
});
const conf = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'palisade', agentSocket: socket, ...extra });

describe('palisade-cni shim', () => {
  it('VERSION is answered without the agent', async () => {
    const out = await runShim({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
    expect(out.exitCode).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({
      cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
    expect(received).toHaveLength(0);
  });

  it('ADD forwards the environment and config and prints the result', async () => {
    reply = () => ({ status: 200, body: { result: { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/32' }] } } });
    const out = await runShim(env('ADD'), conf());
    expect(out.exitCode).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/32' }] });
    expect(received[0]).toMatchObject({
      command: 'ADD', containerId: 'c1', netns: '/var/run/netns/p', ifName: 'eth0', path: '/opt/cni/bin',
      args: { K8S_POD_NAMESPACE: 'x', K8S_POD_NAME: 'a', IgnoreUnknown: '1' },
      config: { name: 'net', cniVersion: '1.0.0' },
    });
  });

  it('an agent error becomes spec error JSON and exit 1', async () => {
    reply = () => ({ status: 409, body: { error: { code: 102, msg: 'allocating an address', details: 'no free address' } } });
    const out = await runShim(env('ADD'), conf());
    expect(out.exitCode).toBe(1);
    expect(JSON.parse(out.stdout)).toEqual({
      cniVersion: '1.0.0', code: 102, msg: 'allocating an address', details: 'no free address',
    });
  });

  it('malformed stdin is code 6 and never reaches the agent', async () => {
    const out = await runShim(env('ADD'), '{"cniVersion":');
    expect(out.exitCode).toBe(1);
    expect(JSON.parse(out.stdout)).toMatchObject({ code: 6, cniVersion: '1.1.0' });
    expect(received).toHaveLength(0);
  });

  it('a missing CNI_IFNAME is code 4 and never reaches the agent', async () => {
    const out = await runShim(env('ADD', { CNI_IFNAME: '' }), conf());
    expect(JSON.parse(out.stdout)).toMatchObject({ code: 4, cniVersion: '1.0.0' });
    expect(out.exitCode).toBe(1);
    expect(received).toHaveLength(0);
  });

  it('DEL prints nothing on success', async () => {
    const out = await runShim(env('DEL'), conf());
    expect(out).toMatchObject({ stdout: '', exitCode: 0 });
    expect(received[0]?.command).toBe('DEL');
  });

  it('DEL with the agent down is recorded in the spool and succeeds', async () => {
    const spool = join(dir, 'spool');
    const out = await runShim(env('DEL', { CNI_CONTAINERID: 'gone1' }),
      conf({ agentSocket: join(dir, 'nobody.sock'), pendingDelDir: spool }));
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toBe('');
    expect(out.log.join('\n')).toMatch(/DEL recorded/);
    const files = readdirSync(spool);
    expect(files).toHaveLength(1);
    const rec = JSON.parse(readFileSync(join(spool, files[0]!), 'utf8'));
    expect(rec.request).toMatchObject({ command: 'DEL', containerId: 'gone1', ifName: 'eth0' });
  });

  it('the default spool is next to the socket', async () => {
    const out = await runShim(env('DEL', { CNI_CONTAINERID: 'gone2' }), conf({ agentSocket: join(dir, 'other', 'x.sock') }));
    expect(out.exitCode).toBe(0);
    expect(readdirSync(join(dir, 'other', 'pending-del'))).toHaveLength(1);
  });

  it('ADD with the agent down is code 11', async () => {
    const out = await runShim(env('ADD'), conf({ agentSocket: join(dir, 'nobody.sock') }));
    expect(out.exitCode).toBe(1);
    expect(JSON.parse(out.stdout)).toMatchObject({ code: 11 });
  });

  it('STATUS with the agent down is code 50', async () => {
    const out = await runShim({ CNI_COMMAND: 'STATUS' },
      JSON.stringify({ cniVersion: '1.1.0', name: 'net', agentSocket: join(dir, 'nobody.sock') }));
    expect(JSON.parse(out.stdout)).toMatchObject({ code: 50 });
  });

  it('a non-JSON agent answer is an error, not a crash', async () => {
    reply = () => ({ status: 500, body: 'boom' });
    const out = await runShim(env('ADD'), conf());
    expect(out.exitCode).toBe(1);
    expect(JSON.parse(out.stdout).code).toBeGreaterThanOrEqual(100);
  });
});
