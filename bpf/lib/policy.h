/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Policy lookup: steps 5 and 6 of the per-packet verdict in docs/datapath.md.
 *
 * At most four LPM lookups in the policy map (peer identity, any peer, any pod when the
 * peer is a pod, CIDR identity) and one in the cidrs map, whatever the number of
 * entries: each lookup already covers exact ports, port ranges, every port of a
 * protocol and every protocol.
 */
#ifndef PALISADE_POLICY_H
#define PALISADE_POLICY_H

#include "maps.h"
#include "parse.h"

/* v4-mapped IPv6 (::ffff:a.b.c.d) in a 16-byte key field. */
static __always_inline void addr_v4mapped(__u8 *addr, __be32 v4)
{
	__builtin_memset(addr, 0, 10);
	addr[10] = 0xff;
	addr[11] = 0xff;
	__builtin_memcpy(&addr[12], &v4, 4);
}

/* Identity of whoever holds `addr`; a miss means the world. */
static __always_inline __u32 ipcache_identity(__be32 addr)
{
	struct ipcache_key k = { .prefixlen = IPCACHE_V4_PREFIX + 32 };
	struct ipcache_value *v;

	addr_v4mapped(k.addr, addr);
	v = bpf_map_lookup_elem(&pal_ipcache, &k);
	return v ? v->identity : IDENTITY_WORLD;
}

/*
 * The entry allowing (`ep`, `dir`, `peer`, protocol, port) or NULL. For protocols without
 * ports (ICMP and every other one) the lookup uses protocol 0, so only "every protocol"
 * entries can match (NETPOL 20).
 */
static __always_inline struct policy_value *policy_lookup(__u32 ep, __u8 dir, __u32 peer,
							  const struct packet *p)
{
	struct policy_key k = {};

	k.prefixlen = POLICY_PREFIX_FULL;
	k.endpointId = ep;
	k.peer = peer;
	k.direction = dir;
	if (p->hasPorts) {
		k.protocol = p->t.protocol;
		k.port = p->t.dport;
	}
	return bpf_map_lookup_elem(&pal_policy, &k);
}

/* CIDR identity of `addr` for (`ep`, `dir`): longest prefix wins; 0 when none. */
static __always_inline __u32 cidr_identity(__u32 ep, __u8 dir, __be32 addr)
{
	struct cidr_key k = {};
	struct cidr_value *v;

	k.prefixlen = CIDR_PREFIX_FIXED + IPCACHE_V4_PREFIX + 32;
	k.endpointId = ep;
	k.direction = dir;
	addr_v4mapped(k.addr, addr);
	v = bpf_map_lookup_elem(&pal_cidrs, &k);
	return v ? v->identity : 0;
}

/*
 * Decides a forward packet of an enforced direction. `peer` is the remote side's
 * ipcache identity, `remote` its address. Returns the allowing entry or NULL (deny).
 *
 * Lookups in order: the peer's identity, any peer, any pod (for a pod), the CIDR
 * identity. The first answer decides, unless it redirects to the L7 proxy: then the
 * later lookups may still find an entry without redirect, which wins (union: an L3/L4
 * allow without `http` on the same peer and port allows every request, docs/l7.md).
 * Allowed or not never depends on this; only the redirect and the reported rule do.
 * The extra lookups happen only for redirected flows, and only when a flow's verdict is
 * made (the conntrack verdict cache answers the rest).
 */
static __always_inline struct policy_value *policy_decide(__u32 ep, __u8 dir, __u32 peer,
							  __be32 remote,
							  const struct packet *p)
{
	struct policy_value *first, *v;
	__u32 cidr;

	first = policy_lookup(ep, dir, peer, p);
	if (first && !first->proxyPort)
		return first;
	v = policy_lookup(ep, dir, IDENTITY_ANY, p);
	if (v && !v->proxyPort)
		return v;
	if (!first)
		first = v;
	/* Pods (label identities) also match "any pod" entries (namespaceSelector {}). */
	if (peer >= IDENTITY_FIRST_LABEL && peer < IDENTITY_FIRST_CIDR) {
		v = policy_lookup(ep, dir, IDENTITY_CLUSTER_POD, p);
		if (v && !v->proxyPort)
			return v;
		if (!first)
			first = v;
	}
	cidr = cidr_identity(ep, dir, remote);
	if (!cidr)
		return first;
	v = policy_lookup(ep, dir, cidr, p);
	if (v && !v->proxyPort)
		return v;
	return first ? first : v;
}

#endif
