/**
 * The kubelet-facing health listener: plain HTTP on a TCP address serving only GET
 * /healthz, /readyz and /metrics. Each request is answered by the unix-socket API's own
 * route (fastify inject), so readiness has one implementation; everything else (CNI ADD
 * and DEL) stays reachable only through the socket.
 */
import { createServer, type Server } from 'node:http';
import type { FastifyInstance } from 'fastify';

const PATHS = new Set(['/healthz', '/readyz', '/metrics']);

export interface HealthListener {
  /** The bound port (useful with port 0 in tests). */
  port: number;
  close(): Promise<void>;
}

/** Listens on host:port; rejects (nothing left listening) when the address cannot be bound. */
export async function listenHealth(app: FastifyInstance, host: string, port: number): Promise<HealthListener> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !PATHS.has(path)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    app.inject({ method: req.method, url: path }).then((r) => {
      const type = r.headers['content-type'];
      res.writeHead(r.statusCode, type ? { 'content-type': String(type) } : {});
      res.end(req.method === 'HEAD' ? undefined : r.rawPayload);
    }, (err: Error) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`health listener ${host}:${port}: ${err.message}`, { cause: err })));
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
