/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ClusterIP Services, translated on the pod's veth before its egress verdict, so that
 * egress policy judges the real backend (pod IP and targetPort), and reversed on replies
 * so that the client sees the ClusterIP throughout. See docs/services.md.
 *
 *   from_pod: svc_translate()  ->  palisade_verdict(EGRESS)  ->  svc_egress_done()
 *   to_pod:   palisade_verdict(INGRESS)  ->  svc_reverse()
 *
 * The layouts below are owned here and mirrored by pkg/datapath/service-codec.ts; the
 * drift test (test/unit/service/service-codec-drift.test.ts) compiles this header on the
 * host. The maps are this header's own (pinned by name beside the others): struct
 * ct_value is not touched, the translation lives in its own NAT table.
 *
 * Frontends (ClusterIP, port, protocol) are one hash map in Cilium's "slot" shape: slot 0
 * holds the frontend (backend count, service id, affinity), slots 1..count the backend
 * ids in a stable order. A flow picks slot 1 + hash(flow) % count, so one lookup chooses
 * a backend with no loop. Backend ids are never reused by the agent while it runs (see
 * pkg/datapath/service-codec.ts), so a stale id (affinity) misses instead of naming
 * another backend.
 */
#ifndef PALISADE_SERVICE_H
#define PALISADE_SERVICE_H

#include <linux/bpf.h>
#include "maps.h"

#define PAL_SVC_FRONTENDS_MAX 65536  /* frontend slots: one per frontend + one per backend */
#define PAL_SVC_BACKENDS_MAX  65536
#define PAL_SVC_NAT_MAX       262144 /* two entries per flow: forward and reverse */
#define PAL_SVC_AFFINITY_MAX  65536
#define PAL_SVC_FRAGS_MAX     8192
#define SVC_BACKENDS_PER_FRONTEND_MAX 4096

/* svc_value.flags */
#define SVC_F_AFFINITY 1 /* sessionAffinity ClientIP: affinityTimeout seconds */

/* svc_nat_value.flags */
#define SVC_NAT_REVERSE 1 /* a reverse entry (key = the reply's tuple) */
#define SVC_NAT_HAIRPIN 2 /* client == backend: source rewritten to SVC_HAIRPIN_IPV4 */
#define SVC_NAT_CLOSING 4 /* a FIN or RST was seen: short lifetime */

/*
 * Source address of hairpin flows (a pod reaching itself through its Service), as the pod
 * sees it: 169.254.42.1. Without a source rewrite the pod would answer itself over its
 * loopback and the client socket (connected to the ClusterIP) would never see the reply;
 * kube-proxy masquerades for the same reason. Link-local, so never a pod or node.
 */
#define SVC_HAIRPIN_IPV4_HOST 0xa9fe2a01

/* pal_svc_counters slots. */
#define SVC_CNT_TRANSLATED 0 /* forward packets translated (hairpin included) */
#define SVC_CNT_NEW_FLOWS  1 /* backend selections recorded (new translated flows) */
#define SVC_CNT_REVERSED   2 /* reply packets translated back to the ClusterIP */
#define SVC_CNT_NO_BACKEND 3 /* packets to a frontend without ready backends (rejected) */
#define SVC_CNT_HAIRPIN    4 /* hairpin packets (both legs) */
#define SVC_CNT_ERRORS     5 /* rewrites that failed (packet dropped) */
#define SVC_COUNTERS_MAX   6

struct svc_key {
	__be32 addr;    /* ClusterIP */
	__be16 port;    /* Service port */
	__u8 protocol;
	__u8 pad;
	__u16 slot;     /* 0 = the frontend, 1..count = its backends */
	__u16 pad2;
};

struct svc_value {
	__u32 backendId;       /* slot > 0 */
	__u32 serviceId;       /* slot 0: the affinity table's key */
	__u32 affinityTimeout; /* slot 0: seconds, with SVC_F_AFFINITY */
	__u16 count;           /* slot 0: number of backends (0 = reject) */
	__u16 flags;           /* slot 0: SVC_F_* */
};

struct svc_backend {
	__be32 addr;
	__be16 port;
	__u8 protocol;
	__u8 pad;
};

/* A tuple as the packet carries it: the forward entry's key is the client's original
 * packet, the reverse entry's key is the backend's reply. */
struct svc_nat_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 pad[3];
};

/* Forward: where the flow goes (backend). Reverse: what the reply's source becomes
 * (ClusterIP and Service port). */
struct svc_nat_value {
	__u64 lastSeen; /* bpf_ktime_get_coarse_ns() */
	__be32 addr;
	__be16 port;
	__u8 flags;     /* SVC_NAT_* */
	__u8 pad;
};

struct svc_affinity_key {
	__u32 serviceId;
	__be32 client;
};

struct svc_affinity_value {
	__u64 lastUsed;
	__u32 backendId;
	__u32 pad;
};

/*
 * Fragments: the first fragment of a translated datagram (forward or reply) records its
 * translation by IP id, so later fragments, which carry no ports, get the same address.
 */
struct svc_frag_key {
	__be32 saddr;  /* as the fragments carry it */
	__be32 daddr;
	__be16 id;
	__u8 protocol;
	__u8 reverse;  /* 0: daddr becomes addr; 1: saddr becomes addr */
};

struct svc_frag_value {
	__be32 addr;
	__u32 pad;
};

_Static_assert(sizeof(struct svc_frag_key) == 12, "svc_frag_key size");
_Static_assert(sizeof(struct svc_frag_value) == 8, "svc_frag_value size");
_Static_assert(sizeof(struct svc_key) == 12, "svc_key size");
_Static_assert(__builtin_offsetof(struct svc_key, slot) == 8, "svc_key.slot");
_Static_assert(sizeof(struct svc_value) == 16, "svc_value size");
_Static_assert(sizeof(struct svc_backend) == 8, "svc_backend size");
_Static_assert(sizeof(struct svc_nat_key) == 16, "svc_nat_key size");
_Static_assert(sizeof(struct svc_nat_value) == 16, "svc_nat_value size");
_Static_assert(sizeof(struct svc_affinity_key) == 8, "svc_affinity_key size");
_Static_assert(sizeof(struct svc_affinity_value) == 16, "svc_affinity_value size");

#ifdef __BPF__

#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "parse.h"
#include "crc32c.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct svc_key);
	__type(value, struct svc_value);
	__uint(max_entries, PAL_SVC_FRONTENDS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_svc_frontends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct svc_backend);
	__uint(max_entries, PAL_SVC_BACKENDS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_svc_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct svc_nat_key);
	__type(value, struct svc_nat_value);
	__uint(max_entries, PAL_SVC_NAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_svc_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct svc_affinity_key);
	__type(value, struct svc_affinity_value);
	__uint(max_entries, PAL_SVC_AFFINITY_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_svc_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct svc_frag_key);
	__type(value, struct svc_frag_value);
	__uint(max_entries, PAL_SVC_FRAGS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_svc_frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, SVC_COUNTERS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_svc_counters SEC(".maps");

#define SVC_NSEC 1000000000ULL
#define SVC_LIFETIME_TCP     (6ULL * 3600 * SVC_NSEC) /* as conntrack.h */
#define SVC_LIFETIME_CLOSING (10ULL * SVC_NSEC)
#define SVC_LIFETIME_UDP     (120ULL * SVC_NSEC)
#define SVC_REFRESH          (1ULL * SVC_NSEC)

/* svc_translate()'s "go on with the verdict"; every other return is a tc action. */
#define SVC_CONTINUE (-128)

#define SVC_IP_OFF      ETH_HLEN_
#define SVC_IP_CSUM_OFF (ETH_HLEN_ + 10)
#define SVC_IP_SRC_OFF  (ETH_HLEN_ + 12)
#define SVC_IP_DST_OFF  (ETH_HLEN_ + 16)
#define SVC_TCP_SYN 0x02
#define SVC_TCP_ACK 0x10

/* The fields translation needs, from a light parse of its own (verdict.h parses again:
 * it must judge the translated packet). */
struct svc_pkt {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 tcpFlags;
	__u16 l4off;
	__be16 ipId;
	__u8 firstFrag; /* offset 0, more fragments follow */
	__u8 pad;
	__u16 l4len;    /* IP total length minus the IP header (SCTP's CRC32c length) */
};

/* svc_parse() results. */
#define SVC_PARSE_NONE  0 /* nothing to translate (not IPv4 TCP/UDP/SCTP) */
#define SVC_PARSE_OK    1 /* `s` filled, ports included */
#define SVC_PARSE_LATER 2 /* a later fragment: addresses, protocol and IP id only */

/* What svc_translate() did, for svc_egress_done(). */
struct svc_state {
	struct svc_nat_key orig; /* the client's packet as it was */
	__be32 backendAddr;
	__be16 backendPort;
	__u8 active;             /* the packet was translated */
	__u8 record;             /* SVC_RECORD_*: write the NAT entries after the verdict */
	__u8 flags;              /* SVC_NAT_HAIRPIN */
	__u8 closing;            /* SVC_NAT_CLOSING when the packet closes the flow */
	__u8 firstFrag;          /* record the translation for later fragments */
	__be16 ipId;
};

#define SVC_RECORD_NONE    0 /* a known flow (its entries are refreshed in place) */
#define SVC_RECORD_NEW     1 /* a new backend selection */

static __always_inline void svc_count(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&pal_svc_counters, &slot);

	if (c)
		*c += 1;
}

/* Parses the headers translation needs; returns SVC_PARSE_*. */
static __always_inline int svc_parse(struct __sk_buff *skb, struct svc_pkt *s)
{
	struct {
		struct pal_ethhdr eth;
		struct pal_iphdr ip;
	} __attribute__((packed)) h;
	__u8 b[14];
	__u32 ihl;

	if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) < 0 ||
	    h.eth.proto != bpf_htons(ETH_P_IP_) || (h.ip.verIhl >> 4) != 4)
		return SVC_PARSE_NONE;
	if (h.ip.protocol != PROTO_TCP && h.ip.protocol != PROTO_UDP &&
	    h.ip.protocol != PROTO_SCTP)
		return SVC_PARSE_NONE;
	s->saddr = h.ip.saddr;
	s->daddr = h.ip.daddr;
	s->protocol = h.ip.protocol;
	s->ipId = h.ip.id;
	/* Later fragments carry no ports: found by IP id (svc_frag_*). */
	if (h.ip.fragOff & bpf_htons(IP_OFFSET))
		return SVC_PARSE_LATER;
	s->firstFrag = (h.ip.fragOff & bpf_htons(IP_MF)) != 0;
	ihl = (h.ip.verIhl & 0x0f) * 4;
	if (ihl < sizeof(h.ip) || ihl > 60)
		return SVC_PARSE_NONE;
	s->l4off = ETH_HLEN_ + ihl;
	s->l4len = bpf_ntohs(h.ip.totLen) > ihl ? bpf_ntohs(h.ip.totLen) - ihl : 0;
	if (bpf_skb_load_bytes(skb, s->l4off, b, h.ip.protocol == PROTO_TCP ? 14 : 4) < 0)
		return SVC_PARSE_NONE;
	__builtin_memcpy(&s->sport, &b[0], 2);
	__builtin_memcpy(&s->dport, &b[2], 2);
	s->tcpFlags = h.ip.protocol == PROTO_TCP ? b[13] : 0;
	return SVC_PARSE_OK;
}

/*
 * The flow hash that picks a backend: a fixed integer mix of the tuple (no per-boot
 * seed), so the choice is stable for a flow and the in-memory model
 * (pkg/datapath/memory/services.ts) computes the same one. Fields are mixed as the
 * 32-bit words they are in memory.
 */
static __always_inline __u32 svc_hash(const struct svc_pkt *s)
{
	__u32 h = s->saddr ^ (s->daddr * 0x9e3779b1u) ^
		  ((((__u32)s->sport << 16) | (__u32)s->dport) * 0x85ebca6bu) ^ s->protocol;

	/* murmur3's finalizer: every input bit reaches the low bits the modulo keeps
	 * (sequential source ports differ in their low byte only). */
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static __always_inline __u64 svc_lifetime(__u8 protocol, __u8 flags)
{
	if (flags & SVC_NAT_CLOSING)
		return SVC_LIFETIME_CLOSING;
	return protocol == PROTO_UDP ? SVC_LIFETIME_UDP : SVC_LIFETIME_TCP;
}

static __always_inline __u8 svc_closing_of(const struct svc_pkt *s)
{
	return (s->protocol == PROTO_TCP && (s->tcpFlags & (TCP_FIN | TCP_RST))) ?
		       SVC_NAT_CLOSING : 0;
}

/* Offset of the L4 checksum covering the pseudo-header, or 0 (SCTP: CRC32c over the
 * SCTP packet only, unaffected by addresses). */
static __always_inline __u32 svc_csum_off(const struct svc_pkt *s)
{
	if (s->protocol == PROTO_TCP)
		return s->l4off + 16;
	if (s->protocol == PROTO_UDP)
		return s->l4off + 6;
	return 0;
}

static __always_inline __u64 svc_l4_flags(const struct svc_pkt *s, __u64 size)
{
	/* UDP checksum 0 means "none": keep it 0 rather than inventing one. */
	return size | (s->protocol == PROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);
}

/* Rewrites the IPv4 address at `at` from `from` to `to`, fixing both checksums. */
static __always_inline int svc_set_addr(struct __sk_buff *skb, const struct svc_pkt *s,
					__u32 at, __be32 from, __be32 to)
{
	__u32 csum = svc_csum_off(s);

	if (from == to)
		return 0;
	if (csum && bpf_l4_csum_replace(skb, csum, from, to,
					svc_l4_flags(s, BPF_F_PSEUDO_HDR | sizeof(to))) < 0)
		return -1;
	if (bpf_l3_csum_replace(skb, SVC_IP_CSUM_OFF, from, to, sizeof(to)) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, at, &to, sizeof(to), 0);
}

#define SVC_SCTP_CSUM 8 /* the CRC32c field in the SCTP common header */
#define SVC_SCTP_HLEN 12

/*
 * SCTP's CRC32c after a port change, updated incrementally (bpf/lib/crc32c.h): the field
 * is a little-endian number over L = IP total length - IP header. A first fragment is
 * not rewritten (its CRC covers the whole datagram, whose length it does not know): the
 * caller drops it as an error. A field of 0 is a CRC not yet computed (the sender's
 * stack left it to checksum offload or GSO, which compute it later over the packet as it
 * then is, with the field zero): it stays 0. A real CRC of 0 has odds 2^-32.
 */
static __always_inline int svc_sctp_port_csum(struct __sk_buff *skb, const struct svc_pkt *s,
					      __u32 at, __be16 from, __be16 to)
{
	__u8 old[4] = {}, new[4] = {}, c[4];
	__u32 check;

	if (s->firstFrag || s->l4len < SVC_SCTP_HLEN)
		return -1;
	if (bpf_skb_load_bytes(skb, s->l4off + SVC_SCTP_CSUM, c, sizeof(c)) < 0)
		return -1;
	check = (__u32)c[0] | ((__u32)c[1] << 8) | ((__u32)c[2] << 16) | ((__u32)c[3] << 24);
	if (check == 0)
		return 0;
	__builtin_memcpy(&old[at & 2], &from, 2);
	__builtin_memcpy(&new[at & 2], &to, 2);
	check = crc32c_update_head4(check, old, new, s->l4len);
	c[0] = check;
	c[1] = check >> 8;
	c[2] = check >> 16;
	c[3] = check >> 24;
	return bpf_skb_store_bytes(skb, s->l4off + SVC_SCTP_CSUM, c, sizeof(c), 0);
}

/* Rewrites the port at L4 offset `at` (0 = source, 2 = destination). */
static __always_inline int svc_set_port(struct __sk_buff *skb, const struct svc_pkt *s,
					__u32 at, __be16 from, __be16 to)
{
	__u32 csum = svc_csum_off(s);

	if (from == to)
		return 0;
	if (s->protocol == PROTO_SCTP && svc_sctp_port_csum(skb, s, at, from, to) < 0)
		return -1;
	if (csum && bpf_l4_csum_replace(skb, csum, from, to, svc_l4_flags(s, sizeof(to))) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, s->l4off + at, &to, sizeof(to), 0);
}

/* Swaps the Ethernet addresses: a frame turned around towards the pod it came from. */
static __always_inline int svc_turn_around(struct __sk_buff *skb)
{
	__u8 mac[12], swapped[12];

	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)) < 0)
		return -1;
	__builtin_memcpy(swapped, mac + 6, 6);
	__builtin_memcpy(swapped + 6, mac, 6);
	return bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0);
}

static __always_inline __u16 svc_csum_fold(__s64 sum)
{
	__u32 c = (__u32)sum;

	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)~c;
}

/*
 * No ready backend: answer the client with ICMP port unreachable from the ClusterIP, as
 * kube-proxy's REJECT rule does (connect() fails at once with ECONNREFUSED, a UDP socket
 * gets the error), instead of a silent drop. The frame is rewritten in place into the
 * ICMP error (IPv4 header + 8 bytes quoted) and handed straight to the pod with
 * bpf_redirect_peer, so the pod's ingress verdict (which has no flow to relate it to)
 * is not consulted: it is the datapath's own answer. Packets with IP options are dropped
 * instead (their quote would not fit the fixed layout).
 */
static __always_inline int svc_reject(struct __sk_buff *skb, const struct svc_pkt *s)
{
	struct {
		struct pal_iphdr ip;
		__u8 icmp[8];
		__u8 quote[28];
	} out = {};
	struct pal_ethhdr eth;
	__u8 tmp[6];

	svc_count(SVC_CNT_NO_BACKEND);
	if (s->l4off != ETH_HLEN_ + sizeof(struct pal_iphdr) ||
	    bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0 ||
	    bpf_skb_load_bytes(skb, SVC_IP_OFF, out.quote, sizeof(out.quote)) < 0)
		return TC_ACT_SHOT;
	__builtin_memcpy(tmp, eth.dst, 6);
	__builtin_memcpy(eth.dst, eth.src, 6);
	__builtin_memcpy(eth.src, tmp, 6);

	out.ip.verIhl = 0x45;
	out.ip.totLen = bpf_htons(sizeof(out));
	out.ip.ttl = 64;
	out.ip.protocol = PROTO_ICMP;
	out.ip.saddr = s->daddr;
	out.ip.daddr = s->saddr;
	out.ip.check = svc_csum_fold(bpf_csum_diff(0, 0, (__be32 *)&out.ip, sizeof(out.ip), 0));
	out.icmp[0] = ICMP_DEST_UNREACH;
	out.icmp[1] = 3; /* port unreachable */
	{
		__u16 c = svc_csum_fold(bpf_csum_diff(0, 0, (__be32 *)out.icmp,
						      sizeof(out.icmp) + sizeof(out.quote), 0));
		__builtin_memcpy(&out.icmp[2], &c, 2);
	}

	if (bpf_skb_change_tail(skb, ETH_HLEN_ + sizeof(out), 0) < 0 ||
	    bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) < 0 ||
	    bpf_skb_store_bytes(skb, SVC_IP_OFF, &out, sizeof(out), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect_peer(skb->ifindex, 0);
}

/* Picks the backend of a new flow: the client's affinity entry while it lasts, else the
 * flow hash's slot. Returns the backend (and its id in `id`), or NULL. */
static __always_inline struct svc_backend *svc_pick(const struct svc_key *fk,
						    const struct svc_value *fv,
						    const struct svc_pkt *s, __u64 now, __u32 *id)
{
	struct svc_affinity_key ak = { .serviceId = fv->serviceId, .client = s->saddr };
	struct svc_affinity_value *av, nav = {};
	struct svc_key k = *fk;
	struct svc_backend *b;
	struct svc_value *sv;
	__u8 affinity = (fv->flags & SVC_F_AFFINITY) != 0;

	if (affinity) {
		av = bpf_map_lookup_elem(&pal_svc_affinity, &ak);
		if (av && now - av->lastUsed <= (__u64)fv->affinityTimeout * SVC_NSEC) {
			*id = av->backendId;
			b = bpf_map_lookup_elem(&pal_svc_backends, id);
			if (b) {
				av->lastUsed = now;
				return b;
			}
		}
	}
	k.slot = 1 + svc_hash(s) % fv->count;
	sv = bpf_map_lookup_elem(&pal_svc_frontends, &k);
	if (!sv)
		return NULL;
	*id = sv->backendId;
	b = bpf_map_lookup_elem(&pal_svc_backends, id);
	if (b && affinity) {
		nav.lastUsed = now;
		nav.backendId = *id;
		bpf_map_update_elem(&pal_svc_affinity, &ak, &nav, BPF_ANY);
	}
	return b;
}

static __always_inline void svc_frag_key_fill(struct svc_frag_key *k, __be32 saddr, __be32 daddr,
					      __be16 id, __u8 protocol, __u8 reverse)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = saddr;
	k->daddr = daddr;
	k->id = id;
	k->protocol = protocol;
	k->reverse = reverse;
}

/* A first fragment was translated: later ones of its datagram get `addr` too. */
static __always_inline void svc_frag_record(__be32 saddr, __be32 daddr, __be16 id, __u8 protocol,
					    __u8 reverse, __be32 addr)
{
	struct svc_frag_key k;
	struct svc_frag_value v = { .addr = addr };

	svc_frag_key_fill(&k, saddr, daddr, id, protocol, reverse);
	bpf_map_update_elem(&pal_svc_frags, &k, &v, BPF_ANY);
}

/*
 * A later fragment: the destination (forward) or source (reverse) its first fragment got.
 * Only the IP header changes (no L4 header here). Returns the tc action, or SVC_CONTINUE.
 */
static __always_inline int svc_frag_translate(struct __sk_buff *skb, const struct svc_pkt *s,
					      __u8 reverse, int rc)
{
	struct svc_frag_key k;
	struct svc_frag_value *v;
	__be32 from = reverse ? s->saddr : s->daddr;

	svc_frag_key_fill(&k, s->saddr, s->daddr, s->ipId, s->protocol, reverse);
	v = bpf_map_lookup_elem(&pal_svc_frags, &k);
	if (!v)
		return rc;
	if (bpf_l3_csum_replace(skb, SVC_IP_CSUM_OFF, from, v->addr, 4) < 0 ||
	    bpf_skb_store_bytes(skb, reverse ? SVC_IP_SRC_OFF : SVC_IP_DST_OFF, &v->addr, 4, 0) < 0) {
		svc_count(SVC_CNT_ERRORS);
		return TC_ACT_SHOT;
	}
	svc_count(reverse ? SVC_CNT_REVERSED : SVC_CNT_TRANSLATED);
	return rc;
}

/* The reverse entry's key: the reply the backend will send. */
static __always_inline void svc_reverse_key(struct svc_nat_key *rk, const struct svc_state *st)
{
	__builtin_memset(rk, 0, sizeof(*rk));
	rk->saddr = st->backendAddr;
	rk->sport = st->backendPort;
	rk->daddr = (st->flags & SVC_NAT_HAIRPIN) ? bpf_htonl(SVC_HAIRPIN_IPV4_HOST) :
						    st->orig.saddr;
	rk->dport = st->orig.sport;
	rk->protocol = st->orig.protocol;
}

/* Writes (or refreshes) both NAT entries of a translated flow. */
static __always_inline void svc_record(const struct svc_state *st, __u64 now, __u8 closing)
{
	struct svc_nat_value fv = {}, rv = {};
	struct svc_nat_key rk;

	fv.lastSeen = now;
	fv.addr = st->backendAddr;
	fv.port = st->backendPort;
	fv.flags = st->flags | closing;
	rv.lastSeen = now;
	rv.addr = st->orig.daddr;
	rv.port = st->orig.dport;
	rv.flags = st->flags | closing | SVC_NAT_REVERSE;
	svc_reverse_key(&rk, st);
	/* Reverse first: a reply can only come once the forward packet went out. */
	bpf_map_update_elem(&pal_svc_nat, &rk, &rv, BPF_ANY);
	bpf_map_update_elem(&pal_svc_nat, &st->orig, &fv, BPF_ANY);
}

/*
 * A known flow's forward packet: refreshes both entries in place, now and then or when
 * the packet closes the flow (no map update: cheaper than an LRU insert). The reverse
 * entry is written again only if the LRU took it.
 */
static __always_inline void svc_refresh(struct svc_state *st, struct svc_nat_value *nv, __u64 now)
{
	struct svc_nat_value *rv, nrv = {};
	struct svc_nat_key rk;

	if (now - nv->lastSeen <= SVC_REFRESH && !(st->closing & ~nv->flags))
		return;
	nv->lastSeen = now;
	nv->flags |= st->closing;
	svc_reverse_key(&rk, st);
	rv = bpf_map_lookup_elem(&pal_svc_nat, &rk);
	if (rv) {
		rv->lastSeen = now;
		rv->flags |= st->closing;
		return;
	}
	nrv.lastSeen = now;
	nrv.addr = st->orig.daddr;
	nrv.port = st->orig.dport;
	nrv.flags = st->flags | nv->flags | SVC_NAT_REVERSE;
	bpf_map_update_elem(&pal_svc_nat, &rk, &nrv, BPF_ANY);
}

/*
 * A pod opening a flow straight to an address and port (not a ClusterIP) on a tuple whose
 * replies a finished translated flow still claims (its reverse entry lives on for the
 * closing lifetime, and ephemeral ports are reused quickly): that claim is dropped, or
 * the new flow's replies would be rewritten to the ClusterIP. Checked on TCP SYNs and on
 * UDP only, so established TCP traffic pays nothing.
 */
static __always_inline void svc_forget_stale(const struct svc_pkt *s)
{
	struct svc_nat_key rk = {
		.saddr = s->daddr, .daddr = s->saddr, .sport = s->dport, .dport = s->sport,
		.protocol = s->protocol,
	}, fk = {};
	struct svc_nat_value *v;

	if (s->protocol == PROTO_TCP && (s->tcpFlags & (SVC_TCP_SYN | SVC_TCP_ACK)) != SVC_TCP_SYN)
		return;
	v = bpf_map_lookup_elem(&pal_svc_nat, &rk);
	if (!v || (v->flags & (SVC_NAT_REVERSE | SVC_NAT_HAIRPIN)) != SVC_NAT_REVERSE)
		return;
	fk.saddr = s->saddr;
	fk.daddr = v->addr;
	fk.sport = s->sport;
	fk.dport = v->port;
	fk.protocol = s->protocol;
	bpf_map_delete_elem(&pal_svc_nat, &fk);
	bpf_map_delete_elem(&pal_svc_nat, &rk);
}

/*
 * The second leg of a hairpin flow: the pod answering SVC_HAIRPIN_IPV4 from its own
 * backend port. Rewritten to come from the ClusterIP and handed straight back into the
 * pod. The pod's verdicts are not consulted again: the flow was judged by its egress
 * policy when its first leg left (docs/services.md, "Hairpin").
 */
static __always_inline int svc_hairpin_reply(struct __sk_buff *skb, const struct svc_pkt *s)
{
	struct svc_nat_key k = {
		.saddr = s->saddr, .daddr = s->daddr, .sport = s->sport, .dport = s->dport,
		.protocol = s->protocol,
	};
	struct svc_nat_value *v = bpf_map_lookup_elem(&pal_svc_nat, &k);

	if (!v || (v->flags & (SVC_NAT_REVERSE | SVC_NAT_HAIRPIN)) !=
			  (SVC_NAT_REVERSE | SVC_NAT_HAIRPIN))
		return SVC_CONTINUE;
	if (svc_set_addr(skb, s, SVC_IP_DST_OFF, s->daddr, s->saddr) < 0 ||
	    svc_set_addr(skb, s, SVC_IP_SRC_OFF, s->saddr, v->addr) < 0 ||
	    svc_set_port(skb, s, 0, s->sport, v->port) < 0 || svc_turn_around(skb) < 0) {
		svc_count(SVC_CNT_ERRORS);
		return TC_ACT_SHOT;
	}
	v->flags |= svc_closing_of(s);
	svc_count(SVC_CNT_REVERSED);
	svc_count(SVC_CNT_HAIRPIN);
	return bpf_redirect_peer(skb->ifindex, 0);
}

/*
 * from_pod, before the egress verdict: a packet to a ClusterIP frontend is translated to
 * its backend (the flow's recorded one, else a new pick). Returns SVC_CONTINUE (then call
 * palisade_verdict and svc_egress_done) or a tc action that ends the packet's path here
 * (the no-backend answer, a hairpin reply, a failed rewrite).
 */
static __always_inline int svc_translate(struct __sk_buff *skb, struct svc_state *st)
{
	struct svc_key fk = {};
	struct svc_value *fv;
	struct svc_nat_value *nv;
	struct svc_backend *b;
	struct svc_pkt s = {};
	__u64 now;
	__u32 id;
	__u8 closing;

	st->active = 0;
	switch (svc_parse(skb, &s)) {
	case SVC_PARSE_NONE:
		return SVC_CONTINUE;
	case SVC_PARSE_LATER:
		return svc_frag_translate(skb, &s, 0, SVC_CONTINUE);
	}
	if (s.daddr == bpf_htonl(SVC_HAIRPIN_IPV4_HOST))
		return svc_hairpin_reply(skb, &s);

	fk.addr = s.daddr;
	fk.port = s.dport;
	fk.protocol = s.protocol;
	fv = bpf_map_lookup_elem(&pal_svc_frontends, &fk);
	if (!fv) {
		svc_forget_stale(&s);
		return SVC_CONTINUE;
	}
	if (fv->count == 0)
		return svc_reject(skb, &s);

	now = bpf_ktime_get_coarse_ns();
	closing = svc_closing_of(&s);
	__builtin_memset(&st->orig, 0, sizeof(st->orig));
	st->orig.saddr = s.saddr;
	st->orig.daddr = s.daddr;
	st->orig.sport = s.sport;
	st->orig.dport = s.dport;
	st->orig.protocol = s.protocol;

	nv = bpf_map_lookup_elem(&pal_svc_nat, &st->orig);
	/* A recorded flow keeps its backend, even one no longer in the Service. It picks
	 * again when its entry expired, or when a SYN reopens a closed tuple. */
	if (nv && !(nv->flags & SVC_NAT_REVERSE) &&
	    now - nv->lastSeen <= svc_lifetime(s.protocol, nv->flags) &&
	    !((nv->flags & SVC_NAT_CLOSING) &&
	      (s.tcpFlags & (SVC_TCP_SYN | SVC_TCP_ACK)) == SVC_TCP_SYN)) {
		st->backendAddr = nv->addr;
		st->backendPort = nv->port;
		st->flags = nv->flags & SVC_NAT_HAIRPIN;
		st->closing = closing;
		st->record = SVC_RECORD_NONE;
		/* The reverse entry too: a flow whose replies are rare must not lose them. */
		svc_refresh(st, nv, now);
	} else {
		b = svc_pick(&fk, fv, &s, now, &id);
		if (!b)
			return svc_reject(skb, &s);
		st->backendAddr = b->addr;
		st->backendPort = b->port;
		st->flags = b->addr == s.saddr ? SVC_NAT_HAIRPIN : 0;
		st->record = SVC_RECORD_NEW;
	}

	if (svc_set_addr(skb, &s, SVC_IP_DST_OFF, s.daddr, st->backendAddr) < 0 ||
	    svc_set_port(skb, &s, 2, s.dport, st->backendPort) < 0 ||
	    ((st->flags & SVC_NAT_HAIRPIN) &&
	     svc_set_addr(skb, &s, SVC_IP_SRC_OFF, s.saddr, bpf_htonl(SVC_HAIRPIN_IPV4_HOST)) < 0)) {
		svc_count(SVC_CNT_ERRORS);
		return TC_ACT_SHOT;
	}
	st->active = 1;
	st->closing = closing;
	st->firstFrag = s.firstFrag && !(st->flags & SVC_NAT_HAIRPIN);
	st->ipId = s.ipId;
	return SVC_CONTINUE;
}

/*
 * from_pod, after the egress verdict `rc` on the translated packet: records a new
 * translation only when the verdict let the packet go (a denied flow leaves nothing
 * behind), and sends a hairpin packet straight back into its pod.
 */
static __always_inline int svc_egress_done(struct __sk_buff *skb, const struct svc_state *st,
					   int rc)
{
	if (!st->active || rc == TC_ACT_SHOT)
		return rc;
	if (st->record == SVC_RECORD_NEW) {
		svc_record(st, bpf_ktime_get_coarse_ns(), st->closing);
		svc_count(SVC_CNT_NEW_FLOWS);
	}
	if (st->firstFrag)
		svc_frag_record(st->orig.saddr, st->orig.daddr, st->ipId, st->orig.protocol, 0,
				st->backendAddr);
	svc_count(SVC_CNT_TRANSLATED);
	if (!(st->flags & SVC_NAT_HAIRPIN) || rc != TC_ACT_OK)
		return rc;
	/* Hairpin: the pod is its own backend. Back into it directly (the host would not
	 * route a packet out of the interface it came in on without a second look from
	 * rp_filter), and not through to_pod: see svc_hairpin_reply. */
	svc_count(SVC_CNT_HAIRPIN);
	if (svc_turn_around(skb) < 0) {
		svc_count(SVC_CNT_ERRORS);
		return TC_ACT_SHOT;
	}
	return bpf_redirect_peer(skb->ifindex, 0);
}

/* Offsets in an ICMP error without IP options that quotes a packet without options. */
#define SVC_ICMP_OFF        (ETH_HLEN_ + 20)
#define SVC_ICMP_CSUM_OFF   (SVC_ICMP_OFF + 2)
#define SVC_INNER_OFF       (SVC_ICMP_OFF + 8)
#define SVC_INNER_CSUM_OFF  (SVC_INNER_OFF + 10)
#define SVC_INNER_DST_OFF   (SVC_INNER_OFF + 16)
#define SVC_INNER_DPORT_OFF (SVC_INNER_OFF + 20 + 2)

/*
 * to_pod: an ICMP error (unreachable, time exceeded) about a translated flow, e.g. the
 * backend's "port unreachable" for a UDP datagram. It quotes the packet as the client's
 * program sent it (to the backend); the client's socket only knows the ClusterIP, so the
 * quote's destination and port become the ClusterIP's again, and the error's source too
 * when the backend itself sent it. Checksums: the outer IP header's, the quoted IP
 * header's, and the ICMP checksum over both changes. Errors with IP options (outer or
 * quoted) are left alone.
 */
static __always_inline int svc_reverse_icmp(struct __sk_buff *skb, int rc)
{
	struct {
		struct pal_iphdr ip;
		__u8 icmp[8];
		struct pal_iphdr inner;
		__be16 sport;
		__be16 dport;
	} __attribute__((packed)) h;
	struct svc_nat_key k = {};
	struct svc_nat_value *v;
	__u16 oldCheck, newCheck;

	if (bpf_skb_load_bytes(skb, ETH_HLEN_, &h, sizeof(h)) < 0 || h.ip.verIhl != 0x45 ||
	    h.ip.protocol != PROTO_ICMP || (h.ip.fragOff & bpf_htons(IP_OFFSET)) ||
	    (h.icmp[0] != ICMP_DEST_UNREACH && h.icmp[0] != ICMP_TIME_EXCEEDED) ||
	    h.inner.verIhl != 0x45 ||
	    (h.inner.protocol != PROTO_TCP && h.inner.protocol != PROTO_UDP))
		return rc;
	k.saddr = h.inner.daddr;
	k.daddr = h.inner.saddr;
	k.sport = h.dport;
	k.dport = h.sport;
	k.protocol = h.inner.protocol;
	v = bpf_map_lookup_elem(&pal_svc_nat, &k);
	if (!v || (v->flags & (SVC_NAT_REVERSE | SVC_NAT_HAIRPIN)) != SVC_NAT_REVERSE)
		return rc;
	oldCheck = h.inner.check;
	if (bpf_l3_csum_replace(skb, SVC_INNER_CSUM_OFF, h.inner.daddr, v->addr, 4) < 0 ||
	    bpf_skb_load_bytes(skb, SVC_INNER_CSUM_OFF, &newCheck, 2) < 0 ||
	    bpf_skb_store_bytes(skb, SVC_INNER_DST_OFF, &v->addr, 4, 0) < 0 ||
	    bpf_l4_csum_replace(skb, SVC_ICMP_CSUM_OFF, h.inner.daddr, v->addr, 4) < 0 ||
	    bpf_l4_csum_replace(skb, SVC_ICMP_CSUM_OFF, oldCheck, newCheck, 2) < 0 ||
	    bpf_skb_store_bytes(skb, SVC_INNER_DPORT_OFF, &v->port, 2, 0) < 0 ||
	    bpf_l4_csum_replace(skb, SVC_ICMP_CSUM_OFF, h.dport, v->port, 2) < 0)
		goto fail;
	if (h.ip.saddr == h.inner.daddr &&
	    (bpf_l3_csum_replace(skb, SVC_IP_CSUM_OFF, h.ip.saddr, v->addr, 4) < 0 ||
	     bpf_skb_store_bytes(skb, SVC_IP_SRC_OFF, &v->addr, 4, 0) < 0))
		goto fail;
	svc_count(SVC_CNT_REVERSED);
	return rc;
fail:
	svc_count(SVC_CNT_ERRORS);
	return TC_ACT_SHOT;
}

/*
 * to_pod, after an ingress verdict that let the packet in: a reply of a translated flow
 * gets the ClusterIP and Service port back as its source. Returns the tc action.
 */
static __always_inline int svc_reverse(struct __sk_buff *skb, int rc)
{
	struct svc_nat_value *v, *fv;
	struct svc_nat_key k = {}, fk = {};
	struct svc_pkt s = {};
	__u8 closing;
	__u64 now;

	if (rc != TC_ACT_OK)
		return rc;
	switch (svc_parse(skb, &s)) {
	case SVC_PARSE_NONE:
		return svc_reverse_icmp(skb, rc);
	case SVC_PARSE_LATER:
		return svc_frag_translate(skb, &s, 1, rc);
	}
	k.saddr = s.saddr;
	k.daddr = s.daddr;
	k.sport = s.sport;
	k.dport = s.dport;
	k.protocol = s.protocol;
	v = bpf_map_lookup_elem(&pal_svc_nat, &k);
	if (!v || (v->flags & (SVC_NAT_REVERSE | SVC_NAT_HAIRPIN)) != SVC_NAT_REVERSE)
		return rc;
	now = bpf_ktime_get_coarse_ns();
	/* An expired entry no longer speaks for this tuple (the pod may have reused its
	 * port for a direct connection to the same backend). */
	if (now - v->lastSeen > svc_lifetime(s.protocol, v->flags))
		return rc;
	if (svc_set_addr(skb, &s, SVC_IP_SRC_OFF, s.saddr, v->addr) < 0 ||
	    svc_set_port(skb, &s, 0, s.sport, v->port) < 0) {
		svc_count(SVC_CNT_ERRORS);
		return TC_ACT_SHOT;
	}
	if (s.firstFrag)
		svc_frag_record(s.saddr, s.daddr, s.ipId, s.protocol, 1, v->addr);
	closing = svc_closing_of(&s);
	if (closing && !(v->flags & SVC_NAT_CLOSING)) {
		/* The reply closes the flow: shorten both entries. */
		v->flags |= SVC_NAT_CLOSING;
		fk.saddr = s.daddr;
		fk.daddr = v->addr;
		fk.sport = s.dport;
		fk.dport = v->port;
		fk.protocol = s.protocol;
		fv = bpf_map_lookup_elem(&pal_svc_nat, &fk);
		if (fv)
			fv->flags |= SVC_NAT_CLOSING;
	}
	svc_count(SVC_CNT_REVERSED);
	return rc;
}

#endif /* __BPF__ */

#endif
