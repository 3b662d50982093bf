/**
 * Strict HTTP/1.1 message-head parsing for the L7 proxy (RFC 9112). The proxy forwards the
 * head bytes it parsed unchanged, so anything two parsers could read differently (the
 * proxy and the upstream server) is rejected here rather than interpreted: obs-fold, bare
 * CR or LF, whitespace before the colon, duplicate Content-Length, Content-Length together
 * with Transfer-Encoding, a Transfer-Encoding whose final coding is not `chunked`.
 */

/** A request the proxy must refuse: answered with `status` and the connection closed. */
export class HttpParseError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const bad = (code: string, message: string) => new HttpParseError(400, code, message);

/** RFC 9110 tchar. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field value: VCHAR, obs-text, SP, HTAB (no CTLs). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** RFC 3986 path-absolute + optional query, in origin form. */
const ORIGIN_FORM = /^\/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*(?:\?(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?$/;
const REQUEST_LINE = /^([^ ]+) ([^ ]+) HTTP\/(\d)\.(\d)$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [\t\x20-\x7e\x80-\xff]*)?$/;
const DIGITS = /^\d{1,15}$/;

export type BodyKind = 'none' | 'length' | 'chunked' | 'close';

export interface ParsedRequest {
  method: string;
  /** Origin-form target (path and query) or `*` (OPTIONS only). */
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: number;
  /** Lowercase name to values, one per field line, in order. */
  headers: Map<string, string[]>;
  host?: string;
  body: 'none' | 'length' | 'chunked';
  contentLength: number;
  /** The client wants the connection kept open after this request. */
  keepAlive: boolean;
  expectContinue: boolean;
  /** An Upgrade request (Upgrade header and `upgrade` in Connection). */
  upgrade: boolean;
}

export interface ParsedResponse {
  status: number;
  minor: number;
  headers: Map<string, string[]>;
  /** Field lines as received, for rewriting the head (name as sent, value). */
  lines: string[];
  body: BodyKind;
  contentLength: number;
  /** The server keeps the connection open after this response. */
  keepAlive: boolean;
}

/** Index just past the `\r\n\r\n` ending a head in buf, or -1. */
export function headEnd(buf: Buffer, from = 0): number {
  const i = buf.indexOf('\r\n\r\n', Math.max(0, from - 3), 'latin1');
  return i < 0 ? -1 : i + 4;
}

/** Whether buf (a head in progress) holds a bare LF or a CR not followed by LF. */
export function hasBareLineBreak(buf: Buffer): boolean {
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) {
    if (i === 0 || buf[i - 1] !== 0x0d) return true;
  }
  for (let i = buf.indexOf(0x0d); i >= 0 && i + 1 < buf.length; i = buf.indexOf(0x0d, i + 1)) {
    if (buf[i + 1] !== 0x0a) return true;
  }
  return false;
}

/** Splits a complete head (ending in CRLFCRLF) into lines, rejecting bare CR/LF. */
function headLines(head: Buffer, code: string): string[] {
  const s = head.toString('latin1', 0, head.length - 4);
  const lines = s.split('\r\n');
  for (const l of lines) {
    if (l.includes('\r') || l.includes('\n')) throw bad(code, 'bare CR or LF in message head');
  }
  return lines;
}

function parseFields(lines: string[], into: Map<string, string[]>, raw: string[] | null): void {
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const c0 = line.charCodeAt(0);
    if (c0 === 0x20 || c0 === 0x09) throw bad('PAL_L7_OBS_FOLD', 'obsolete line folding');
    const colon = line.indexOf(':');
    if (colon <= 0) throw bad('PAL_L7_BAD_HEADER', 'header line without a name');
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw bad('PAL_L7_BAD_HEADER', 'invalid header name');
    let a = colon + 1;
    let b = line.length;
    while (a < b && (line.charCodeAt(a) === 0x20 || line.charCodeAt(a) === 0x09)) a++;
    while (b > a && (line.charCodeAt(b - 1) === 0x20 || line.charCodeAt(b - 1) === 0x09)) b--;
    const value = line.slice(a, b);
    if (!FIELD_VALUE.test(value)) throw bad('PAL_L7_BAD_HEADER', 'invalid character in header value');
    const key = name.toLowerCase();
    const list = into.get(key);
    if (list) list.push(value);
    else into.set(key, [value]);
    raw?.push(line);
  }
}

/** Comma-separated tokens of every line of a header, lowercase, empty elements dropped. */
export function tokens(values: readonly string[] | undefined): string[] {
  if (!values) return [];
  const out: string[] = [];
  for (const v of values) {
    for (const part of v.split(',')) {
      const t = part.trim().toLowerCase();
      if (t !== '') out.push(t);
    }
  }
  return out;
}

/** The single Content-Length, or -1 when absent; anything ambiguous throws. */
function contentLength(headers: Map<string, string[]>, mk: (m: string) => Error): number {
  const cl = headers.get('content-length');
  if (!cl) return -1;
  if (cl.length !== 1) throw mk('duplicate content-length');
  if (!DIGITS.test(cl[0]!)) throw mk('invalid content-length');
  return Number(cl[0]);
}

/** Dot-segments (`.`/`..`, also as %2e) would let the upstream normalise past a path rule. */
function hasDotSegment(path: string): boolean {
  if (!path.includes('.') && !path.includes('%')) return false;
  for (const seg of path.split('/')) {
    if (seg.length > 6 || seg.length === 0) continue;
    const d = seg.replace(/%2e/gi, '.');
    if (d === '.' || d === '..') return true;
  }
  return false;
}

/** Parses a complete request head (bytes up to and including the empty line). */
export function parseRequestHead(head: Buffer): ParsedRequest {
  const lines = headLines(head, 'PAL_L7_BAD_LINE_BREAK');
  const m = REQUEST_LINE.exec(lines[0]!);
  if (!m) throw bad('PAL_L7_BAD_REQUEST_LINE', 'malformed request line');
  const [, method, target, major, minorS] = m as unknown as [string, string, string, string, string];
  if (!TOKEN.test(method)) throw bad('PAL_L7_BAD_REQUEST_LINE', 'invalid method');
  if (major !== '1' || (minorS !== '0' && minorS !== '1')) {
    throw new HttpParseError(505, 'PAL_L7_VERSION', 'unsupported http version');
  }
  const minor = Number(minorS);
  if (target === '*') {
    if (method !== 'OPTIONS') throw bad('PAL_L7_BAD_TARGET', 'asterisk-form is only for OPTIONS');
  } else if (!ORIGIN_FORM.test(target)) {
    // absolute-form and authority-form (CONNECT) are for explicit proxies; a client talking
    // to the server pod never sends them, and accepting them would give the rules a second
    // notion of the host.
    throw bad('PAL_L7_BAD_TARGET', 'request target is not in origin form');
  } else if (hasDotSegment(target.split('?', 1)[0]!)) {
    throw bad('PAL_L7_BAD_TARGET', 'dot-segment in request path');
  }
  const headers = new Map<string, string[]>();
  parseFields(lines, headers, null);

  const hosts = headers.get('host');
  if (hosts && hosts.length > 1) throw bad('PAL_L7_BAD_HOST', 'more than one host header');
  if (!hosts && minor === 1) throw bad('PAL_L7_BAD_HOST', 'missing host header');
  const host = hosts?.[0];
  // An empty Host is legal (a target without authority); userinfo, paths and spaces are not.
  if (host !== undefined && /[\s@/?#\\]/.test(host)) {
    throw bad('PAL_L7_BAD_HOST', 'invalid host header');
  }

  const te = headers.get('transfer-encoding');
  const cl = contentLength(headers, (msg) => bad('PAL_L7_BAD_LENGTH', msg));
  let body: ParsedRequest['body'] = 'none';
  let length = 0;
  if (te) {
    // RFC 9112 6.1/6.3: CL+TE is the request-smuggling shape; TE in HTTP/1.0 is faulty.
    if (cl >= 0) throw bad('PAL_L7_SMUGGLING', 'content-length with transfer-encoding');
    if (minor === 0) throw bad('PAL_L7_BAD_TE', 'transfer-encoding in an http/1.0 request');
    const codings = tokens(te);
    if (codings.length === 0 || codings[codings.length - 1] !== 'chunked'
      || codings.indexOf('chunked') !== codings.length - 1) {
      throw bad('PAL_L7_BAD_TE', 'transfer-encoding must end in a single chunked');
    }
    body = 'chunked';
  } else if (cl > 0) {
    body = 'length';
    length = cl;
  }

  const conn = tokens(headers.get('connection'));
  const keepAlive = minor === 1 ? !conn.includes('close') : conn.includes('keep-alive') && !conn.includes('close');
  const expect = headers.get('expect');
  const expectContinue = minor === 1 && !!expect && expect.some((v) => v.toLowerCase() === '100-continue');
  const upgrade = minor === 1 && headers.has('upgrade') && conn.includes('upgrade');
  return { method, target, minor, headers, host, body, contentLength: length, keepAlive, expectContinue, upgrade };
}

/** Parses a complete response head; framing follows RFC 9112 6.3 for `requestMethod`. */
export function parseResponseHead(head: Buffer, requestMethod: string): ParsedResponse {
  const lines = headLines(head, 'PAL_L7_UPSTREAM_BAD_HEAD');
  const m = STATUS_LINE.exec(lines[0]!);
  if (!m) throw bad('PAL_L7_UPSTREAM_BAD_HEAD', 'malformed status line');
  const minor = Number(m[1]);
  const status = Number(m[2]);
  if (status < 100) throw bad('PAL_L7_UPSTREAM_BAD_HEAD', 'invalid status code');
  const headers = new Map<string, string[]>();
  const raw: string[] = [];
  parseFields(lines, headers, raw);
  const conn = tokens(headers.get('connection'));
  let keepAlive = minor === 1 ? !conn.includes('close') : conn.includes('keep-alive') && !conn.includes('close');
  let body: BodyKind;
  let length = 0;
  const te = headers.get('transfer-encoding');
  if (status < 200 || status === 204 || status === 304 || requestMethod === 'HEAD') {
    body = 'none';
  } else if (te) {
    const codings = tokens(te);
    if (codings[codings.length - 1] === 'chunked') {
      body = 'chunked';
    } else {
      body = 'close';
      keepAlive = false;
    }
  } else {
    const cl = contentLength(headers, (msg) => bad('PAL_L7_UPSTREAM_BAD_LENGTH', msg));
    if (cl >= 0) {
      body = cl === 0 ? 'none' : 'length';
      length = cl;
    } else {
      body = 'close';
      keepAlive = false;
    }
  }
  return { status, minor, headers, lines: raw, body, contentLength: length, keepAlive };
}
