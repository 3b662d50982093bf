/**
 * CRC32c (Castagnoli; reflected, init and xorout 0xFFFFFFFF) as SCTP uses it, for tests:
 * a plain bitwise CRC over whole packets, and a TypeScript twin of the datapath's
 * incremental port update (bpf/lib/crc32c.h) so the math is checked without a kernel.
 */

/** The reflected Castagnoli polynomial. */
export const CRC32C_POLY = 0x82f63b78;
/** x^0 in the reflected representation (bit 31 holds the x^0 coefficient). */
const ONE = 0x80000000;

/** The plain CRC32c of `data` (the value SCTP stores, before byte order). */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let i = 0; i < 8; i++) c = (c >>> 1) ^ (c & 1 ? CRC32C_POLY : 0);
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** a * b mod P, both reflected. */
export function crc32cMul(a: number, b: number): number {
  let p = 0;
  for (let i = 0; i < 32; i++) {
    if ((a >>> (31 - i)) & 1) p ^= b;
    b = (b >>> 1) ^ (b & 1 ? CRC32C_POLY : 0);
  }
  return p >>> 0;
}

/** x^(8 * 2^k) mod P for k = 0..15: the table bpf/lib/crc32c.h carries as constants. */
export const crc32cPow8Table: readonly number[] = (() => {
  const t: number[] = [];
  let m = ONE >>> 8; // x^8
  for (let k = 0; k < 16; k++) {
    t.push(m);
    m = crc32cMul(m, m);
  }
  return t;
})();

/** x^(8 * n) mod P, n < 65536, by square-and-multiply over the table. */
export function crc32cXpow8(n: number): number {
  let r = ONE;
  for (let k = 0; k < 16; k++) if (n & (1 << k)) r = crc32cMul(r, crc32cPow8Table[k]!);
  return r;
}

/** The SCTP checksum field (bytes 8..11 of the common header, stored little-endian). */
export function sctpChecksumOf(sctp: Uint8Array): number {
  return Buffer.from(sctp).readUInt32LE(8);
}

/** The checksum an SCTP packet should carry: CRC32c over it with the field zeroed. */
export function sctpChecksumExpected(sctp: Uint8Array): number {
  const b = Buffer.from(sctp);
  b.writeUInt32LE(0, 8);
  return crc32c(b);
}

/**
 * The incremental update the datapath does when only the 4 port bytes change: the old
 * checksum XOR crc0(delta) advanced over the rest of the packet, i.e. the delta word
 * (little-endian, as the reflected CRC consumes bytes) times x^(8 * length) mod P.
 */
export function sctpChecksumAfterPorts(oldChecksum: number, oldPorts: Uint8Array, newPorts: Uint8Array, length: number): number {
  let delta = 0;
  for (let i = 0; i < 4; i++) delta |= (oldPorts[i]! ^ newPorts[i]!) << (8 * i);
  return (oldChecksum ^ crc32cMul(delta >>> 0, crc32cXpow8(length))) >>> 0;
}
