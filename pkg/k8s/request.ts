/**
 * One JSON request to the API server on node:http(s), with a KubeConfigLike's server and
 * credentials: the agent's small writes and reads (Events, its Node) without loading
 * client-node's API classes (see kubeconfig.ts).
 */
import http from 'node:http';
import https from 'node:https';
import { HttpStatusError } from './errors.ts';
import type { KubeConfigLike } from './kubeconfig.ts';

/** A request the API server refused or that did not complete; `statusCode` when answered. */
export class ApiError extends HttpStatusError {
  readonly code = 'PAL_K8S_REQUEST';
  override readonly name = 'ApiError';
  /** The Status reason (`AlreadyExists`, `NotFound`, ...), when the server sent one. */
  readonly reason: string | undefined;
  constructor(message: string, statusCode?: number, reason?: string, options?: { cause?: unknown }) {
    super(message, statusCode, options);
    this.reason = reason;
  }
}

export interface ApiRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path with query, e.g. `/api/v1/nodes/n1`. */
  path: string;
  body?: unknown;
  /** Content type of a PATCH body (default merge patch). */
  patchType?: 'application/merge-patch+json' | 'application/json-patch+json' | 'application/strategic-merge-patch+json';
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Sends one request; resolves with the parsed JSON answer of a 2xx, rejects with ApiError. */
export async function apiRequest<T = unknown>(kc: KubeConfigLike, r: ApiRequest): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ApiError(`${r.method} ${r.path}: no current cluster`);
  const url = new URL(cluster.server.replace(/\/+$/, '') + r.path);
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  const body = r.body === undefined ? undefined : Buffer.from(JSON.stringify(r.body));
  opts.headers = {
    ...opts.headers,
    accept: 'application/json',
    ...(body && {
      'content-type': r.method === 'PATCH' ? (r.patchType ?? 'application/merge-patch+json') : 'application/json',
      'content-length': String(body.length),
    }),
  };
  const send = url.protocol === 'https:' ? https.request : http.request;
  const what = `${r.method} ${r.path}`;
  const timeoutMs = r.timeoutMs ?? 30_000;
  return new Promise<T>((resolve, reject) => {
    const req = send(url, { ...opts, method: r.method, signal: r.signal }, (resp) => {
      const chunks: Buffer[] = [];
      resp.on('data', (c: Buffer) => chunks.push(c));
      resp.on('error', (err) => reject(new ApiError(`${what}: ${err.message}`, undefined, undefined, { cause: err })));
      resp.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const status = resp.statusCode ?? 0;
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        if (status >= 200 && status < 300) return resolve(json as T);
        const st = json as { message?: string; reason?: string } | undefined;
        reject(new ApiError(`${what}: HTTP ${status}: ${st?.message ?? resp.statusMessage ?? ''}`, status, st?.reason));
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(new ApiError(`${what}: ${err.message}`, undefined, undefined, { cause: err })));
    req.end(body);
  });
}
