/**
 * The shim's side of POST /v1/cni: one HTTP/1.1 request over the agent's unix socket.
 * Node builtins only (the shim loads it).
 */
import { request } from 'node:http';
import type { CniRequest } from './request.ts';

/** The agent's answer: a result, or a CNI error object. */
export interface AgentAnswer {
  status: number;
  body: unknown;
}

/** Raised when no agent listens on the socket (the agent is down or not started yet). */
export class AgentUnreachableError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'AgentUnreachableError';
    this.code = code;
  }
}

const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTSOCK']);

/**
 * Sends the request and resolves with the decoded answer. Rejects with
 * AgentUnreachableError when nothing listens on the socket (or it hangs up before
 * answering), and with a plain Error on timeout or an undecodable answer.
 */
export function postCni(socketPath: string, req: CniRequest, timeoutMs: number,
  headers: Record<string, string> = {}): Promise<AgentAnswer> {
  const payload = JSON.stringify(req);
  return new Promise((resolve, reject) => {
    const r = request({
      socketPath, path: '/v1/cni', method: 'POST', timeout: timeoutMs,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        ...headers,
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null });
        } catch {
          reject(new Error(`undecodable agent answer (HTTP ${res.statusCode}): ${text.slice(0, 200)}`));
        }
      });
    });
    r.on('timeout', () => r.destroy(new Error(`agent did not answer within ${timeoutMs} ms`)));
    r.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code && UNREACHABLE.has(err.code) && !r.reusedSocket) {
        reject(new AgentUnreachableError(err.code, `agent unreachable at ${socketPath}: ${err.code}`));
      } else {
        reject(err);
      }
    });
    r.end(payload);
  });
}
