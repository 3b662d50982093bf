/**
 * Message-body framers: they find where a body ends in a byte stream without buffering or
 * re-encoding it, so the proxy can forward the bytes as they arrive (a 50 MB upload passes
 * through in socket-sized pieces). `consume` returns how many bytes of `buf` from `off`
 * belong to the body; `done` turns true once the body's last byte was consumed.
 */
import { HttpParseError } from './http1.ts';

export interface BodyFramer {
  readonly done: boolean;
  /** Bytes of buf[off..] that belong to the body (all of them until the end is seen). */
  consume(buf: Buffer, off: number): number;
}

/** A Content-Length body. */
export class LengthFramer implements BodyFramer {
  private remaining: number;
  constructor(length: number) {
    this.remaining = length;
  }
  get done(): boolean {
    return this.remaining === 0;
  }
  consume(buf: Buffer, off: number): number {
    const n = Math.min(this.remaining, buf.length - off);
    this.remaining -= n;
    return n;
  }
}

/** A close-delimited response body: ends when the upstream closes. */
export class UntilCloseFramer implements BodyFramer {
  readonly done = false;
  consume(buf: Buffer, off: number): number {
    return buf.length - off;
  }
}

const S_SIZE = 0;
const S_SIZE_WS = 1;
const S_EXT = 2;
const S_SIZE_LF = 3;
const S_DATA = 4;
const S_DATA_CR = 5;
const S_DATA_LF = 6;
const S_TRAILER_START = 7;
const S_TRAILER = 8;
const S_TRAILER_LF = 9;
const S_FINAL_LF = 10;
const S_DONE = 11;

const MAX_SIZE_LINE = 4096;
/** 13 hex digits stay below 2^53. */
const MAX_SIZE_DIGITS = 13;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/**
 * A chunked body (RFC 9112 7.1), chunk extensions and trailers included. Strict: CRLF only,
 * a size line of hex digits (optionally followed by whitespace and `;extensions`), trailer
 * lines without obs-fold, at most `maxTrailerBytes` of trailers.
 */
export class ChunkedFramer implements BodyFramer {
  private state = S_SIZE;
  private size = 0;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;
  private readonly maxTrailerBytes: number;
  private readonly code: string;
  private readonly status: number;

  /** `status`/`code`: what a framing error becomes (400 for requests, 502 for responses). */
  constructor(maxTrailerBytes: number, status = 400, code = 'PAL_L7_BAD_CHUNK') {
    this.maxTrailerBytes = maxTrailerBytes;
    this.status = status;
    this.code = code;
  }

  get done(): boolean {
    return this.state === S_DONE;
  }

  private fail(msg: string): never {
    throw new HttpParseError(this.status, this.code, msg);
  }

  consume(buf: Buffer, off: number): number {
    let i = off;
    const end = buf.length;
    while (i < end && this.state !== S_DONE) {
      if (this.state === S_DATA) {
        const n = Math.min(this.size, end - i);
        this.size -= n;
        i += n;
        if (this.size === 0) this.state = S_DATA_CR;
        continue;
      }
      const c = buf[i++]!;
      switch (this.state) {
        case S_SIZE: {
          const h = hexValue(c);
          if (h >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) this.fail('chunk size too large');
            this.size = this.size * 16 + h;
          } else if (this.digits === 0) {
            this.fail('invalid chunk size');
          } else if (c === 0x0d) {
            this.state = S_SIZE_LF;
          } else if (c === 0x3b) {
            this.state = S_EXT;
          } else if (c === 0x20 || c === 0x09) {
            this.state = S_SIZE_WS;
          } else {
            this.fail('invalid chunk size');
          }
          break;
        }
        case S_SIZE_WS:
          if (c === 0x3b) this.state = S_EXT;
          else if (c === 0x0d) this.state = S_SIZE_LF;
          else if (c !== 0x20 && c !== 0x09) this.fail('invalid chunk size line');
          break;
        case S_EXT:
          if (++this.lineBytes > MAX_SIZE_LINE) this.fail('chunk extension too long');
          if (c === 0x0d) this.state = S_SIZE_LF;
          else if (c === 0x0a || (c < 0x20 && c !== 0x09) || c === 0x7f) this.fail('invalid chunk extension');
          break;
        case S_SIZE_LF:
          if (c !== 0x0a) this.fail('chunk size line without CRLF');
          this.state = this.size === 0 ? S_TRAILER_START : S_DATA;
          this.digits = 0;
          this.lineBytes = 0;
          break;
        case S_DATA_CR:
          if (c !== 0x0d) this.fail('chunk data without CRLF');
          this.state = S_DATA_LF;
          break;
        case S_DATA_LF:
          if (c !== 0x0a) this.fail('chunk data without CRLF');
          this.state = S_SIZE;
          break;
        case S_TRAILER_START:
          if (c === 0x0d) this.state = S_FINAL_LF;
          else if (c === 0x20 || c === 0x09) this.fail('obsolete line folding in trailer');
          else if (c === 0x0a) this.fail('bare LF in trailer');
          else this.state = S_TRAILER;
          if (++this.trailerBytes > this.maxTrailerBytes) this.fail('trailers too large');
          break;
        case S_TRAILER:
          if (++this.trailerBytes > this.maxTrailerBytes) this.fail('trailers too large');
          if (c === 0x0d) this.state = S_TRAILER_LF;
          else if (c === 0x0a || (c < 0x20 && c !== 0x09) || c === 0x7f) this.fail('invalid trailer');
          break;
        case S_TRAILER_LF:
          if (c !== 0x0a) this.fail('bare CR in trailer');
          this.state = S_TRAILER_START;
          break;
        case S_FINAL_LF:
          if (c !== 0x0a) this.fail('chunked body without final CRLF');
          this.state = S_DONE;
          break;
      }
    }
    return i - off;
  }
}
