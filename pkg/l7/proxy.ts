/**
 * The L7 HTTP proxy engine: a TCP server whose connections are HTTP/1.1 client connections
 * redirected to it (TPROXY/bpf_sk_assign keep the original destination as the socket's
 * local address). Each request is decided by opts.decider and either answered `403 Access
 * denied` or forwarded to the original destination. HTTP handling: pkg/l7/connection.ts,
 * docs/l7.md "The proxy".
 */
import net from 'node:net';
import type { FlowRecord } from '../flow/types.ts';
import { ClientConnection, type ConnectionContext } from './connection.ts';
import type { ConnectionInfo, L7Limits, L7Proxy, L7ProxyOptions } from './types.ts';

export const DEFAULT_L7_LIMITS: Readonly<L7Limits> = {
  maxHeaderBytes: 16 * 1024,
  maxRequestsPerConnection: 10_000,
  idleTimeoutMs: 60_000,
  headerTimeoutMs: 10_000,
  maxConnections: 10_000,
  streamIdleTimeoutMs: 300_000,
};

/** How long close() lets busy connections finish their current exchange before cutting them. */
const CLOSE_GRACE_MS = 5000;

/** `::ffff:10.0.0.1` (a v4 peer on a dual-stack socket) as `10.0.0.1`. */
function plainIp(ip: string | undefined): string {
  if (!ip) return '';
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

export class L7ProxyError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

function checkLimits(l: L7Limits): void {
  for (const [k, v] of Object.entries(l)) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new L7ProxyError('PAL_L7_BAD_LIMIT', `l7 limit ${k} must be a positive integer, got ${String(v)}`);
    }
  }
}

/** Starts the proxy; resolves once it listens. Invalid options reject without listening. */
export async function startL7Proxy(opts: L7ProxyOptions): Promise<L7Proxy> {
  const limits: L7Limits = { ...DEFAULT_L7_LIMITS, ...opts.limits };
  checkLimits(limits);
  const conns = new Set<ClientConnection>();
  let draining = false;
  let onAllClosed: (() => void) | null = null;

  const record = (r: FlowRecord): void => {
    try {
      opts.onRecord(r);
    } catch {
      // A failing sink must not break the request path.
    }
  };
  let port = 0;
  const originalDestination = opts.originalDestination
    ?? ((s: net.Socket) => {
      // With TPROXY/sk_assign the local address is the server pod's; a connection whose
      // local port is the proxy's own was addressed to the proxy itself and would loop.
      if (s.localPort === port) throw new L7ProxyError('PAL_L7_SELF', 'connection addressed to the proxy itself');
      return { ip: s.localAddress ?? '', port: s.localPort ?? 0 };
    });
  const connectUpstream = opts.connectUpstream
    ?? ((c: ConnectionInfo) => net.connect({ host: c.dstIp, port: c.dstPort }));

  const ctx: ConnectionContext = {
    limits,
    decider: opts.decider,
    node: opts.node,
    record,
    connectUpstream,
    draining: () => draining,
    closed: (c) => {
      conns.delete(c);
      if (conns.size === 0 && onAllClosed) onAllClosed();
    },
  };

  // allowHalfOpen: a client may send its last request and shut its write side
  // (`printf ... | nc`); the response must still go out on the open half.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    if (draining || conns.size >= limits.maxConnections) {
      socket.destroy();
      return;
    }
    let info: ConnectionInfo;
    try {
      const dst = originalDestination(socket);
      info = {
        srcIp: plainIp(socket.remoteAddress), srcPort: socket.remotePort ?? 0,
        dstIp: plainIp(dst.ip), dstPort: dst.port,
      };
    } catch {
      socket.destroy();
      return;
    }
    conns.add(new ClientConnection(socket, info, ctx));
  });

  await new Promise<void>((resolve, reject) => {
    const fail = (e: Error): void => reject(new L7ProxyError('PAL_L7_LISTEN', `l7 proxy listening on ${opts.host}:${opts.port}: ${e.message}`, { cause: e }));
    server.once('error', fail);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off('error', fail);
      resolve();
    });
  });
  server.on('error', () => { /* after listen: accept errors are per connection */ });
  port = (server.address() as net.AddressInfo).port;

  let closing: Promise<void> | null = null;
  return {
    port,
    connections: () => conns.size,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        draining = true;
        let serverClosed = false;
        let grace: NodeJS.Timeout | null = null;
        const maybeDone = (): void => {
          if (serverClosed && conns.size === 0) {
            if (grace) clearTimeout(grace);
            resolve();
          }
        };
        onAllClosed = maybeDone;
        server.close(() => {
          serverClosed = true;
          maybeDone();
        });
        for (const c of [...conns]) c.shutdown(false);
        grace = setTimeout(() => {
          for (const c of [...conns]) c.shutdown(true);
        }, CLOSE_GRACE_MS);
        grace.unref();
      });
      return closing;
    },
  };
}
