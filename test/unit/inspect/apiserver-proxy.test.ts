/**
 * The lab API server's pods/proxy and nodes/proxy subresources: the target is resolved
 * from the Pod (IP, port) or Node (InternalIP), reached through the pluggable dialer,
 * and the answer (status, headers, body) is relayed as it is produced.
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matchProxyPath } from '../../../pkg/apiserver/proxy.ts';
import { startApiServer, type ApiServer, type ProxyTarget } from '../../../pkg/apiserver/index.ts';

describe('proxy paths', () => {
  it('parses pod and node proxy paths with scheme and port', () => {
    expect(matchProxyPath('/api/v1/namespaces/kube-system/pods/agent-1:9876/proxy/v1/flows')).toEqual({
      resource: 'pods', namespace: 'kube-system', name: 'agent-1', port: '9876', path: '/v1/flows',
    });
    expect(matchProxyPath('/api/v1/nodes/https:n1:10250/proxy')).toEqual({
      resource: 'nodes', name: 'n1', scheme: 'https', port: '10250', path: '/',
    });
    expect(matchProxyPath('/api/v1/nodes/n1/proxy/metrics')).toMatchObject({ name: 'n1', path: '/metrics' });
    expect(matchProxyPath('/api/v1/namespaces/x/pods/a')).toBeUndefined();
    expect(matchProxyPath('/api/v1/namespaces/x/pods/a/status')).toBeUndefined();
  });
});

describe('pods/proxy and nodes/proxy', () => {
  let api: ApiServer;
  let target: Server;
  const dir = mkdtempSync(join(tmpdir(), 'pal-proxy-'));
  const sock = join(dir, 'agent.sock');
  const dialed: ProxyTarget[] = [];
  let release: () => void = () => {};

  beforeAll(async () => {
    // The "agent": a unix-socket HTTP server, as the lab's agents are.
    target = createServer((req, res) => {
      if (req.url?.startsWith('/stream')) {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write('{"n":1}\n');
        release = () => res.end('{"n":2}\n');
        return;
      }
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => {
        res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'application/json', 'x-agent': 'yes' });
        res.end(JSON.stringify({ method: req.method, url: req.url, body, auth: req.headers.authorization ?? null }));
      });
    });
    await new Promise<void>((r) => target.listen(sock, r));
    api = await startApiServer({
      dial: async (t) => {
        dialed.push(t);
        if (t.node !== 'n1' || t.port !== 9876) throw new Error('connect ECONNREFUSED');
        return connect(sock);
      },
    });
    api.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, status: { addresses: [{ type: 'Hostname', address: 'n1' }, { type: 'InternalIP', address: '10.0.0.1' }] } });
    const pod = api.create({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'agent-n1', namespace: 'kube-system' },
      spec: { nodeName: 'n1', hostNetwork: true, containers: [{ name: 'agent', image: 'x', ports: [{ name: 'health', containerPort: 9876 }] }] },
    });
    api.update({ ...pod, status: { phase: 'Running', podIP: '10.0.0.1' } }, 'status');
    api.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'pending', namespace: 'kube-system' }, spec: { containers: [{ name: 'c', image: 'x' }] } });
  });

  afterAll(async () => {
    await api.close();
    await new Promise<void>((r) => target.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('relays a GET with its query to the pod port, status and headers included', async () => {
    const r = await fetch(`${api.url}/api/v1/namespaces/kube-system/pods/agent-n1:9876/proxy/v1/flows?verdict=dropped&limit=5`, {
      headers: { authorization: 'Bearer secret' },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-agent')).toBe('yes');
    const body = await r.json() as { method: string; url: string; auth: string | null };
    expect(body).toMatchObject({ method: 'GET', url: '/v1/flows?verdict=dropped&limit=5' });
    // The caller's credentials are for the API server, not for the target.
    expect(body.auth).toBeNull();
    expect(dialed.at(-1)).toMatchObject({ resource: 'pods', host: '10.0.0.1', port: 9876, node: 'n1', scheme: 'http' });
  });

  it('uses the first container port when the path names none, and relays POST bodies and error statuses', async () => {
    const r = await fetch(`${api.url}/api/v1/namespaces/kube-system/pods/agent-n1/proxy/missing`, { method: 'POST', body: 'hello' });
    expect(r.status).toBe(404);
    expect(await r.json()).toMatchObject({ method: 'POST', url: '/missing', body: 'hello' });
  });

  it('proxies a node to its InternalIP', async () => {
    const r = await fetch(`${api.url}/api/v1/nodes/n1:9876/proxy/metrics`);
    expect(r.status).toBe(200);
    expect(dialed.at(-1)).toMatchObject({ resource: 'nodes', host: '10.0.0.1', port: 9876, node: 'n1' });
  });

  it('streams: the first line arrives before the target ends the response', async () => {
    const r = await fetch(`${api.url}/api/v1/nodes/n1:9876/proxy/stream`);
    const reader = r.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('{"n":1}\n');
    release();
    let rest = '';
    for (;;) {
      const c = await reader.read();
      if (c.done) break;
      rest += new TextDecoder().decode(c.value);
    }
    expect(rest).toBe('{"n":2}\n');
  });

  it('answers 503 when the target cannot be reached, 404 for an unknown pod', async () => {
    const r = await fetch(`${api.url}/api/v1/namespaces/kube-system/pods/agent-n1:1234/proxy/`);
    expect(r.status).toBe(503);
    expect(await r.json()).toMatchObject({ kind: 'Status', reason: 'ServiceUnavailable', message: expect.stringContaining('error trying to reach service') });
    const none = await fetch(`${api.url}/api/v1/namespaces/kube-system/pods/nope:9876/proxy/`);
    expect(none.status).toBe(404);
    const noIp = await fetch(`${api.url}/api/v1/namespaces/kube-system/pods/pending:80/proxy/`);
    expect(noIp.status).toBe(503);
    expect(await noIp.json()).toMatchObject({ message: expect.stringContaining('has no IP') });
  });

  it('kubectl get --raw reaches the target through the proxy', async () => {
    const kc = join(dir, 'kubeconfig');
    await api.writeKubeconfig(kc);
    // Asynchronously: the API server answers from this very process.
    const out = await new Promise<string>((resolve, reject) => {
      execFile('kubectl', ['--kubeconfig', kc, '--cache-dir', join(dir, 'cache'), 'get', '--raw',
        '/api/v1/namespaces/kube-system/pods/agent-n1:9876/proxy/v1/status'], { encoding: 'utf8', timeout: 15_000 },
      (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)));
    });
    expect(JSON.parse(out)).toMatchObject({ url: '/v1/status' });
  });
});
