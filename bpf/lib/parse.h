/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet parsing: Ethernet + IPv4 (options allowed) + the L4 fields policy needs.
 *
 * Headers are copied with bpf_skb_load_bytes rather than read through direct packet
 * access: it works on non-linear skbs (GRO, paged data on veth) and every length check is
 * a runtime one, so there is no variable-offset pointer arithmetic for a verifier on some
 * other kernel build to reject. There are no loops.
 */
#ifndef PALISADE_PARSE_H
#define PALISADE_PARSE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "drop.h"
#include "maps.h"

#define ETH_HLEN_    14
#define ETH_P_IP_    0x0800
#define ETH_P_ARP_   0x0806

/* Wire formats, declared here so the programs need no libc or arch headers. */
struct pal_ethhdr {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
} __attribute__((packed));

struct pal_iphdr {
	__u8 verIhl;
	__u8 tos;
	__be16 totLen;
	__be16 id;
	__be16 fragOff;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

#define IP_MF       0x2000
#define IP_OFFSET   0x1fff

#define TCP_FIN 0x01
#define TCP_RST 0x04

#define ICMP_ECHOREPLY     0
#define ICMP_DEST_UNREACH  3
#define ICMP_ECHO          8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

/* Fragment position of an IPv4 packet. */
#define FRAG_NONE  0 /* a whole datagram */
#define FRAG_FIRST 1 /* offset 0, more fragments: carries the L4 header */
#define FRAG_LATER 2 /* offset > 0: no L4 header */

/* parse_packet() results besides a negative DROP_* code. */
#define PARSE_IPV4     0
#define PARSE_ARP      1
#define PARSE_OTHER_L3 2

/* A 5-tuple; ports are 0 for protocols without ports, the echo id for ICMP echo. */
struct tuple {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
};

struct packet {
	struct tuple t;
	__be16 ipId;
	__u8 frag;      /* FRAG_* */
	__u8 tcpFlags;
	__u8 icmpType;
	__u8 hasPorts;  /* TCP, UDP, SCTP: ports take part in policy */
	__u8 hasInner;  /* ICMP error: `inner` is the tuple of the packet it reports on */
	struct tuple inner;
};

/*
 * Reads the ports (or ICMP echo id) of an L4 header at `off` into `t`.
 * `avail` is how many L4 bytes the IP header says this packet holds.
 * Returns 0, or DROP_MALFORMED when the header is cut short. `icmpType` gets the ICMP
 * type (0 otherwise).
 */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, __u32 avail,
				    struct tuple *t, __u8 *tcpFlags, __u8 *icmpType)
{
	__u8 b[14];

	switch (t->protocol) {
	case PROTO_TCP:
		/* Minimum TCP header: also rejects "tiny first fragment" tricks (RFC 1858). */
		if (avail < 20 || bpf_skb_load_bytes(skb, off, b, 14) < 0)
			return DROP_MALFORMED;
		__builtin_memcpy(&t->sport, &b[0], 2);
		__builtin_memcpy(&t->dport, &b[2], 2);
		*tcpFlags = b[13];
		return 0;
	case PROTO_UDP:
	case PROTO_SCTP: /* SCTP common header: ports first, like UDP; 12 bytes long */
		if (avail < (t->protocol == PROTO_UDP ? 8u : 12u) ||
		    bpf_skb_load_bytes(skb, off, b, 4) < 0)
			return DROP_MALFORMED;
		__builtin_memcpy(&t->sport, &b[0], 2);
		__builtin_memcpy(&t->dport, &b[2], 2);
		return 0;
	case PROTO_ICMP:
		if (avail < 8 || bpf_skb_load_bytes(skb, off, b, 8) < 0)
			return DROP_MALFORMED;
		*icmpType = b[0];
		if (b[0] == ICMP_ECHO || b[0] == ICMP_ECHOREPLY) {
			/* The echo id plays both ports, so a request and its reply are
			 * each other's reverse tuple. */
			__builtin_memcpy(&t->sport, &b[4], 2);
			__builtin_memcpy(&t->dport, &b[4], 2);
		}
		return 0;
	default:
		return 0;
	}
}

/*
 * For an ICMP error at `off` (type 3, 11, 12): the tuple of the packet it reports on
 * (an IPv4 header plus at least 8 bytes follow the 8-byte ICMP header). Returns 1 when
 * `inner` was filled, 0 when the quote is too short to tell (not an error: the packet is
 * then judged as plain ICMP).
 */
static __always_inline int parse_icmp_inner(struct __sk_buff *skb, __u32 off, __u32 avail,
					    struct tuple *inner)
{
	struct pal_iphdr ip;
	__u8 b[8];
	__u32 ihl;

	if (avail < 8 + sizeof(ip) + 8 ||
	    bpf_skb_load_bytes(skb, off + 8, &ip, sizeof(ip)) < 0)
		return 0;
	ihl = (ip.verIhl & 0x0f) * 4;
	if ((ip.verIhl >> 4) != 4 || ihl < sizeof(ip) || avail < 8 + ihl + 8 ||
	    bpf_skb_load_bytes(skb, off + 8 + ihl, b, 8) < 0)
		return 0;
	inner->saddr = ip.saddr;
	inner->daddr = ip.daddr;
	inner->protocol = ip.protocol;
	switch (ip.protocol) {
	case PROTO_TCP:
	case PROTO_UDP:
	case PROTO_SCTP:
		__builtin_memcpy(&inner->sport, &b[0], 2);
		__builtin_memcpy(&inner->dport, &b[2], 2);
		return 1;
	case PROTO_ICMP:
		if (b[0] != ICMP_ECHO && b[0] != ICMP_ECHOREPLY)
			return 0;
		__builtin_memcpy(&inner->sport, &b[4], 2);
		__builtin_memcpy(&inner->dport, &b[4], 2);
		return 1;
	default:
		return 1;
	}
}

/*
 * Parses the packet in `skb` (data starts at the Ethernet header, as on a veth's tc
 * hooks). Returns PARSE_IPV4 with `p` filled, PARSE_ARP, PARSE_OTHER_L3, or a negative
 * DROP_* code: DROP_MALFORMED for a truncated frame, a bad version, an IHL below 5, a
 * total length that does not fit its header or the frame, or an L4 header that does not
 * fit the (first) fragment. IP options (IHL > 5) are skipped, not rejected.
 */
static __always_inline int parse_packet(struct __sk_buff *skb, struct packet *p)
{
	struct pal_ethhdr eth;
	struct pal_iphdr ip;
	__u32 ihl, totLen, fragOff, l4off;
	int rc;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return DROP_MALFORMED;
	if (eth.proto == bpf_htons(ETH_P_ARP_))
		return PARSE_ARP;
	if (eth.proto != bpf_htons(ETH_P_IP_))
		return PARSE_OTHER_L3;

	if (bpf_skb_load_bytes(skb, ETH_HLEN_, &ip, sizeof(ip)) < 0)
		return DROP_MALFORMED;
	ihl = (ip.verIhl & 0x0f) * 4;
	totLen = bpf_ntohs(ip.totLen);
	/* IPv4 BIG TCP (Linux >= 6.3, when a device's gso_ipv4_max_size is raised) sends GSO
	 * packets above 64 KiB with tot_len 0: the frame length is the truth then. */
	if (totLen == 0 && skb->len - ETH_HLEN_ > 0xffff)
		totLen = skb->len - ETH_HLEN_;
	if ((ip.verIhl >> 4) != 4 || ihl < sizeof(ip) || totLen < ihl ||
	    totLen > skb->len - ETH_HLEN_)
		return DROP_MALFORMED;

	p->t.saddr = ip.saddr;
	p->t.daddr = ip.daddr;
	p->t.protocol = ip.protocol;
	p->ipId = ip.id;
	p->hasPorts = ip.protocol == PROTO_TCP || ip.protocol == PROTO_UDP ||
		      ip.protocol == PROTO_SCTP;

	fragOff = bpf_ntohs(ip.fragOff);
	if (fragOff & IP_OFFSET) {
		p->frag = FRAG_LATER;
		return PARSE_IPV4;
	}
	p->frag = (fragOff & IP_MF) ? FRAG_FIRST : FRAG_NONE;

	l4off = ETH_HLEN_ + ihl;
	rc = parse_l4(skb, l4off, totLen - ihl, &p->t, &p->tcpFlags, &p->icmpType);
	if (rc < 0)
		return rc;
	if (p->t.protocol == PROTO_ICMP &&
	    (p->icmpType == ICMP_DEST_UNREACH || p->icmpType == ICMP_TIME_EXCEEDED ||
	     p->icmpType == ICMP_PARAMETERPROB))
		p->hasInner = parse_icmp_inner(skb, l4off, totLen - ihl, &p->inner);
	return PARSE_IPV4;
}

#endif
