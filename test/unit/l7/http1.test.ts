/** Strict HTTP/1.1 head parsing and body framing (pkg/l7/http1.ts, pkg/l7/framing.ts). */
import { describe, expect, test } from 'vitest';
import { ChunkedFramer, LengthFramer } from '../../../pkg/l7/framing.ts';
import { HttpParseError, headEnd, parseRequestHead, parseResponseHead } from '../../../pkg/l7/http1.ts';

const head = (s: string) => Buffer.from(s, 'latin1');

function parseError(s: string): HttpParseError {
  try {
    parseRequestHead(head(s));
  } catch (e) {
    if (e instanceof HttpParseError) return e;
    throw e;
  }
  throw new Error('parsed without error');
}

describe('parseRequestHead accepts', () => {
  test('a GET with host, keep-alive by default', () => {
    const r = parseRequestHead(head('GET /a?b=c HTTP/1.1\r\nHost: x.y:80\r\nX-A:  1 \r\nx-a: 2\r\n\r\n'));
    expect(r).toMatchObject({ method: 'GET', target: '/a?b=c', minor: 1, host: 'x.y:80', body: 'none', keepAlive: true });
    expect(r.headers.get('x-a')).toEqual(['1', '2']);
  });

  test('content-length and chunked bodies', () => {
    expect(parseRequestHead(head('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n'))).toMatchObject({ body: 'length', contentLength: 5 });
    expect(parseRequestHead(head('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n')).body).toBe('chunked');
  });

  test('HTTP/1.0 closes unless keep-alive is asked for; no host needed', () => {
    expect(parseRequestHead(head('GET / HTTP/1.0\r\n\r\n')).keepAlive).toBe(false);
    expect(parseRequestHead(head('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')).keepAlive).toBe(true);
  });

  test('expect 100-continue, upgrade, connection close, OPTIONS *', () => {
    const r = parseRequestHead(head('PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n'));
    expect(r.expectContinue).toBe(true);
    const u = parseRequestHead(head('GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n'));
    expect(u.upgrade).toBe(true);
    expect(parseRequestHead(head('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n')).keepAlive).toBe(false);
    expect(parseRequestHead(head('OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n')).target).toBe('*');
  });
});

describe('parseRequestHead rejects', () => {
  const rejects: [string, string, number, string][] = [
    ['garbage request line', 'HELLO\r\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_REQUEST_LINE'],
    ['two spaces in the request line', 'GET  / HTTP/1.1\r\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_REQUEST_LINE'],
    ['lowercase protocol', 'GET / http/1.1\r\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_REQUEST_LINE'],
    ['method with a separator', 'GE(T / HTTP/1.1\r\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_REQUEST_LINE'],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: h\r\n\r\n', 505, 'PAL_L7_VERSION'],
    ['absolute-form', 'GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_TARGET'],
    ['CONNECT authority-form', 'CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_TARGET'],
    ['backslash in path', 'GET /a\\b HTTP/1.1\r\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_TARGET'],
    ['bad percent escape', 'GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_TARGET'],
    ['dot-dot segment', 'GET /public/../admin HTTP/1.1\r\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_TARGET'],
    ['encoded dot-dot segment', 'GET /public/%2e%2E/admin HTTP/1.1\r\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_TARGET'],
    ['asterisk for GET', 'GET * HTTP/1.1\r\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_TARGET'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n', 400, 'PAL_L7_OBS_FOLD'],
    ['space before colon', 'GET / HTTP/1.1\r\nHost : h\r\n\r\n', 400, 'PAL_L7_BAD_HEADER'],
    ['header without colon', 'GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n', 400, 'PAL_L7_BAD_HEADER'],
    ['NUL in a header value', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\u0000b\r\n\r\n', 400, 'PAL_L7_BAD_HEADER'],
    ['bare LF', 'GET / HTTP/1.1\nHost: h\r\n\r\n', 400, 'PAL_L7_BAD_LINE_BREAK'],
    ['bare CR', 'GET / HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n', 400, 'PAL_L7_BAD_LINE_BREAK'],
    ['missing host in 1.1', 'GET / HTTP/1.1\r\n\r\n', 400, 'PAL_L7_BAD_HOST'],
    ['two hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, 'PAL_L7_BAD_HOST'],
    ['host with userinfo', 'GET / HTTP/1.1\r\nHost: u@h\r\n\r\n', 400, 'PAL_L7_BAD_HOST'],
    ['duplicate content-length', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n', 400, 'PAL_L7_BAD_LENGTH'],
    ['content-length list', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n', 400, 'PAL_L7_BAD_LENGTH'],
    ['signed content-length', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n', 400, 'PAL_L7_BAD_LENGTH'],
    ['CL + TE (smuggling)', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 400, 'PAL_L7_SMUGGLING'],
    ['TE not ending in chunked', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 400, 'PAL_L7_BAD_TE'],
    ['TE chunked twice', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 400, 'PAL_L7_BAD_TE'],
    ['TE obfuscated', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n', 400, 'PAL_L7_BAD_TE'],
    ['TE in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400, 'PAL_L7_BAD_TE'],
  ];
  test.each(rejects)('%s', (_name, s, status, code) => {
    const e = parseError(s);
    expect(e.status).toBe(status);
    expect(e.code).toBe(code);
  });
});

describe('parseResponseHead framing', () => {
  test.each([
    ['content-length', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n', 'GET', 'length', true],
    ['chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'GET', 'chunked', true],
    ['close-delimited', 'HTTP/1.1 200 OK\r\n\r\n', 'GET', 'close', false],
    ['HEAD has no body', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n', 'HEAD', 'none', true],
    ['204 has no body', 'HTTP/1.1 204 No Content\r\n\r\n', 'GET', 'none', true],
    ['304 has no body', 'HTTP/1.1 304 Not Modified\r\n\r\n', 'GET', 'none', true],
    ['100 has no body', 'HTTP/1.1 100 Continue\r\n\r\n', 'PUT', 'none', true],
    ['HTTP/1.0 closes', 'HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n', 'GET', 'length', false],
    ['connection close', 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n', 'GET', 'length', false],
    ['no reason phrase', 'HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n', 'GET', 'length', true],
  ])('%s', (_n, s, method, body, keepAlive) => {
    expect(parseResponseHead(head(s), method)).toMatchObject({ body, keepAlive });
  });

  test('conflicting content-length from upstream is an error', () => {
    expect(() => parseResponseHead(head('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'), 'GET')).toThrow(HttpParseError);
  });
});

describe('headEnd', () => {
  test('finds the end across a resumed search', () => {
    const b = head('GET / HTTP/1.1\r\nHost: h\r\n\r\nBODY');
    expect(headEnd(b)).toBe(b.length - 4);
    expect(headEnd(b, b.length - 5)).toBe(b.length - 4);
    expect(headEnd(head('GET / HTTP/1.1\r\n'))).toBe(-1);
  });
});

/** Feeds `s` to a fresh framer in pieces of `step` bytes; returns consumed count and done. */
function feed(s: string, step: number): { consumed: number; done: boolean } {
  const f = new ChunkedFramer(1024);
  const b = head(s);
  let consumed = 0;
  for (let off = 0; off < b.length && !f.done; off += step) {
    const piece = b.subarray(off, Math.min(b.length, off + step));
    const n = f.consume(piece, 0);
    consumed += n;
    if (n < piece.length) break;
  }
  return { consumed, done: f.done };
}

describe('ChunkedFramer', () => {
  const body = '5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n';
  test.each([1, 2, 3, 7, 1000])('finds the end of a chunked body fed %i bytes at a time', (step) => {
    expect(feed(body + 'GET / HTTP/1.1', step)).toEqual({ consumed: body.length, done: true });
  });

  test('stops at the end even with the next request in the same buffer', () => {
    const f = new ChunkedFramer(1024);
    const b = head('0\r\n\r\nGET /next');
    expect(f.consume(b, 0)).toBe(5);
    expect(f.done).toBe(true);
  });

  test.each([
    ['no digits', 'x\r\n'],
    ['negative size', '-1\r\n'],
    ['bare LF after size', '5\nhello\r\n'],
    ['missing CRLF after data', '5\r\nhelloX'],
    ['size too large', 'fffffffffffffff\r\n'],
    ['obs-fold in trailer', '0\r\nA: 1\r\n 2\r\n\r\n'],
  ])('rejects %s', (_n, s) => {
    expect(() => new ChunkedFramer(1024).consume(head(s), 0)).toThrow(HttpParseError);
  });

  test('rejects oversized trailers', () => {
    expect(() => new ChunkedFramer(10).consume(head('0\r\nX-Long: aaaaaaaaaaaaaa\r\n\r\n'), 0)).toThrow(/trailers too large/);
  });
});

describe('LengthFramer', () => {
  test('consumes exactly its length', () => {
    const f = new LengthFramer(5);
    expect(f.consume(head('abc'), 0)).toBe(3);
    expect(f.done).toBe(false);
    expect(f.consume(head('xdeGET'), 1)).toBe(2);
    expect(f.done).toBe(true);
  });
});
