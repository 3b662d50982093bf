/**
 * The process that plays a pod's containers: one per pod, started by the lab inside the
 * pod's network namespace (`ip netns exec`).
 *
 *   node podserver.js --control SOCK [--tcp 80,81] [--udp 80,81]
 *
 * - Every TCP port accepts connections and answers any HTTP request with 200.
 * - Every UDP port echoes datagrams.
 * - SOCK (a unix socket in the lab directory, reachable from the lab process whatever
 *   its netns) serves the lab: `GET /ready`, and `POST /probe` with
 *   `{probes: ProbeRequest[]}` answering `{results: ProbeValue[]}` in the same order;
 *   the probes run in parallel from this pod's namespace.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createSocket } from 'node:dgram';
import { rmSync } from 'node:fs';
import { probe, type ProbeRequest } from './probe.ts';

function ports(flag: string): number[] {
  const i = process.argv.indexOf(flag);
  if (i < 0) return [];
  return (process.argv[i + 1] ?? '').split(',').filter(Boolean).map(Number);
}

function listenTcp(port: number): Promise<void> {
  const srv = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
    });
  });
  srv.keepAliveTimeout = 1000;
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ port, host: '0.0.0.0', backlog: 1024 }, () => resolve());
  });
}

function listenUdp(port: number): Promise<void> {
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, '0.0.0.0', () => resolve());
  });
}

async function body(req: IncomingMessage): Promise<string> {
  let s = '';
  req.setEncoding('utf8');
  for await (const chunk of req) s += chunk as string;
  return s;
}

async function control(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'GET' && req.url === '/ready') {
    res.end('{"ready":true}');
    return;
  }
  if (req.method === 'POST' && req.url === '/probe') {
    const { probes } = JSON.parse(await body(req)) as { probes: ProbeRequest[] };
    const results = await Promise.all(probes.map((p) => probe(p)));
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ results }));
    return;
  }
  res.statusCode = 404;
  res.end('{}');
}

async function main(): Promise<void> {
  const ci = process.argv.indexOf('--control');
  const sock = ci >= 0 ? process.argv[ci + 1] : undefined;
  if (!sock) throw new Error('usage: podserver --control SOCK [--tcp P,..] [--udp P,..]');
  await Promise.all([...ports('--tcp').map(listenTcp), ...ports('--udp').map(listenUdp)]);
  rmSync(sock, { force: true });
  const ctl = createServer((req, res) => {
    control(req, res).catch((err: Error) => {
      res.statusCode = 500;
      res.end(JSON.stringify({ error: err.message }));
    });
  });
  ctl.listen(sock);
  const stop = () => {
    rmSync(sock, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: Error) => {
  console.error(`podserver: ${err.message}`);
  process.exit(1);
});
