/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Incremental CRC32c for SCTP port rewrites (docs/services.md, "SCTP").
 *
 * SCTP's checksum is CRC32c (reflected, init and xorout 0xFFFFFFFF) over the SCTP packet
 * with the checksum field zeroed. For two packets of equal length L the affine parts
 * cancel: crc(M1) ^ crc(M2) = crc0(M1 ^ M2), crc0 being the same CRC with init and xorout
 * 0. When only the 4 port bytes at the start differ, crc0 of that difference is the
 * difference word (little-endian: the reflected CRC consumes bytes low bit first) times
 * x^(8L) mod P. No loop over the payload: x^(8L) is a square-and-multiply over the bits
 * of L with the constants x^(8 * 2^k) below, and each product is a 32-step GF(2) multiply
 * (branch-free, bounded). The TypeScript twin is test/helpers/crc32c.ts.
 */
#ifndef PALISADE_CRC32C_H
#define PALISADE_CRC32C_H

#define CRC32C_POLY 0x82f63b78u /* reflected Castagnoli polynomial */
#define CRC32C_ONE  0x80000000u /* x^0, reflected */

/* a * b mod P, reflected. */
static __noinline __u32 crc32c_mul(__u32 a, __u32 b)
{
	__u32 p = 0;

	for (int i = 0; i < 32; i++) {
		p ^= b & -((a >> (31 - i)) & 1);
		b = (b >> 1) ^ (CRC32C_POLY & -(b & 1));
	}
	return p;
}

/* One step of the square-and-multiply: r * x^(8 * 2^k) when bit k of n is set. */
#define CRC32C_STEP(k, c)                           \
	do {                                        \
		if (n & (1u << (k)))                \
			r = crc32c_mul(r, (c));     \
	} while (0)

/* x^(8n) mod P for n < 65536 (constants: x^(8 * 2^k), k = 0..15). */
static __always_inline __u32 crc32c_xpow8(__u32 n)
{
	__u32 r = CRC32C_ONE;

	/* Bits 0 and 1: x^8 and x^16 are shifts, no multiply needed. */
	r >>= 8 * (n & 1);
	r >>= 16 * ((n >> 1) & 1);
	CRC32C_STEP(2, 0x82f63b78u);
	CRC32C_STEP(3, 0x6ea2d55cu);
	CRC32C_STEP(4, 0x18b8ea18u);
	CRC32C_STEP(5, 0x510ac59au);
	CRC32C_STEP(6, 0xb82be955u);
	CRC32C_STEP(7, 0xb8fdb1e7u);
	CRC32C_STEP(8, 0x88e56f72u);
	CRC32C_STEP(9, 0x74c360a4u);
	CRC32C_STEP(10, 0xe4172b16u);
	CRC32C_STEP(11, 0x0d65762au);
	CRC32C_STEP(12, 0x35d73a62u);
	CRC32C_STEP(13, 0x28461564u);
	CRC32C_STEP(14, 0xbf455269u);
	CRC32C_STEP(15, 0xe2ea32dcu);
	return r;
}

/*
 * The checksum after the first 4 bytes of an SCTP packet of `len` bytes changed from
 * `from` to `to` (bytes as on the wire). `check` is the checksum as a little-endian
 * number, which is how SCTP stores it. A wrong checksum stays wrong: the update adds the
 * difference, it does not recompute.
 */
static __always_inline __u32 crc32c_update_head4(__u32 check, const __u8 from[4],
						 const __u8 to[4], __u32 len)
{
	__u32 d = (__u32)(from[0] ^ to[0]) | ((__u32)(from[1] ^ to[1]) << 8) |
		  ((__u32)(from[2] ^ to[2]) << 16) | ((__u32)(from[3] ^ to[3]) << 24);

	return check ^ crc32c_mul(d, crc32c_xpow8(len));
}

#endif
