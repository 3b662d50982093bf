/**
 * Loopback fixtures for the L7 proxy tests: a real HTTP upstream (node:http, the server
 * side only), a decider driven by a mutable rule list, and a raw-socket client that sees
 * exactly the bytes the proxy sends.
 */
import http from 'node:http';
import net from 'node:net';
import type { FlowRecord } from '../../../pkg/flow/types.ts';
import { matchAnyHttpRule } from '../../../pkg/l7/match.ts';
import { startL7Proxy } from '../../../pkg/l7/proxy.ts';
import type { ConnectionInfo, L7Decider, L7Decision, L7Proxy, L7ProxyOptions, RequestInfo } from '../../../pkg/l7/types.ts';
import type { HttpRule } from '../../../pkg/policy/snapshot.ts';

export interface Upstream {
  port: number;
  /** TCP connections the upstream accepted. */
  accepted: number;
  /** Request lines the upstream served, in order. */
  seen: string[];
  close(): Promise<void>;
}

/**
 * Routes: `/upload` counts the body and answers `bytes=N`; `/echo` answers the body;
 * `/chunked` answers in three chunked writes; `/ws` (Upgrade) switches to an echo tunnel;
 * anything else answers `hello METHOD PATH`.
 */
export async function startUpstream(): Promise<Upstream> {
  const sockets = new Set<net.Socket>();
  const up: Upstream = { port: 0, accepted: 0, seen: [], close: async () => {} };
  const server = http.createServer((req, res) => {
    up.seen.push(`${req.method} ${req.url}`);
    if (req.url === '/upload') {
      let n = 0;
      req.on('data', (c: Buffer) => { n += c.length; });
      req.on('end', () => res.end(`bytes=${n}`));
      return;
    }
    if (req.url === '/echo') {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => res.end(Buffer.concat(parts)));
      return;
    }
    req.resume();
    if (req.url === '/chunked') {
      res.write('part1-');
      setImmediate(() => {
        res.write('part2-');
        setImmediate(() => res.end('end'));
      });
      return;
    }
    res.end(`hello ${req.method} ${req.url}`);
  });
  server.on('connection', (s: net.Socket) => {
    up.accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    up.seen.push(`${req.method} ${req.url} upgrade`);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    if (head.length) socket.write(head);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.port = (server.address() as net.AddressInfo).port;
  up.close = () => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  return up;
}

/** Allows a request when any rule matches; `rules = 'all'` allows everything. */
export class RuleDecider implements L7Decider {
  rules: HttpRule[] | 'all';
  readonly calls: RequestInfo[] = [];
  constructor(rules: HttpRule[] | 'all') {
    this.rules = rules;
  }
  decide(_conn: ConnectionInfo, req: RequestInfo): L7Decision {
    this.calls.push(req);
    const allowed = this.rules === 'all' || matchAnyHttpRule(this.rules, req);
    return { allowed, direction: 'ingress', policy: 'PalisadeNetworkPolicy:default/web', ruleId: allowed ? 7 : 0 };
  }
}

export interface ProxyFixture {
  proxy: L7Proxy;
  records: FlowRecord[];
  decider: RuleDecider;
}

/** A proxy on an ephemeral loopback port whose original destination is `dstPort`. */
export async function startProxy(dstPort: number, rules: HttpRule[] | 'all', extra: Partial<L7ProxyOptions> = {}): Promise<ProxyFixture> {
  const records: FlowRecord[] = [];
  const decider = new RuleDecider(rules);
  const proxy = await startL7Proxy({
    host: '127.0.0.1', port: 0, node: 'node-0', decider,
    onRecord: (r) => records.push(r),
    originalDestination: () => ({ ip: '127.0.0.1', port: dstPort }),
    ...extra,
  });
  return { proxy, records, decider };
}

/** A raw TCP client: what it reads is exactly what the proxy wrote. */
export class RawClient {
  readonly socket: net.Socket;
  private data = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  readonly done: Promise<void>;

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.on('data', (c: Buffer) => {
      this.data = Buffer.concat([this.data, c]);
      this.wake();
    });
    this.socket.on('error', () => {});
    this.done = new Promise((resolve) => this.socket.on('close', () => {
      this.closed = true;
      this.wake();
      resolve();
    }));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  get text(): string {
    return this.data.toString('latin1');
  }

  send(s: string | Buffer): void {
    this.socket.write(s);
  }

  /** Waits until pred(text) holds (or the socket closes, or 5 s pass); returns the text. */
  async until(pred: (text: string) => boolean, ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    while (!pred(this.text) && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.text;
  }

  /** Waits for the proxy to close the connection; false if it stays open for `ms`. */
  async closedWithin(ms = 5000): Promise<boolean> {
    await Promise.race([this.done, new Promise((r) => setTimeout(r, ms))]);
    return this.closed;
  }

  /** Forgets what was read so far. */
  reset(): void {
    this.data = Buffer.alloc(0);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Number of complete responses with a body of known length in `text` (status lines). */
export function statusLines(text: string): string[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3})[^\r]*\r\n/g)].map((m) => m[1]!);
}

export function get(path: string, headers = 'Host: web\r\n'): string {
  return `GET ${path} HTTP/1.1\r\n${headers}\r\n`;
}
