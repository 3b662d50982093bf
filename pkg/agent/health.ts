/**
 * The TCP listener for the kubelet's probes, Prometheus and `kubectl palisade` (through
 * the API server's node proxy): plain HTTP serving only the read-only routes GET/HEAD
 * /healthz, /readyz, /metrics, /v1/status and /v1/flows (docs/agent-api.md#two-listeners).
 * Each request is handed to the unix-socket API's own router, so every answer has one
 * implementation and streams (`/v1/flows?follow=1`) work; everything else (CNI ADD and
 * DEL, /v1/wait, /v1/endpoints) stays reachable only through the socket.
 */
import { createServer, type Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { apiError } from '../api/errors.ts';

const PATHS = new Set(['/healthz', '/readyz', '/metrics', '/v1/status', '/v1/flows']);

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
      res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' })
        .end(JSON.stringify(apiError('PAL_NOT_FOUND', `no route ${req.method} ${path} on the health listener`)));
      return;
    }
    app.routing(req, res);
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
