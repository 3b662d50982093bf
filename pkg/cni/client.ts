/**
 * The shim's side of POST /v1/cni: one HTTP/1.1 request over the agent's unix socket,
 * written by hand on node:net. node:http is not in Node's startup snapshot and loading
 * it costs ~20 ms per plugin invocation (measured: test/bench/cni.ts), a third of the
 * shim's budget; the request is one POST with `Connection: close`, so a minimal client
 * suffices. Node builtins only (the shim loads it).
 */
import { connect } from 'node:net';
import type { CniRequest } from './request.ts';

/** The agent's answer: HTTP status and decoded JSON body. */
export interface AgentAnswer {
  status: number;
  body: unknown;
}

/**
 * Nothing answered on the socket: no agent listens (ENOENT, ECONNREFUSED), or the
 * connection died before any answer (the agent stopped mid-request).
 */
export class AgentUnreachableError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'AgentUnreachableError';
    this.code = code;
  }
}

/** Splits a raw HTTP/1.1 response into status and body; decodes chunked bodies. */
export function parseHttpResponse(raw: Buffer): { status: number; body: string } {
  const sep = raw.indexOf('\r\n\r\n');
  if (sep < 0) throw new Error('incomplete HTTP response');
  const head = raw.subarray(0, sep).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
  if (!m) throw new Error(`bad status line "${(head[0] ?? '').slice(0, 80)}"`);
  const headers = new Map<string, string>();
  for (const line of head.slice(1)) {
    const c = line.indexOf(':');
    if (c > 0) headers.set(line.slice(0, c).trim().toLowerCase(), line.slice(c + 1).trim());
  }
  let body = raw.subarray(sep + 4);
  if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = body.indexOf('\r\n', at);
      if (eol < 0) throw new Error('truncated chunked body');
      const size = Number.parseInt(body.subarray(at, eol).toString('latin1'), 16);
      if (!Number.isFinite(size)) throw new Error('bad chunk size');
      if (size === 0) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers.has('content-length')) {
    const len = Number(headers.get('content-length'));
    if (body.length < len) throw new Error('truncated body');
    body = body.subarray(0, len);
  }
  return { status: Number(m[1]), body: body.toString('utf8') };
}

/**
 * Sends the request and resolves with the decoded answer. Rejects with
 * AgentUnreachableError when nothing answered, and with a plain Error on timeout or an
 * undecodable answer.
 */
export function postCni(socketPath: string, req: CniRequest, timeoutMs: number,
  headers: Record<string, string> = {},
  marks: { connectedMs?: number; firstByteMs?: number } = {}): Promise<AgentAnswer> {
  const payload = Buffer.from(JSON.stringify(req), 'utf8');
  const head = [
    'POST /v1/cni HTTP/1.1', 'Host: palisade-agent', 'Content-Type: application/json',
    `Content-Length: ${payload.length}`, 'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', '',
  ].join('\r\n');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (err: Error | undefined, answer?: AgentAnswer) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    const sock = connect(socketPath);
    sock.setTimeout(timeoutMs, () => done(new Error(`agent did not answer within ${timeoutMs} ms`)));
    sock.on('connect', () => {
      marks.connectedMs = performance.now();
      // One write: head and body leave in one segment.
      sock.write(Buffer.concat([Buffer.from(head, 'latin1'), payload]));
    });
    sock.on('data', (c: Buffer) => {
      marks.firstByteMs ??= performance.now();
      chunks.push(c);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (chunks.length === 0) {
        done(new AgentUnreachableError(err.code ?? 'EIO', `agent unreachable at ${socketPath}: ${err.code ?? err.message}`));
      } else {
        done(err);
      }
    });
    sock.on('end', () => {
      if (chunks.length === 0) {
        done(new AgentUnreachableError('ECONNRESET', `agent at ${socketPath} closed the connection without answering`));
        return;
      }
      const raw = Buffer.concat(chunks);
      try {
        const r = parseHttpResponse(raw);
        let body: unknown = null;
        try {
          body = r.body ? JSON.parse(r.body) : null;
        } catch {
          throw new Error(`undecodable agent answer (HTTP ${r.status}): ${r.body.slice(0, 200)}`);
        }
        done(undefined, { status: r.status, body });
      } catch (err) {
        done(err as Error);
      }
    });
  });
}
