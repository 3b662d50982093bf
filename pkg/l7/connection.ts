/**
 * One client connection of the L7 proxy: reads request heads, asks the decider about each
 * request, answers denied ones with 403 itself and forwards allowed ones over a single,
 * lazily opened upstream connection, streaming both bodies.
 *
 * Requests are handled one at a time: a pipelined request waits in the input buffer until
 * the previous response is complete, so responses leave in request order. The client
 * side (phase) and the upstream side (respPhase) are two small state machines; an exchange
 * is finished when its response is complete and its request body was read (a response
 * that ends before the request body does closes the connection, since the rest of that
 * body can no longer be told apart from the next request).
 */
import type { Socket } from 'node:net';
import type { Direction } from '../datapath/types.ts';
import type { FlowRecord } from '../flow/types.ts';
import { ChunkedFramer, LengthFramer, UntilCloseFramer, type BodyFramer } from './framing.ts';
import {
  HttpParseError, hasBareLineBreak, headEnd, parseRequestHead, parseResponseHead,
  type ParsedRequest, type ParsedResponse,
} from './http1.ts';
import { requestRecord } from './record.ts';
import type { ConnectionInfo, L7Decider, L7Decision, L7Limits, RequestInfo } from './types.ts';

export interface ConnectionContext {
  readonly limits: L7Limits;
  readonly decider: L7Decider;
  readonly node: string;
  record(r: FlowRecord): void;
  connectUpstream(conn: ConnectionInfo): Socket;
  /** True once the proxy is closing: no new request starts on a connection. */
  draining(): boolean;
  closed(c: ClientConnection): void;
}

/** Largest upstream response head accepted. */
const MAX_RESPONSE_HEAD = 64 * 1024;
/** A denied request's body up to this size is read and discarded to keep the connection. */
export const MAX_DRAIN_BYTES = 1024 * 1024;
/** Pipelined input buffered while a response is pending before reading pauses. */
const MAX_PENDING_INPUT = 64 * 1024;
/** After our last response, how long unread client input is drained before destroying. */
const LINGER_MS = 2000;

const PAUSE_PENDING = 1;
const PAUSE_UPSTREAM = 2;

type Phase = 'head' | 'body' | 'drain' | 'wait' | 'tunnel' | 'closing' | 'closed';

interface Exchange {
  req: ParsedRequest;
  info: RequestInfo;
  decision: L7Decision;
  body: BodyFramer | null;
  bodyDone: boolean;
  /** Final status sent to the client, 0 until then. */
  status: number;
  responseDone: boolean;
  /** Close the client connection once this exchange is done. */
  closeAfter: boolean;
  /** Close the upstream connection once this exchange is done. */
  upstreamClose: boolean;
  recorded: boolean;
}

function plainResponse(status: number, reason: string, body: string, close: boolean, headOnly = false): Buffer {
  const head = `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`
    + (close ? 'connection: close\r\n' : '') + '\r\n';
  return Buffer.from(headOnly ? head : head + body, 'latin1');
}

const DENIED = {
  keep: plainResponse(403, 'Forbidden', 'Access denied', false),
  close: plainResponse(403, 'Forbidden', 'Access denied', true),
  keepHead: plainResponse(403, 'Forbidden', 'Access denied', false, true),
  closeHead: plainResponse(403, 'Forbidden', 'Access denied', true, true),
};

const REASONS: Record<number, string> = {
  400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large',
  502: 'Bad Gateway', 504: 'Gateway Timeout', 505: 'HTTP Version Not Supported',
};

/** A response head with every Connection/Keep-Alive field replaced by `connection: close`. */
function withConnectionClose(head: Buffer, resp: ParsedResponse): Buffer {
  const statusLine = head.toString('latin1', 0, head.indexOf('\r\n'));
  const kept = resp.lines.filter((l) => {
    const n = l.slice(0, l.indexOf(':')).toLowerCase();
    return n !== 'connection' && n !== 'keep-alive';
  });
  return Buffer.from([statusLine, ...kept, 'connection: close', '', ''].join('\r\n'), 'latin1');
}

/** Method and target of a head we could not parse, for its record (bounded, best effort). */
function looseRequestLine(buf: Buffer | null): { method: string; path: string } {
  if (!buf) return { method: '', path: '' };
  let end = buf.indexOf('\r\n');
  if (end < 0 || end > 512) end = Math.min(buf.length, 512);
  const parts = buf.toString('latin1', 0, end).split(' ');
  return { method: (parts[0] ?? '').slice(0, 32), path: (parts[1] ?? '').slice(0, 256) };
}

export class ClientConnection {
  readonly info: ConnectionInfo;
  private readonly client: Socket;
  private readonly ctx: ConnectionContext;
  private phase: Phase = 'head';
  /** Client input not yet consumed. */
  private buf: Buffer | null = null;
  private ex: Exchange | null = null;
  private requests = 0;
  private clientEnded = false;
  private processing = false;
  private paused = 0;
  private lastDirection: Direction | undefined;

  private timer: NodeJS.Timeout | null = null;
  private timerKind: 'idle' | 'header' | 'linger' | null = null;
  /** Checks stream inactivity while a request is in progress or in tunnel mode. */
  private streamTimer: NodeJS.Timeout | null = null;
  /** performance.now() of the last byte moved in either direction. */
  private lastActivity = 0;

  private upstream: Socket | null = null;
  private upstreamPaused = false;
  private respPhase: 'head' | 'body' = 'head';
  private upBuf: Buffer | null = null;
  private respBody: BodyFramer | null = null;

  private drainer: BodyFramer | null = null;
  private drained = 0;

  constructor(client: Socket, info: ConnectionInfo, ctx: ConnectionContext) {
    this.client = client;
    this.info = info;
    this.ctx = ctx;
    client.setNoDelay(true);
    client.on('data', (c: Buffer) => this.onClientData(c));
    client.on('end', () => this.onClientEnd());
    client.on('error', () => { /* 'close' follows */ });
    client.on('close', () => this.onClientClose());
    this.armTimer('idle');
  }

  /** Whether no request is in progress and nothing is buffered. */
  idle(): boolean {
    return this.phase === 'head' && this.buf === null && this.ex === null;
  }

  /** Proxy shutdown: idle connections close now, busy ones after their current exchange. */
  shutdown(force: boolean): void {
    if (force || this.phase === 'tunnel') {
      this.destroy();
    } else if (this.idle()) {
      this.closeGracefully();
    } else if (this.ex) {
      // Not yet answered: the response will carry `connection: close`.
      this.ex.closeAfter = true;
    }
  }

  destroy(): void {
    this.client.destroy();
    this.dropUpstream(true);
  }

  // ---- timers -------------------------------------------------------------------------

  private armTimer(kind: 'idle' | 'header' | 'linger'): void {
    if (this.timerKind === kind) return;
    this.clearTimer();
    const ms = kind === 'idle' ? this.ctx.limits.idleTimeoutMs
      : kind === 'header' ? this.ctx.limits.headerTimeoutMs : LINGER_MS;
    this.timerKind = kind;
    this.timer = setTimeout(() => this.onTimer(kind), ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerKind = null;
  }

  private onTimer(kind: 'idle' | 'header' | 'linger'): void {
    this.timer = null;
    this.timerKind = null;
    if (kind === 'idle') this.closeGracefully();
    else if (kind === 'header') this.refuse(new HttpParseError(408, 'PAL_L7_HEADER_TIMEOUT', 'request head timeout'));
    else this.destroy();
  }

  /** Starts the stream inactivity check (idempotent); it stops itself once idle. */
  private watchStream(): void {
    this.lastActivity = performance.now();
    if (this.streamTimer) return;
    const limit = this.ctx.limits.streamIdleTimeoutMs;
    this.streamTimer = setInterval(() => this.checkStream(), Math.max(25, Math.floor(limit / 4)));
    this.streamTimer.unref();
  }

  private unwatchStream(): void {
    if (this.streamTimer) clearInterval(this.streamTimer);
    this.streamTimer = null;
  }

  private checkStream(): void {
    const ex = this.ex;
    if (this.phase === 'closed' || (!ex && this.phase !== 'tunnel')) {
      this.unwatchStream();
      return;
    }
    if (performance.now() - this.lastActivity < this.ctx.limits.streamIdleTimeoutMs) return;
    this.unwatchStream();
    if (ex && ex.status === 0) {
      // Nothing answered yet: say which side stalled, then close.
      const status = ex.bodyDone ? 504 : 408;
      this.dropUpstream(true);
      this.writeClient(plainResponse(status, REASONS[status]!, `${status === 504 ? 'upstream' : 'request body'} timed out\n`,
        true, ex.req.method === 'HEAD'));
      ex.status = status;
      this.recordExchange(ex);
      this.ex = null;
      this.closeGracefully();
      return;
    }
    if (ex) {
      this.recordExchange(ex);
      this.ex = null;
    }
    this.destroy();
  }

  // ---- client input -------------------------------------------------------------------

  private pause(bit: number): void {
    if (this.paused === 0) this.client.pause();
    this.paused |= bit;
  }

  private resume(bit: number): void {
    if ((this.paused & bit) === 0) return;
    this.paused &= ~bit;
    if (this.paused === 0) this.client.resume();
  }

  private onClientData(chunk: Buffer): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    this.lastActivity = performance.now();
    if (this.phase === 'tunnel') {
      const up = this.upstream;
      if (up && !up.write(chunk)) this.pauseForUpstream(up);
      return;
    }
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    // A head and the body bytes behind it leave in one write (writev) instead of two.
    const up = this.upstream;
    up?.cork();
    try {
      this.process();
    } finally {
      up?.uncork();
    }
  }

  private onClientEnd(): void {
    this.clientEnded = true;
    if (this.phase === 'tunnel') {
      this.upstream?.end();
      return;
    }
    this.process();
  }

  private onClientClose(): void {
    const wasTunnel = this.phase === 'tunnel';
    this.phase = 'closed';
    this.clearTimer();
    this.unwatchStream();
    if (this.ex) this.recordExchange(this.ex);
    this.ex = null;
    this.buf = null;
    this.dropUpstream(!wasTunnel);
    this.ctx.closed(this);
  }

  /** Consumes buffered client input as far as the current phase allows. */
  private process(): void {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.buf !== null) {
        const before = this.phase;
        if (before === 'head') {
          if (!this.readHead()) break;
        } else if (before === 'body') {
          this.forwardBody();
          if (this.phase === 'body') break;
        } else if (before === 'drain') {
          this.drainBody();
          if (this.phase === 'drain') break;
        } else if (before === 'wait') {
          if (this.buf.length > MAX_PENDING_INPUT) this.pause(PAUSE_PENDING);
          break;
        } else {
          this.buf = null;
        }
      }
    } finally {
      this.processing = false;
    }
    if (this.clientEnded) {
      // The client sent everything it will send: what is left of a head or a denied body
      // can never complete; a forwarded body cut short cannot be finished either. An
      // exchange waiting for its response ('wait') completes first.
      if (this.phase === 'head' || this.phase === 'drain') this.closeGracefully();
      else if (this.phase === 'body') this.abort();
    }
  }

  private readHead(): boolean {
    let buf = this.buf!;
    // RFC 9112 2.2: a server SHOULD ignore empty lines received before a request-line.
    let s = 0;
    while (s + 1 < buf.length && buf[s] === 0x0d && buf[s + 1] === 0x0a) s += 2;
    if (s > 0) {
      buf = buf.subarray(s);
      if (buf.length === 0) {
        this.buf = null;
        return false;
      }
      this.buf = buf;
    }
    const max = this.ctx.limits.maxHeaderBytes;
    const end = headEnd(buf);
    if (end < 0) {
      this.armTimer('header');
      if (buf.length > max) this.refuse(new HttpParseError(431, 'PAL_L7_HEAD_TOO_LARGE', 'request head too large'));
      else if (hasBareLineBreak(buf)) this.refuse(new HttpParseError(400, 'PAL_L7_BAD_LINE_BREAK', 'bare CR or LF in message head'));
      return false;
    }
    if (end > max) {
      this.refuse(new HttpParseError(431, 'PAL_L7_HEAD_TOO_LARGE', 'request head too large'));
      return false;
    }
    let req: ParsedRequest;
    const head = buf.subarray(0, end);
    try {
      req = parseRequestHead(head);
    } catch (e) {
      if (!(e instanceof HttpParseError)) throw e;
      this.refuse(e);
      return false;
    }
    this.clearTimer();
    this.buf = end < buf.length ? buf.subarray(end) : null;
    this.startExchange(req, head);
    return true;
  }

  private fallbackDirection(): Direction {
    return this.ctx.decider.direction?.(this.info) ?? this.lastDirection ?? 'ingress';
  }

  private startExchange(req: ParsedRequest, head: Buffer): void {
    this.requests++;
    const info: RequestInfo = req.host === undefined
      ? { method: req.method, path: req.target, headers: req.headers }
      : { method: req.method, path: req.target, host: req.host, headers: req.headers };
    let decision: L7Decision;
    try {
      decision = this.ctx.decider.decide(this.info, info);
    } catch {
      // A decider that throws must not open the door: deny.
      decision = { allowed: false, direction: this.fallbackDirection(), policy: 'default-deny' };
    }
    this.lastDirection = decision.direction;
    const last = this.requests >= this.ctx.limits.maxRequestsPerConnection || this.ctx.draining();
    const ex: Exchange = {
      req, info, decision, body: null, bodyDone: req.body === 'none', status: 0, responseDone: false,
      closeAfter: last || !req.keepAlive, upstreamClose: false, recorded: false,
    };
    this.ex = ex;
    this.watchStream();
    if (decision.allowed) this.forward(ex, head);
    else this.deny(ex);
  }

  private deny(ex: Exchange): void {
    const req = ex.req;
    let keep = !ex.closeAfter;
    let drain: BodyFramer | null = null;
    if (req.body !== 'none') {
      // With 100-continue the client waits for us before sending the body: answering and
      // closing means it never sends it. A body too large to be worth reading closes too.
      if (req.expectContinue || (req.body === 'length' && req.contentLength > MAX_DRAIN_BYTES)) keep = false;
      else drain = req.body === 'length' ? new LengthFramer(req.contentLength) : new ChunkedFramer(this.ctx.limits.maxHeaderBytes);
    }
    const head = req.method === 'HEAD';
    this.writeClient(keep ? (head ? DENIED.keepHead : DENIED.keep) : (head ? DENIED.closeHead : DENIED.close));
    ex.status = 403;
    ex.responseDone = true;
    this.recordExchange(ex);
    this.ex = null;
    if (!keep) {
      this.closeGracefully();
    } else if (drain) {
      this.drainer = drain;
      this.drained = 0;
      this.phase = 'drain';
    } else {
      this.nextRequest();
    }
  }

  private drainBody(): void {
    const buf = this.buf!;
    let n: number;
    try {
      n = this.drainer!.consume(buf, 0);
    } catch {
      this.closeGracefully();
      return;
    }
    this.drained += n;
    this.buf = n < buf.length ? buf.subarray(n) : null;
    if (this.drainer!.done) {
      this.drainer = null;
      this.nextRequest();
    } else if (this.drained > MAX_DRAIN_BYTES) {
      this.closeGracefully();
    }
  }

  private forward(ex: Exchange, head: Buffer): void {
    let up = this.upstream;
    if (up === null) {
      try {
        up = this.openUpstream();
      } catch {
        this.failExchange(ex);
        return;
      }
    }
    this.respPhase = 'head';
    this.upBuf = null;
    this.respBody = null;
    if (!up.write(head)) this.pauseForUpstream(up);
    if (ex.req.body === 'none') {
      this.phase = 'wait';
    } else {
      ex.body = ex.req.body === 'length' ? new LengthFramer(ex.req.contentLength) : new ChunkedFramer(this.ctx.limits.maxHeaderBytes);
      this.phase = 'body';
    }
  }

  private forwardBody(): void {
    const ex = this.ex!;
    const buf = this.buf!;
    let n: number;
    try {
      n = ex.body!.consume(buf, 0);
    } catch (e) {
      // The head went upstream already; a broken chunked body ends both connections.
      if (ex.status === 0 && e instanceof HttpParseError) {
        this.writeClient(plainResponse(400, REASONS[400]!, 'Bad request', true));
        ex.status = 400;
      }
      this.recordExchange(ex, true);
      this.dropUpstream(true);
      this.closeGracefully();
      return;
    }
    const part = n === buf.length ? buf : buf.subarray(0, n);
    this.buf = n < buf.length ? buf.subarray(n) : null;
    const up = this.upstream;
    if (n > 0 && up && !up.write(part)) this.pauseForUpstream(up);
    if (ex.body!.done) {
      ex.bodyDone = true;
      this.phase = 'wait';
      if (ex.responseDone) this.finishExchange();
    }
  }

  private pauseForUpstream(up: Socket): void {
    if (this.paused & PAUSE_UPSTREAM) return;
    this.pause(PAUSE_UPSTREAM);
    up.once('drain', () => this.resume(PAUSE_UPSTREAM));
  }

  // ---- upstream -----------------------------------------------------------------------

  private openUpstream(): Socket {
    const up = this.ctx.connectUpstream(this.info);
    up.setNoDelay(true);
    up.on('data', (c: Buffer) => {
      if (up !== this.upstream) return;
      this.lastActivity = performance.now();
      this.onUpstreamData(c);
    });
    up.on('end', () => {
      if (up === this.upstream && this.phase === 'tunnel') this.client.end();
    });
    up.on('error', () => { /* 'close' follows */ });
    up.on('close', (hadError: boolean) => {
      if (up === this.upstream) this.onUpstreamClose(hadError);
    });
    this.upstream = up;
    this.upstreamPaused = false;
    return up;
  }

  /** Forgets the upstream connection; `abort` destroys it, otherwise it is ended. */
  private dropUpstream(abort: boolean): void {
    const up = this.upstream;
    if (!up) return;
    this.upstream = null;
    if (abort) up.destroy();
    else up.end();
  }

  private onUpstreamClose(hadError: boolean): void {
    this.upstream = null;
    if (this.phase === 'tunnel') {
      // A clean close already ended the client side ('end' above); pending bytes still flush.
      if (hadError) this.client.destroy();
      else this.client.end();
      return;
    }
    const ex = this.ex;
    if (!ex || ex.responseDone) return; // an idle keep-alive upstream went away: reopen later
    if (this.respPhase === 'body' && this.respBody instanceof UntilCloseFramer && !hadError) {
      ex.responseDone = true;
      ex.closeAfter = true;
      this.finishExchange();
      return;
    }
    this.failExchange(ex);
  }

  /** The upstream failed: 502 if no response was sent yet, else cut the client off. */
  private failExchange(ex: Exchange): void {
    this.dropUpstream(true);
    if (ex.status === 0) {
      this.writeClient(plainResponse(502, REASONS[502]!, 'Bad gateway', true, ex.req.method === 'HEAD'));
      ex.status = 502;
      this.recordExchange(ex);
      this.ex = null;
      this.closeGracefully();
    } else {
      this.recordExchange(ex);
      this.ex = null;
      this.client.destroy();
    }
  }

  private onUpstreamData(chunk: Buffer): void {
    const ex = this.ex;
    if (this.phase === 'tunnel') {
      if (!this.client.write(chunk)) this.pauseUpstreamForClient();
      return;
    }
    if (!ex || ex.responseDone) {
      // Bytes nobody asked for (or after the response ended): the upstream is out of step.
      this.dropUpstream(true);
      return;
    }
    this.client.cork();
    try {
      this.responseData(ex, chunk);
    } finally {
      this.client.uncork();
    }
  }

  private responseData(ex: Exchange, chunk: Buffer): void {
    let data: Buffer | null = chunk;
    if (this.respPhase === 'head') {
      data = this.readResponseHead(ex, chunk);
      if (data === null) return;
    }
    const framer = this.respBody!;
    const n = framer.consume(data, 0);
    if (n > 0 && !this.client.write(n === data.length ? data : data.subarray(0, n))) this.pauseUpstreamForClient();
    if (n < data.length) ex.upstreamClose = true; // extra bytes after the response: out of step
    if (framer.done) this.responseComplete(ex);
  }

  /** Parses response heads (interim ones are passed on); returns body bytes, or null. */
  private readResponseHead(ex: Exchange, chunk: Buffer): Buffer | null {
    let buf = this.upBuf === null ? chunk : Buffer.concat([this.upBuf, chunk]);
    for (;;) {
      const end = headEnd(buf);
      if (end < 0) {
        if (buf.length > MAX_RESPONSE_HEAD || hasBareLineBreak(buf)) this.failExchange(ex);
        else this.upBuf = buf;
        return null;
      }
      const head = buf.subarray(0, end);
      let resp: ParsedResponse;
      try {
        resp = parseResponseHead(head, ex.req.method);
      } catch {
        this.failExchange(ex);
        return null;
      }
      const rest = buf.subarray(end);
      if (resp.status === 101) {
        if (ex.req.upgrade) this.startTunnel(ex, head, rest);
        else this.failExchange(ex);
        return null;
      }
      if (resp.status < 200) {
        // 100 Continue (the client's body follows it) and 103 Early Hints go through, but
        // not to an HTTP/1.0 client, which does not know interim responses (RFC 9110 15.2).
        if (ex.req.minor === 1) this.writeClient(head);
        if (rest.length === 0) {
          this.upBuf = null;
          return null;
        }
        buf = rest;
        continue;
      }
      this.upBuf = null;
      ex.status = resp.status;
      // The response head goes to the client as received, `connection: close` included:
      // having said it, we close the client connection after it too (RFC 9112 9.6).
      if (!resp.keepAlive) {
        ex.upstreamClose = true;
        ex.closeAfter = true;
      }
      if (resp.body === 'close') ex.closeAfter = true;
      const rewrite = ex.closeAfter && resp.keepAlive;
      if (!this.client.write(rewrite ? withConnectionClose(head, resp) : head)) this.pauseUpstreamForClient();
      this.respPhase = 'body';
      this.respBody = resp.body === 'length' ? new LengthFramer(resp.contentLength)
        : resp.body === 'chunked' ? new ChunkedFramer(MAX_RESPONSE_HEAD, 502, 'PAL_L7_UPSTREAM_BAD_CHUNK')
          : resp.body === 'close' ? new UntilCloseFramer() : new LengthFramer(0);
      return rest;
    }
  }

  private pauseUpstreamForClient(): void {
    const up = this.upstream;
    if (!up || this.upstreamPaused) return;
    this.upstreamPaused = true;
    up.pause();
    this.client.once('drain', () => {
      this.upstreamPaused = false;
      if (up === this.upstream) up.resume();
    });
  }

  private responseComplete(ex: Exchange): void {
    ex.responseDone = true;
    if (!ex.bodyDone) ex.closeAfter = true;
    this.finishExchange();
  }

  private finishExchange(): void {
    const ex = this.ex!;
    this.ex = null;
    this.recordExchange(ex);
    // An upstream that answered before the whole request body arrived is mid-request.
    if (!ex.bodyDone) this.dropUpstream(true);
    else if (ex.upstreamClose) this.dropUpstream(false);
    if (ex.closeAfter || this.ctx.draining()) {
      this.closeGracefully();
      return;
    }
    this.nextRequest();
  }

  private startTunnel(ex: Exchange, head: Buffer, rest: Buffer): void {
    // After 101 the connection is no longer HTTP: bytes flow both ways untouched until
    // either side closes. The upgrade request itself was decided like any other request.
    ex.status = 101;
    ex.responseDone = true;
    this.recordExchange(ex);
    this.ex = null;
    this.phase = 'tunnel';
    this.clearTimer();
    this.watchStream();
    this.upBuf = null;
    this.writeClient(head);
    if (rest.length > 0) this.writeClient(rest);
    const pending = this.buf;
    this.buf = null;
    const up = this.upstream!;
    if (pending && !up.write(pending)) this.pauseForUpstream(up);
    this.resume(PAUSE_PENDING);
    if (this.clientEnded) up.end();
  }

  // ---- endings ------------------------------------------------------------------------

  private nextRequest(): void {
    this.phase = 'head';
    this.resume(PAUSE_PENDING);
    if (this.buf === null) this.armTimer('idle');
    this.process();
  }

  private writeClient(b: Buffer): void {
    if (!this.client.destroyed && this.client.writable) this.client.write(b);
  }

  /** Answers a request we cannot parse and closes. */
  private refuse(e: HttpParseError): void {
    const { method, path } = looseRequestLine(this.buf);
    this.writeClient(plainResponse(e.status, REASONS[e.status] ?? 'Bad Request', `${e.message}\n`, true));
    this.ctx.record(requestRecord(this.ctx.node, this.info, { method, path, status: e.status },
      { malformed: true, direction: this.fallbackDirection() }));
    this.closeGracefully();
  }

  /** The client stopped in the middle of a request body: nothing more can be done. */
  private abort(): void {
    if (this.ex) this.recordExchange(this.ex);
    this.ex = null;
    this.dropUpstream(true);
    this.client.destroy();
  }

  /**
   * Ends the client connection after what was written, then reads and discards input for
   * a while: closing with unread data makes the kernel send a RST that can destroy the
   * response in flight (RFC 9112 9.6, "lingering close").
   */
  private closeGracefully(): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    if (this.ex) {
      this.recordExchange(this.ex);
      this.ex = null;
      this.dropUpstream(true);
    } else {
      this.dropUpstream(false);
    }
    this.phase = 'closing';
    this.buf = null;
    this.paused = 0;
    this.client.resume();
    this.client.end();
    this.armTimer('linger');
  }

  private recordExchange(ex: Exchange, malformed = false): void {
    if (ex.recorded) return;
    ex.recorded = true;
    const out = { method: ex.req.method, path: ex.req.target, host: ex.req.host, status: ex.status };
    this.ctx.record(requestRecord(this.ctx.node, this.info, out,
      malformed ? { malformed: true, direction: ex.decision.direction } : ex.decision));
  }
}
