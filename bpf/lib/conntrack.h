/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Connection tracking: just enough state for "replies of an allowed connection pass"
 * (NETPOL 21). The forward direction is never decided here; it is judged against the
 * current policy on every packet (NETPOL 25).
 *
 * Entries live in an LRU hash, keyed per endpoint and direction (see struct ct_key).
 * An entry older than its lifetime counts as absent, so a stale flow cannot keep a
 * reply path open forever; the LRU reclaims it later.
 */
#ifndef PALISADE_CONNTRACK_H
#define PALISADE_CONNTRACK_H

#include "maps.h"
#include "parse.h"

#define NSEC 1000000000ULL
#define CT_LIFETIME_TCP     (6ULL * 3600 * NSEC)  /* TCP, SCTP established */
#define CT_LIFETIME_CLOSING (10ULL * NSEC)        /* after a FIN or RST */
#define CT_LIFETIME_UDP     (120ULL * NSEC)       /* UDP and other protocols */
#define CT_LIFETIME_ICMP    (30ULL * NSEC)
/* lastSeen is rewritten at most this often: a map write per packet costs more than
 * the precision is worth. */
#define CT_REFRESH          (1ULL * NSEC)

static __always_inline __u64 ct_lifetime(__u8 protocol, __u8 flags)
{
	if (flags & CT_F_CLOSING)
		return CT_LIFETIME_CLOSING;
	if (protocol == PROTO_TCP || protocol == PROTO_SCTP)
		return CT_LIFETIME_TCP;
	if (protocol == PROTO_ICMP)
		return CT_LIFETIME_ICMP;
	return CT_LIFETIME_UDP;
}

static __always_inline __u8 ct_flags_of(const struct packet *p)
{
	return (p->t.protocol == PROTO_TCP && (p->tcpFlags & (TCP_FIN | TCP_RST))) ?
		       CT_F_CLOSING : 0;
}

/* Looks up `k`; returns the entry when present and not expired, else NULL. */
static __always_inline struct ct_value *ct_lookup_live(struct ct_key *k, __u64 now)
{
	struct ct_value *v = bpf_map_lookup_elem(&pal_conntrack, k);

	if (!v || now - v->lastSeen > ct_lifetime(k->protocol, v->flags))
		return NULL;
	return v;
}

static __always_inline void ct_touch(struct ct_value *v, __u64 now, __u8 flags)
{
	if (now - v->lastSeen > CT_REFRESH || (flags & ~v->flags)) {
		v->lastSeen = now;
		v->flags |= flags;
	}
}

/*
 * Is `p`, seen by endpoint `ep` in direction `dir`, a reply of a flow that endpoint
 * allowed in the other direction (or an ICMP error about one)? Refreshes the entry.
 * ICMP echo requests are never replies (only echo replies are), so a peer cannot reuse
 * a pod's ping id to get its own requests through.
 */
static __always_inline int ct_is_reply(__u32 ep, __u8 dir, const struct packet *p, __u64 now)
{
	struct ct_key k = {};
	struct ct_value *v;

	k.endpointId = ep;
	k.direction = dir ^ 1;
	k.protocol = p->t.protocol;

	if (p->t.protocol == PROTO_ICMP && p->hasInner) {
		/* The quoted packet was sent by our side: either the opening packet of a
		 * flow we opened (tracked as is, other direction) or a reply we sent in a
		 * flow the peer opened (tracked reversed, this direction). */
		k.protocol = p->inner.protocol;
		k.saddr = p->inner.saddr;
		k.daddr = p->inner.daddr;
		k.sport = p->inner.sport;
		k.dport = p->inner.dport;
		if (ct_lookup_live(&k, now))
			return 1;
		k.direction = dir;
		k.saddr = p->inner.daddr;
		k.daddr = p->inner.saddr;
		k.sport = p->inner.dport;
		k.dport = p->inner.sport;
		return ct_lookup_live(&k, now) != NULL;
	}
	if (p->t.protocol == PROTO_ICMP && p->icmpType != ICMP_ECHOREPLY)
		return 0;

	k.saddr = p->t.daddr;
	k.daddr = p->t.saddr;
	k.sport = p->t.dport;
	k.dport = p->t.sport;
	v = ct_lookup_live(&k, now);
	if (!v)
		return 0;
	ct_touch(v, now, ct_flags_of(p));
	return 1;
}

/* The live entry of the flow `p` belongs to in direction `dir`, or NULL. */
static __always_inline struct ct_value *ct_forward(__u32 ep, __u8 dir, const struct packet *p,
						   __u64 now)
{
	struct ct_key k = {};

	k.endpointId = ep;
	k.direction = dir;
	k.protocol = p->t.protocol;
	k.saddr = p->t.saddr;
	k.daddr = p->t.daddr;
	k.sport = p->t.sport;
	k.dport = p->t.dport;
	return ct_lookup_live(&k, now);
}

static __always_inline void ct_forget(__u32 ep, __u8 dir, const struct packet *p)
{
	struct ct_key k = {};

	k.endpointId = ep;
	k.direction = dir;
	k.protocol = p->t.protocol;
	k.saddr = p->t.saddr;
	k.daddr = p->t.daddr;
	k.sport = p->t.sport;
	k.dport = p->t.dport;
	bpf_map_delete_elem(&pal_conntrack, &k);
}

/*
 * Records the verdict of an allowed forward packet: refreshes `v` (the live entry from
 * ct_forward, or NULL) or creates the entry. Returns 1 when the flow is new, which is
 * when a verdict event is worth sending.
 */
static __always_inline int ct_track(__u32 ep, __u8 dir, const struct packet *p,
				    struct ct_value *v, __u32 ruleId, __u32 generation, __u64 now)
{
	struct ct_key k = {};
	struct ct_value nv = {};

	if (v) {
		ct_touch(v, now, ct_flags_of(p));
		v->ruleId = ruleId;
		v->generation = generation;
		return 0;
	}
	k.endpointId = ep;
	k.direction = dir;
	k.protocol = p->t.protocol;
	k.saddr = p->t.saddr;
	k.daddr = p->t.daddr;
	k.sport = p->t.sport;
	k.dport = p->t.dport;
	nv.lastSeen = now;
	nv.ruleId = ruleId;
	nv.generation = generation;
	/* A SYN reopening an expired or closing tuple starts clean. */
	nv.flags = ct_flags_of(p);
	bpf_map_update_elem(&pal_conntrack, &k, &nv, BPF_ANY);
	return 1;
}

#endif
