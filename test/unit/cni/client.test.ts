import { describe, expect, it } from 'vitest';
import { parseHttpResponse } from '../../../pkg/cni/client.ts';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('the shim\'s HTTP response parser', () => {
  it('reads a content-length body', () => {
    expect(parseHttpResponse(b('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}extra')))
      .toEqual({ status: 200, body: '{}' });
  });
  it('decodes a chunked body', () => {
    expect(parseHttpResponse(b('HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n')))
      .toEqual({ status: 409, body: '{"a":1}' });
  });
  it('reads to the end without framing headers', () => {
    expect(parseHttpResponse(b('HTTP/1.0 500 x\r\n\r\nboom'))).toEqual({ status: 500, body: 'boom' });
  });
  it('rejects a truncated body', () => {
    expect(() => parseHttpResponse(b('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}'))).toThrow(/truncated/);
  });
  it('rejects a response without a header end or status line', () => {
    expect(() => parseHttpResponse(b('HTTP/1.1 200 OK\r\n'))).toThrow(/incomplete/);
    expect(() => parseHttpResponse(b('SSH-2.0\r\n\r\n'))).toThrow(/bad status line/);
  });
});
