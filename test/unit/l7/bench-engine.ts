/**
 * Micro benchmark of the L7 proxy engine alone (no eBPF, no TPROXY): keep-alive GETs over
 * loopback, through the proxy vs straight to the same upstream, in one run.
 *
 *   node test/unit/l7/bench-engine.ts [seconds=3] [connections=32]
 *
 * Three threads so that the proxy has a core of its own as far as the machine allows: the
 * load generator and a minimal upstream (fixed 2-byte response) in worker threads, the proxy
 * in the main thread with a decider that evaluates a small rule list per request.
 * `runKeepAliveLoad` is exported for `make bench-l7` (test/bench/l7.ts).
 * Not a test: prints numbers, asserts nothing.
 */
import net from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

export interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

/**
 * Drives `connections` keep-alive connections to host:port, each sending `GET path`
 * and waiting for the whole response (Content-Length framed) before the next, for `seconds`.
 */
export async function runKeepAliveLoad(opts: { host: string; port: number; path?: string; seconds: number; connections: number }): Promise<LoadResult> {
  const req = Buffer.from(`GET ${opts.path ?? '/public/x'} HTTP/1.1\r\nHost: bench\r\n\r\n`, 'latin1');
  const latencies: number[] = [];
  let requests = 0;
  let errors = 0;
  const end = performance.now() + opts.seconds * 1000;
  // One connection's loop; when the proxy ends a connection (maxRequestsPerConnection),
  // the next one is opened until the time is up.
  const one = async (): Promise<void> => {
    while (performance.now() < end) {
      if (!await connection()) break;
    }
  };
  /** Resolves true when the server closed the connection before the time was up. */
  const connection = (): Promise<boolean> => new Promise((resolve) => {
    const s = net.connect({ host: opts.host, port: opts.port });
    s.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let t0 = 0;
    const send = (): void => {
      if (performance.now() >= end) {
        s.destroy();
        resolve(false);
        return;
      }
      t0 = performance.now();
      s.write(req);
    };
    s.on('connect', send);
    s.on('data', (c: Buffer) => {
      buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
      for (;;) {
        const he = buf.indexOf('\r\n\r\n');
        if (he < 0) return;
        const m = /content-length: *(\d+)/i.exec(buf.toString('latin1', 0, he));
        const total = he + 4 + (m ? Number(m[1]) : 0);
        if (buf.length < total) return;
        buf = buf.subarray(total);
        requests++;
        latencies.push(performance.now() - t0);
        send();
      }
    });
    s.on('error', () => {
      errors++;
      resolve(false);
    });
    s.on('close', () => resolve(true));
  });
  const t = performance.now();
  await Promise.all(Array.from({ length: opts.connections }, one));
  const seconds = (performance.now() - t) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number): number => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]! : 0;
  return { requests, seconds, rps: requests / seconds, p50Ms: q(0.5), p99Ms: q(0.99), errors };
}

/** A minimal keep-alive upstream: answers every request head with `200 ok`. */
export function startFixedUpstream(): Promise<net.Server> {
  const resp = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', 'latin1');
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    let pending = '';
    s.on('data', (c: Buffer) => {
      pending += c.toString('latin1');
      let i: number;
      while ((i = pending.indexOf('\r\n\r\n')) >= 0) {
        pending = pending.slice(i + 4);
        s.write(resp);
      }
    });
    s.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function workerMain(): Promise<void> {
  const d = workerData as { role: 'upstream' } | { role: 'load'; port: number; seconds: number; connections: number };
  if (d.role === 'upstream') {
    const server = await startFixedUpstream();
    parentPort!.postMessage((server.address() as net.AddressInfo).port);
    return;
  }
  parentPort!.postMessage(await runKeepAliveLoad({ host: '127.0.0.1', port: d.port, seconds: d.seconds, connections: d.connections }));
}

async function main(): Promise<void> {
  const { startL7Proxy } = await import('../../../pkg/l7/proxy.ts');
  const { matchAnyHttpRule } = await import('../../../pkg/l7/match.ts');
  const seconds = Number(process.argv[2] ?? 3);
  const connections = Number(process.argv[3] ?? 32);
  const self = new URL(import.meta.url);
  const up = new Worker(self, { workerData: { role: 'upstream' } });
  const upstreamPort = await new Promise<number>((resolve) => up.once('message', resolve));
  const rules = [{ method: 'GET', path: '/public(/.*)?' }, { method: 'POST', path: '/submit', headers: [{ name: 'x-token' }] }];
  let records = 0;
  const proxy = await startL7Proxy({
    host: '127.0.0.1', port: 0, node: 'bench',
    decider: { decide: (_c, r) => ({ allowed: matchAnyHttpRule(rules, r), direction: 'ingress', policy: 'bench' }) },
    onRecord: () => { records++; },
    originalDestination: () => ({ ip: '127.0.0.1', port: upstreamPort }),
  });
  const load = (port: number): Promise<LoadResult> => new Promise((resolve, reject) => {
    const w = new Worker(self, { workerData: { role: 'load', port, seconds, connections } });
    w.once('message', (r: LoadResult) => {
      void w.terminate();
      resolve(r);
    });
    w.once('error', reject);
  });
  const direct = await load(upstreamPort);
  const proxied = await load(proxy.port);
  const fmt = (r: LoadResult): string => `${Math.round(r.rps)} req/s, p50 ${r.p50Ms.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms, errors ${r.errors}`;
  console.log(`direct : ${fmt(direct)}`);
  console.log(`proxied: ${fmt(proxied)}  (records ${records})`);
  console.log(`ratio proxied/direct rps ${(proxied.rps / direct.rps).toFixed(2)}, added p50 ${(proxied.p50Ms - direct.p50Ms).toFixed(3)} ms`);
  await proxy.close();
  await up.terminate();
}

if (isMainThread) {
  if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) await main();
} else {
  await workerMain();
}
