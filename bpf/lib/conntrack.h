/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Connection tracking: just enough state for "replies of an allowed connection pass"
 * (NETPOL 21). The forward direction is never decided here; it is judged against the
 * current policy on every packet (NETPOL 25).
 *
 * Entries live in an LRU hash, one per flow and endpoint, found from both directions
 * with one lookup (see struct ct_key).
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

static __always_inline void ct_touch(struct ct_value *v, __u64 now, __u8 flags)
{
	if (now - v->lastSeen > CT_REFRESH || (flags & ~v->flags)) {
		v->lastSeen = now;
		v->flags |= flags;
	}
}

/* How a packet relates to a flow's entry. */
#define CT_NONE    0 /* no live entry, or one this packet cannot belong to */
#define CT_FORWARD 1 /* same direction, from the end that opened the flow */
#define CT_REPLY   2 /* other direction, from the other end */

/* The canonical key of `t` for endpoint `ep`; returns 1 when t's source is the lower end. */
static __always_inline __u8 ct_key_of(struct ct_key *k, __u32 ep, const struct tuple *t)
{
	__u8 srcLo = t->saddr < t->daddr || (t->saddr == t->daddr && t->sport <= t->dport);

	k->endpointId = ep;
	k->protocol = t->protocol;
	if (srcLo) {
		k->addrLo = t->saddr;
		k->addrHi = t->daddr;
		k->portLo = t->sport;
		k->portHi = t->dport;
	} else {
		k->addrLo = t->daddr;
		k->addrHi = t->saddr;
		k->portLo = t->dport;
		k->portHi = t->sport;
	}
	return srcLo;
}

/*
 * The live entry of the flow `t` belongs to for endpoint `ep`, or NULL; `kind` says how
 * a packet with tuple `t` travelling in direction `dir` relates to it.
 */
static __always_inline struct ct_value *ct_find(__u32 ep, __u8 dir, const struct tuple *t,
						__u64 now, int *kind)
{
	struct ct_key k = {};
	struct ct_value *v;
	__u8 srcLo = ct_key_of(&k, ep, t);

	*kind = CT_NONE;
	v = bpf_map_lookup_elem(&pal_conntrack, &k);
	if (!v || now - v->lastSeen > ct_lifetime(k.protocol, v->flags))
		return NULL;
	if (v->direction == dir && v->originLo == srcLo)
		*kind = CT_FORWARD;
	else if (v->direction != dir && v->originLo != srcLo)
		*kind = CT_REPLY;
	return v;
}

/*
 * Is `p`, seen by endpoint `ep` in direction `dir`, a reply of a flow that endpoint
 * allowed in the other direction (or an ICMP error about one of its flows)? Refreshes
 * the entry. ICMP echo requests are never replies (only echo replies are), so a peer
 * cannot reuse a pod's ping id to get its own requests through.
 * Also returns the entry and kind of p's own flow in `fwd`/`kind` for the caller.
 */
static __always_inline int ct_is_reply(__u32 ep, __u8 dir, const struct packet *p, __u64 now,
				       struct ct_value **fwd)
{
	struct ct_value *v;
	int kind;

	*fwd = NULL;
	if (p->t.protocol == PROTO_ICMP && p->hasInner) {
		/* The quoted packet was sent by our side, in the other direction: it is
		 * related when it was a packet (forward or reply) of one of our flows. */
		v = ct_find(ep, dir ^ 1, &p->inner, now, &kind);
		return kind != CT_NONE;
	}
	v = ct_find(ep, dir, &p->t, now, &kind);
	if (kind == CT_FORWARD) {
		*fwd = v;
		return 0;
	}
	if (kind != CT_REPLY || (p->t.protocol == PROTO_ICMP && p->icmpType != ICMP_ECHOREPLY))
		return 0;
	ct_touch(v, now, ct_flags_of(p));
	return 1;
}

static __always_inline void ct_forget(__u32 ep, const struct packet *p)
{
	struct ct_key k = {};

	ct_key_of(&k, ep, &p->t);
	bpf_map_delete_elem(&pal_conntrack, &k);
}

/*
 * Records the verdict of an allowed forward packet: refreshes `v` (its flow's live entry
 * from ct_is_reply, or NULL) or creates the entry. Returns 1 when the flow is new, which
 * is when a verdict event is worth sending.
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
	nv.originLo = ct_key_of(&k, ep, &p->t);
	nv.direction = dir;
	nv.lastSeen = now;
	nv.ruleId = ruleId;
	nv.generation = generation;
	/* A SYN reopening an expired or closing tuple starts clean. */
	nv.flags = ct_flags_of(p);
	bpf_map_update_elem(&pal_conntrack, &k, &nv, BPF_ANY);
	return 1;
}

#endif
