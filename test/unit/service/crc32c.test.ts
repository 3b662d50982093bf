/**
 * The incremental SCTP CRC32c update (bpf/lib/crc32c.h, twin in test/helpers/crc32c.ts)
 * against a full CRC32c on random packets, and the header's constants against the table.
 */
import { readFileSync } from 'node:fs';
import { randomBytes, randomInt } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import {
  crc32c, crc32cPow8Table, crc32cXpow8, crc32cMul, sctpChecksumAfterPorts, sctpChecksumExpected,
  sctpChecksumOf,
} from '../../helpers/crc32c.ts';

/** A random SCTP packet of `len` bytes carrying a valid checksum. */
function packet(len: number): Buffer {
  const b = randomBytes(len);
  b.writeUInt32LE(sctpChecksumExpected(b), 8);
  return b;
}

describe('CRC32c', () => {
  test('the standard check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  test('x^(8n) by square-and-multiply equals n byte shifts of x^0', () => {
    let r = 0x80000000;
    for (let n = 0; n < 600; n++) {
      expect(crc32cXpow8(n) >>> 0, `n=${n}`).toBe(r >>> 0);
      r = crc32cMul(r, 0x00800000);
    }
  });

  test('the incremental port update equals a full CRC on random packets', () => {
    for (let i = 0; i < 300; i++) {
      // Lengths from the bare common header to near the 64 KiB datagram limit, odd ones too.
      const len = i < 10 ? 12 + i : randomInt(12, i % 7 === 0 ? 65515 : 1500);
      const p = packet(len);
      const q = Buffer.from(p);
      const ports = randomBytes(4);
      const which = i % 3; // source only, destination only, both
      if (which !== 1) ports.copy(q, 0, 0, 2);
      if (which !== 0) ports.copy(q, 2, 2, 4);
      const updated = sctpChecksumAfterPorts(sctpChecksumOf(p), p.subarray(0, 4), q.subarray(0, 4), len);
      expect(updated, `len ${len}`).toBe(sctpChecksumExpected(q));
    }
  });

  test('a wrong checksum stays wrong by the same error', () => {
    for (let i = 0; i < 50; i++) {
      const len = randomInt(12, 2000);
      const p = packet(len);
      const bad = (sctpChecksumOf(p) ^ (1 << (i % 32))) >>> 0;
      const q = Buffer.from(p);
      q.writeUInt16BE(randomInt(1, 65536), 2);
      const updated = sctpChecksumAfterPorts(bad, p.subarray(0, 4), q.subarray(0, 4), len);
      expect(updated).not.toBe(sctpChecksumExpected(q));
      expect((updated ^ sctpChecksumExpected(q)) >>> 0).toBe((bad ^ sctpChecksumOf(p)) >>> 0);
    }
  });

  test('bpf/lib/crc32c.h carries the same x^(8 * 2^k) constants', () => {
    const h = readFileSync(new URL('../../../bpf/lib/crc32c.h', import.meta.url), 'utf8');
    const steps = [...h.matchAll(/CRC32C_STEP\((\d+), (0x[0-9a-f]+)u\);/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(steps.length).toBe(14);
    for (const [k, c] of steps) expect(c, `k=${k}`).toBe(crc32cPow8Table[k!]);
    // k = 0 and 1 are shifts by 8 and 16 bits in the header.
    expect(crc32cPow8Table[0]).toBe(0x80000000 >>> 8);
    expect(crc32cPow8Table[1]).toBe(0x80000000 >>> 16);
  });
});
