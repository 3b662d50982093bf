/**
 * The watch stream of ClientNodeSource (pkg/k8s/source.ts) against a scripted HTTP server:
 * events line by line (split anywhere), the query it sends, credentials applied, the end
 * of the stream, HTTP errors with their status, the idle timeout, and abort - each
 * reported through onDone exactly once.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ApiCredentials } from '../../../pkg/k8s/kubeconfig.ts';
import { RESOURCES } from '../../../pkg/k8s/resources.ts';
import { ClientNodeSource } from '../../../pkg/k8s/source.ts';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

let server: http.Server;
let url = '';
let handler: Handler = (_req, res) => res.end();

beforeAll(async () => {
  server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function watchOnce(src: ClientNodeSource) {
  const events: [string, unknown][] = [];
  const done: unknown[] = [];
  const ended = new Promise<unknown>((resolve) => {
    void src.watch(RESOURCES.pods, '42', (t, o) => events.push([t, o]), (err) => {
      done.push(err);
      resolve(err);
    }).then((abort) => { abortFn = abort; });
  });
  let abortFn: (() => void) | undefined;
  return { events, done, ended, abort: () => abortFn?.() };
}

describe('watch stream', () => {
  test('events split across chunks, the query, the token; a server close ends it with null', async () => {
    let seen: http.IncomingMessage | undefined;
    handler = (req, res) => {
      seen = req;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n{"type":"MOD');
      setTimeout(() => {
        res.write('IFIED","object":{"metadata":{"name":"a","resourceVersion":"43"}}}\n\n');
        res.end('{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"44"}}}\n');
      }, 20);
    };
    const src = new ClientNodeSource(new ApiCredentials({ server: url, token: 't0k' }));
    const w = watchOnce(src);
    expect(await w.ended).toBeNull();
    expect(w.events.map(([t]) => t)).toEqual(['ADDED', 'MODIFIED', 'BOOKMARK']);
    expect(w.done).toHaveLength(1);
    const q = new URL(seen!.url!, url);
    expect(q.pathname).toBe('/api/v1/pods');
    expect(Object.fromEntries(q.searchParams)).toMatchObject({ watch: 'true', allowWatchBookmarks: 'true', resourceVersion: '42' });
    expect(Number(q.searchParams.get('timeoutSeconds'))).toBeGreaterThanOrEqual(300);
    expect(seen!.headers.authorization).toBe('Bearer t0k');
  });

  test('an HTTP error is reported with its status and message', async () => {
    handler = (_req, res) => {
      res.writeHead(410, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', code: 410, message: 'too old resource version: 42 (99)' }));
    };
    const w = watchOnce(new ClientNodeSource(new ApiCredentials({ server: url })));
    const err = await w.ended as { statusCode?: number; message: string };
    expect(err.statusCode).toBe(410);
    expect(err.message).toMatch(/watching \/api\/v1\/pods: HTTP 410: too old resource version/);
    expect(w.done).toHaveLength(1);
  });

  test('a silent stream is closed as a TimeoutError after the idle time', async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.write('');
    };
    const w = watchOnce(new ClientNodeSource(new ApiCredentials({ server: url }), { watchIdleTimeoutMs: 100 }));
    const err = await w.ended as Error;
    expect(err.name).toBe('TimeoutError');
    expect(w.done).toHaveLength(1);
  });

  test('abort ends it once, with null, and no event after', async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.write('{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n');
      setTimeout(() => res.writable && res.write('{"type":"ADDED","object":{"metadata":{"name":"b"}}}\n'), 100);
    };
    const w = watchOnce(new ClientNodeSource(new ApiCredentials({ server: url })));
    for (let i = 0; i < 100 && w.events.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    w.abort();
    expect(await w.ended).toBeNull();
    await new Promise((r) => setTimeout(r, 150));
    expect(w.events).toHaveLength(1);
    expect(w.done).toHaveLength(1);
  });

  test('a refused connection is an error without status', async () => {
    const w = watchOnce(new ClientNodeSource(new ApiCredentials({ server: 'http://127.0.0.1:1' })));
    const err = await w.ended as { statusCode?: number; message: string };
    expect(err.statusCode).toBeUndefined();
    expect(err.message).toMatch(/watching \/api\/v1\/pods: .*ECONNREFUSED/);
  });
});
