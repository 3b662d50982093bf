/**
 * The L7 proxy engine end to end on loopback: real HTTP clients (node:http and raw
 * sockets) through the proxy to a real upstream. The proxy runs non-transparently here:
 * originalDestination maps every accepted connection to the test upstream.
 */
import http from 'node:http';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { MAX_DRAIN_BYTES } from '../../../pkg/l7/connection.ts';
import { startL7Proxy } from '../../../pkg/l7/proxy.ts';
import { type ProxyFixture, RawClient, get, startProxy, startUpstream, statusLines, type Upstream } from './harness.ts';

const publicGet = [{ method: 'GET|HEAD', path: '/public(/.*)?' }];

let upstream: Upstream;
let fx: ProxyFixture;
const clients: RawClient[] = [];

function client(): RawClient {
  const c = new RawClient(fx.proxy.port);
  clients.push(c);
  return c;
}

async function use(rules: Parameters<typeof startProxy>[1], extra: Parameters<typeof startProxy>[2] = {}): Promise<void> {
  fx = await startProxy(upstream.port, rules, extra);
}

function httpRequest(opts: http.RequestOptions, body?: (req: http.ClientRequest) => void): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: fx.proxy.port, agent: false, ...opts }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) body(req);
    else req.end();
  });
}

beforeEach(async () => {
  upstream = await startUpstream();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await fx?.proxy.close();
  await upstream.close();
});

describe('allow and deny', () => {
  test('GET allowed: 200 from the upstream, one allowed record', async () => {
    await use(publicGet);
    const res = await httpRequest({ path: '/public/index.html', headers: { host: 'web.default' } });
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello GET /public/index.html');
    expect(fx.records).toHaveLength(1);
    const r = fx.records[0]!;
    expect(r).toMatchObject({
      node: 'node-0', verdict: 'allowed', direction: 'ingress', protocol: 'TCP',
      policy: 'PalisadeNetworkPolicy:default/web', ruleId: 7,
      dst: { ip: '127.0.0.1', port: upstream.port },
      http: { method: 'GET', path: '/public/index.html', host: 'web.default', status: 200 },
    });
    expect(r.reason).toBeUndefined();
    expect(r.src.ip).toBe('127.0.0.1');
    expect(r.src.port).toBeGreaterThan(0);
  });

  test('POST denied: 403 Access denied, the upstream never sees it', async () => {
    await use(publicGet);
    const res = await httpRequest({ method: 'POST', path: '/public', headers: { 'content-length': '3' } }, (req) => req.end('abc'));
    expect(res.status).toBe(403);
    expect(res.body).toBe('Access denied');
    expect(res.headers['content-type']).toBe('text/plain');
    expect(res.headers['content-length']).toBe('13');
    expect(upstream.seen).toEqual([]);
    expect(fx.records[0]).toMatchObject({ verdict: 'denied', reason: 'http-denied', http: { method: 'POST', path: '/public', status: 403 } });
  });

  test('GET /admin denied by a path rule', async () => {
    await use(publicGet);
    expect((await httpRequest({ path: '/admin' })).status).toBe(403);
  });

  test('host and header rules apply to the request as sent', async () => {
    await use([{ host: 'api.example.com', headers: [{ name: 'x-token', value: 's3cret' }] }]);
    expect((await httpRequest({ path: '/', headers: { host: 'api.example.com:8080', 'x-token': 's3cret' } })).status).toBe(200);
    expect((await httpRequest({ path: '/', headers: { host: 'api.example.com', 'x-token': 'wrong' } })).status).toBe(403);
    expect((await httpRequest({ path: '/', headers: { host: 'other.example.com', 'x-token': 's3cret' } })).status).toBe(403);
  });

  test('HEAD denied: 403 head without a body, connection still usable', async () => {
    await use(publicGet);
    const c = client();
    c.send('HEAD /admin HTTP/1.1\r\nHost: web\r\n\r\n' + get('/public'));
    const text = await c.until((t) => t.includes('hello GET /public'));
    expect(statusLines(text)).toEqual(['403', '200']);
    expect(text).not.toContain('Access denied');
  });

  test('a decider that throws denies', async () => {
    await use('all');
    fx.decider.decide = () => {
      throw new Error('boom');
    };
    expect((await httpRequest({ path: '/public' })).status).toBe(403);
  });
});

describe('keep-alive and pipelining', () => {
  test('a policy change applies to the next request on the same connection', async () => {
    await use(publicGet);
    const c = client();
    c.send(get('/public/a'));
    expect(await c.until((t) => t.includes('hello GET /public/a'))).toMatch(/^HTTP\/1\.1 200/);
    fx.decider.rules = [{ method: 'POST' }];
    c.reset();
    c.send(get('/public/a'));
    const text = await c.until((t) => t.includes('Access denied'));
    expect(statusLines(text)).toEqual(['403']);
    expect(c.closed).toBe(false);
    fx.decider.rules = 'all';
    c.reset();
    c.send(get('/public/b'));
    expect(await c.until((t) => t.includes('hello GET /public/b'))).toMatch(/^HTTP\/1\.1 200/);
    expect(fx.decider.calls.map((r) => r.path)).toEqual(['/public/a', '/public/a', '/public/b']);
    expect(upstream.accepted).toBe(1);
    expect(fx.records.map((r) => r.verdict)).toEqual(['allowed', 'denied', 'allowed']);
  });

  test('pipelined requests are answered in order, denied ones in place', async () => {
    await use(publicGet);
    const c = client();
    c.send(get('/public/1') + get('/admin') + 'POST /public/2 HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\n\r\nbody'
      + get('/public/3') + get('/public/4', 'Host: web\r\nConnection: close\r\n'));
    expect(await c.closedWithin()).toBe(true);
    const text = c.text;
    expect(statusLines(text)).toEqual(['200', '403', '403', '200', '200']);
    const order = [...text.matchAll(/hello GET (\/public\/\d)|Access denied/g)].map((m) => m[1] ?? 'denied');
    expect(order).toEqual(['/public/1', 'denied', 'denied', '/public/3', '/public/4']);
    expect(upstream.seen).toEqual(['GET /public/1', 'GET /public/3', 'GET /public/4']);
  });

  test.each([1, 2, 3, 5, 7, 13])('a pipelined stream split every %i bytes gets the same answers', async (step) => {
    await use([{ method: 'GET', path: '/public(/.*)?' }, { method: 'POST', path: '/echo' }]);
    const stream = Buffer.from('\r\n' + get('/public/1')
      + 'POST /echo HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nabcde'
      + 'POST /denied HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nxyz'
      + 'POST /echo HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nfgh\r\n2\r\nij\r\n0\r\nT: 1\r\n\r\n'
      + 'POST /denied HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nq\r\n0\r\n\r\n'
      + get('/public/2', 'Host: web\r\nConnection: close\r\n'), 'latin1');
    const c = client();
    c.socket.setNoDelay(true);
    await new Promise((r) => c.socket.once('connect', r));
    for (let off = 0; off < stream.length; off += step) {
      c.send(stream.subarray(off, off + step));
      await new Promise((r) => setImmediate(r));
    }
    expect(await c.closedWithin()).toBe(true);
    expect(statusLines(c.text)).toEqual(['200', '200', '403', '200', '403', '200']);
    const bodies = [...c.text.matchAll(/\r\n\r\n([^H]*)/g)].map((m) => m[1]);
    expect(bodies).toEqual(['hello GET /public/1', 'abcde', 'Access denied', 'fghij', 'Access denied', 'hello GET /public/2']);
  });

  test('a denied body small enough is drained and the connection kept', async () => {
    await use(publicGet);
    const c = client();
    c.send('POST /x HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' + get('/public'));
    const text = await c.until((t) => t.includes('hello GET /public'));
    expect(statusLines(text)).toEqual(['403', '200']);
  });

  test('a denied body too large to drain gets 403 with connection: close', async () => {
    await use(publicGet);
    const c = client();
    c.send(`POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: ${MAX_DRAIN_BYTES + 1}\r\n\r\n`);
    expect(await c.closedWithin()).toBe(true);
    expect(c.text).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(c.text.toLowerCase()).toContain('connection: close');
  });

  test('maxRequestsPerConnection: the last response says close and the connection ends', async () => {
    await use('all', { limits: { maxRequestsPerConnection: 2 } });
    const c = client();
    c.send(get('/1') + get('/2') + get('/3'));
    expect(await c.closedWithin()).toBe(true);
    expect(statusLines(c.text)).toEqual(['200', '200']);
    expect(c.text.split('hello GET /2')[0]!.toLowerCase()).toMatch(/connection: close\r\n[^]*$/);
    expect(upstream.seen).toEqual(['GET /1', 'GET /2']);
  });
});

describe('bodies', () => {
  test('chunked request body and chunked response are streamed through', async () => {
    await use('all');
    const c = client();
    c.send('POST /echo HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    await new Promise((r) => setTimeout(r, 20));
    c.send('6\r\n world\r\n0\r\n\r\n');
    await c.until((t) => t.includes('hello world'));
    expect(c.text).toMatch(/^HTTP\/1\.1 200/);
    const res = await httpRequest({ path: '/chunked' });
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(res.body).toBe('part1-part2-end');
  });

  test('a 50 MB upload is streamed to the upstream', async () => {
    await use('all');
    const total = 50 * 1024 * 1024;
    const piece = Buffer.alloc(64 * 1024, 0x61);
    const res = await httpRequest({ method: 'POST', path: '/upload', headers: { 'content-length': String(total) } }, (req) => {
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += piece.length;
          if (!req.write(piece)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    expect(res).toMatchObject({ status: 200, body: `bytes=${total}` });
  });

  test('Expect: 100-continue allowed: the upstream\'s 100 comes through, then the body', async () => {
    await use('all');
    const c = client();
    c.send('PUT /echo HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
    expect(await c.until((t) => t.includes('\r\n\r\n'))).toMatch(/^HTTP\/1\.1 100 Continue\r\n/);
    c.send('hello');
    const text = await c.until((t) => t.endsWith('hello'));
    expect(statusLines(text)).toEqual(['100', '200']);
  });

  test('Expect: 100-continue denied: 403 without waiting for the body, then close', async () => {
    await use(publicGet);
    const c = client();
    c.send('PUT /echo HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
    expect(await c.closedWithin()).toBe(true);
    expect(statusLines(c.text)).toEqual(['403']);
    expect(c.text).toContain('Access denied');
    expect(upstream.seen).toEqual([]);
  });
});

describe('malformed requests', () => {
  test.each([
    ['a bad request line', 'GET /a b HTTP/1.1\r\nHost: web\r\n\r\n', '400'],
    ['CL + TE (smuggling)', 'POST /public HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', '400'],
    ['duplicate content-length', 'POST /public HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde', '400'],
    ['obs-fold', 'GET /public HTTP/1.1\r\nHost: web\r\nX: a\r\n b\r\n\r\n', '400'],
    ['a bare LF head', 'GET /public HTTP/1.1\nHost: web\n\n', '400'],
    ['oversized headers', `GET /public HTTP/1.1\r\nHost: web\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, '431'],
    ['oversized headers, never terminated', `GET /public HTTP/1.1\r\nHost: web\r\nX-Big: ${'a'.repeat(20_000)}`, '431'],
  ])('%s: answered and closed, nothing forwarded, a malformed record', async (_n, raw, status) => {
    await use('all');
    const c = client();
    c.send(raw);
    expect(await c.closedWithin()).toBe(true);
    expect(statusLines(c.text)).toEqual([status]);
    expect(c.text.toLowerCase()).toContain('connection: close');
    expect(upstream.seen).toEqual([]);
    expect(fx.records).toHaveLength(1);
    expect(fx.records[0]).toMatchObject({ verdict: 'denied', reason: 'http-malformed', http: { status: Number(status) } });
  });

  test('a malformed request after a good one on the same connection', async () => {
    await use('all');
    const c = client();
    c.send(get('/ok') + 'BROKEN\r\n\r\n');
    expect(await c.closedWithin()).toBe(true);
    expect(statusLines(c.text)).toEqual(['200', '400']);
  });

  test('a broken chunked body after an allowed head: 400 and close', async () => {
    await use('all');
    const c = client();
    c.send('POST /echo HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
    expect(await c.closedWithin()).toBe(true);
    expect(statusLines(c.text)).toEqual(['400']);
    expect(fx.records.at(-1)).toMatchObject({ reason: 'http-malformed', http: { status: 400 } });
  });

  test('requests followed by the client\'s FIN are all answered, then the connection closes', async () => {
    await use('all');
    const c = client();
    c.socket.end(get('/1') + get('/2'));
    expect(await c.closedWithin()).toBe(true);
    expect(statusLines(c.text)).toEqual(['200', '200']);
  });

  test('a partial head followed by the client\'s FIN closes without waiting for the timeout', async () => {
    await use('all');
    const c = client();
    c.socket.end('GET /public HTTP/1.1\r\nHost: w');
    expect(await c.closedWithin(1000)).toBe(true);
    expect(c.text).toBe('');
  });

  test('header timeout: a slow head gets 408 and close', async () => {
    await use('all', { limits: { headerTimeoutMs: 100 } });
    const c = client();
    c.send('GET /public HTTP/1.1\r\nHost: w');
    expect(await c.closedWithin()).toBe(true);
    expect(statusLines(c.text)).toEqual(['408']);
  });

  test('idle timeout closes a quiet keep-alive connection without a response', async () => {
    await use('all', { limits: { idleTimeoutMs: 100 } });
    const c = client();
    c.send(get('/a'));
    await c.until((t) => t.includes('hello GET /a'));
    expect(await c.closedWithin()).toBe(true);
    expect(statusLines(c.text)).toEqual(['200']);
  });
});

describe('upstream failures and limits', () => {
  test('stream idle timeout: a request body that stalls gets 408 and a record', async () => {
    const silent = net.createServer(() => { /* accepts, never answers */ });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      fx = await startProxy((silent.address() as net.AddressInfo).port, 'all', { limits: { streamIdleTimeoutMs: 150 } });
      const c = client();
      c.send('POST /public HTTP/1.1\r\nHost: w\r\nContent-Length: 10\r\n\r\nabc');
      expect(await c.closedWithin(3000)).toBe(true);
      expect(statusLines(c.text)).toEqual(['408']);
      expect(fx.records.at(-1)).toMatchObject({ http: { method: 'POST', path: '/public', status: 408 } });
    } finally {
      silent.close();
    }
  });

  test('stream idle timeout: an upstream that never answers gives 504', async () => {
    const silent = net.createServer(() => { /* accepts, never answers */ });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      fx = await startProxy((silent.address() as net.AddressInfo).port, 'all', { limits: { streamIdleTimeoutMs: 150 } });
      const c = client();
      c.send(get('/slow'));
      expect(await c.closedWithin(3000)).toBe(true);
      expect(statusLines(c.text)).toEqual(['504']);
      expect(fx.records.at(-1)).toMatchObject({ verdict: 'allowed', http: { path: '/slow', status: 504 } });
    } finally {
      silent.close();
    }
  });

  test('stream idle timeout does not cut a request that keeps moving', async () => {
    await use('all', { limits: { streamIdleTimeoutMs: 300 } });
    const c = client();
    c.send('POST /public HTTP/1.1\r\nHost: w\r\nContent-Length: 8\r\n\r\n');
    // 8 bytes, one every 100 ms: 800 ms in all, never 300 ms without a byte.
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 100));
      c.send('x');
    }
    await c.until((t) => t.includes('\r\n\r\n') && statusLines(t).length === 1);
    expect(statusLines(c.text)).toEqual(['200']);
  });

  test('an invalid stream idle timeout is refused', async () => {
    await expect(startProxy(upstream.port, 'all', { limits: { streamIdleTimeoutMs: 0 } })).rejects.toThrow(/streamIdleTimeoutMs/);
  });

  test('upstream refused: 502 and a record with status 502', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    fx = await startProxy(port, 'all');
    const res = await httpRequest({ path: '/public' });
    expect(res.status).toBe(502);
    expect(fx.records[0]).toMatchObject({ verdict: 'allowed', http: { status: 502 } });
  });

  test('a close-delimited upstream response ends the client connection after it', async () => {
    const raw = net.createServer((s) => s.once('data', () => s.end('HTTP/1.1 200 OK\r\n\r\nuntil-close')));
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    try {
      fx = await startProxy((raw.address() as net.AddressInfo).port, 'all');
      const c = client();
      c.send(get('/'));
      expect(await c.closedWithin()).toBe(true);
      expect(c.text).toBe('HTTP/1.1 200 OK\r\n\r\nuntil-close');
      expect(fx.records[0]).toMatchObject({ verdict: 'allowed', http: { status: 200 } });
    } finally {
      await fx.proxy.close();
      await new Promise<void>((r) => raw.close(() => r()));
    }
  });

  test('an upstream closing an idle keep-alive connection: the next request opens a new one', async () => {
    let accepted = 0;
    const idleClose = net.createServer((s) => {
      accepted++;
      s.once('data', () => {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        setTimeout(() => s.end(), 10);
      });
    });
    await new Promise<void>((r) => idleClose.listen(0, '127.0.0.1', r));
    try {
      fx = await startProxy((idleClose.address() as net.AddressInfo).port, 'all');
      const c = client();
      c.send(get('/1'));
      await c.until((t) => t.endsWith('ok'));
      await new Promise((r) => setTimeout(r, 60));
      c.send(get('/2'));
      await c.until((t) => statusLines(t).length === 2 && t.endsWith('ok'));
      expect(statusLines(c.text)).toEqual(['200', '200']);
      expect(c.closed).toBe(false);
      expect(accepted).toBe(2);
    } finally {
      await fx.proxy.close();
      await new Promise<void>((r) => idleClose.close(() => r()));
    }
  });

  test('an upstream response saying connection: close closes the client connection after it', async () => {
    const closing = net.createServer((s) => s.once('data', () => s.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok')));
    await new Promise<void>((r) => closing.listen(0, '127.0.0.1', r));
    try {
      fx = await startProxy((closing.address() as net.AddressInfo).port, 'all');
      const c = client();
      c.send(get('/1') + get('/2'));
      expect(await c.closedWithin()).toBe(true);
      expect(statusLines(c.text)).toEqual(['200']);
    } finally {
      await fx.proxy.close();
      await new Promise<void>((r) => closing.close(() => r()));
    }
  });

  test('an upstream answering before the request body ends: response through, then close', async () => {
    const early = net.createServer((s) => s.once('data', () => s.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n')));
    await new Promise<void>((r) => early.listen(0, '127.0.0.1', r));
    try {
      fx = await startProxy((early.address() as net.AddressInfo).port, 'all');
      const c = client();
      c.send('POST /big HTTP/1.1\r\nHost: web\r\nContent-Length: 100000\r\n\r\n0123456789');
      expect(await c.closedWithin()).toBe(true);
      expect(statusLines(c.text)).toEqual(['413']);
      expect(fx.records[0]).toMatchObject({ verdict: 'allowed', http: { status: 413 } });
    } finally {
      await fx.proxy.close();
      await new Promise<void>((r) => early.close(() => r()));
    }
  });

  test('close() lets a request in progress finish with connection: close', async () => {
    let answer = null as (() => void) | null;
    const slow = net.createServer((s) => s.once('data', () => {
      answer = () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow');
    }));
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    try {
      fx = await startProxy((slow.address() as net.AddressInfo).port, 'all');
      const c = client();
      c.send(get('/slow'));
      while (answer === null) await new Promise((r) => setTimeout(r, 5));
      const closing = fx.proxy.close();
      answer!();
      await closing;
      expect(await c.closedWithin(1000)).toBe(true);
      expect(c.text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(c.text.toLowerCase()).toContain('connection: close');
      expect(c.text.endsWith('slow')).toBe(true);
    } finally {
      await new Promise<void>((r) => slow.close(() => r()));
    }
  });

  test('a stalled upstream stalls the upload: the proxy does not buffer the body', async () => {
    const held: net.Socket[] = [];
    const stalled = net.createServer((s) => {
      s.pause();
      held.push(s);
    });
    await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', r));
    try {
      fx = await startProxy((stalled.address() as net.AddressInfo).port, 'all');
      const s = net.connect({ host: '127.0.0.1', port: fx.proxy.port });
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      s.write(`POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: ${512 * 1024 * 1024}\r\n\r\n`);
      const piece = Buffer.alloc(64 * 1024);
      let written = 0;
      // Write until the socket stops draining for 500 ms (back-pressure reached the client)
      // or 128 MB went out (the proxy would be buffering).
      while (written < 128 * 1024 * 1024) {
        written += piece.length;
        if (!s.write(piece)) {
          const drained = await Promise.race([
            new Promise((r) => s.once('drain', () => r(true))),
            new Promise((r) => setTimeout(() => r(false), 500)),
          ]);
          if (!drained) break;
        }
      }
      s.destroy();
      for (const h of held) h.destroy();
      // Kernel socket buffers on loopback hold a few MB per hop; everything else would be
      // the proxy's memory.
      expect(written).toBeLessThan(48 * 1024 * 1024);
    } finally {
      await fx.proxy.close();
      await new Promise<void>((r) => stalled.close(() => r()));
    }
  });

  test('a connection addressed to the proxy port itself is refused (no loop)', async () => {
    const records: unknown[] = [];
    const proxy = await startL7Proxy({
      host: '127.0.0.1', port: 0, node: 'n', decider: { decide: () => ({ allowed: true, direction: 'ingress' }) },
      onRecord: (r) => records.push(r),
    });
    try {
      const c = new RawClient(proxy.port);
      clients.push(c);
      c.send(get('/'));
      expect(await c.closedWithin()).toBe(true);
      expect(c.text).toBe('');
      expect(records).toEqual([]);
    } finally {
      await proxy.close();
    }
    fx = await startProxy(upstream.port, 'all');
  });

  test('a client reset before the response: one record with status 0', async () => {
    let got = false;
    const silent = net.createServer((s) => s.once('data', () => { got = true; }));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      fx = await startProxy((silent.address() as net.AddressInfo).port, 'all');
      const c = client();
      c.send(get('/never'));
      while (!got) await new Promise((r) => setTimeout(r, 5));
      // A reset, not a FIN: a FIN is a half-close after which the response is still owed.
      c.socket.resetAndDestroy();
      while (fx.proxy.connections() > 0) await new Promise((r) => setTimeout(r, 5));
      expect(fx.records).toHaveLength(1);
      expect(fx.records[0]).toMatchObject({ verdict: 'allowed', http: { path: '/never', status: 0 } });
    } finally {
      await fx.proxy.close();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  test('maxConnections: a connection beyond the limit is refused', async () => {
    await use('all', { limits: { maxConnections: 1 } });
    const a = client();
    a.send(get('/a'));
    await a.until((t) => t.includes('hello GET /a'));
    const b = client();
    b.send(get('/b'));
    expect(await b.closedWithin()).toBe(true);
    expect(b.text).toBe('');
    expect(fx.proxy.connections()).toBe(1);
  });

  test('invalid limits are refused before listening', async () => {
    await expect(startL7Proxy({
      host: '127.0.0.1', port: 0, node: 'n', decider: { decide: () => ({ allowed: true, direction: 'ingress' }) },
      onRecord: () => {}, limits: { maxHeaderBytes: 0 },
    })).rejects.toMatchObject({ code: 'PAL_L7_BAD_LIMIT' });
    fx = await startProxy(upstream.port, 'all');
  });

  test('close() ends idle connections and resolves when all are gone', async () => {
    await use('all');
    const c = client();
    c.send(get('/a'));
    await c.until((t) => t.includes('hello GET /a'));
    expect(fx.proxy.connections()).toBe(1);
    await fx.proxy.close();
    expect(fx.proxy.connections()).toBe(0);
    expect(await c.closedWithin(1000)).toBe(true);
  });
});

describe('upgrades', () => {
  const upgrade = 'GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n';

  test('an allowed upgrade becomes a tunnel after the upstream\'s 101', async () => {
    await use([{ path: '/ws', headers: [{ name: 'upgrade', value: 'echo' }] }]);
    const c = client();
    c.send(upgrade);
    expect(await c.until((t) => t.includes('\r\n\r\n'))).toMatch(/^HTTP\/1\.1 101 /);
    c.reset();
    c.send('raw bytes, not http\r\n\r\n');
    expect(await c.until((t) => t.includes('not http'))).toBe('raw bytes, not http\r\n\r\n');
    expect(fx.records).toHaveLength(1);
    expect(fx.records[0]).toMatchObject({ verdict: 'allowed', http: { path: '/ws', status: 101 } });
  });

  test('a denied upgrade gets 403 and never reaches the upstream', async () => {
    await use(publicGet);
    const c = client();
    c.send(upgrade);
    expect(statusLines(await c.until((t) => t.includes('Access denied')))).toEqual(['403']);
    expect(upstream.seen).toEqual([]);
  });
});
