/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The per-packet verdict of docs/datapath.md (step numbers below are the doc's), shared
 * by both attach points. The only per-program input is the direction; the endpoint is
 * found by the interface the program runs on, so one loaded program serves every pod.
 */
#ifndef PALISADE_VERDICT_H
#define PALISADE_VERDICT_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "drop.h"
#include "parse.h"
#include "conntrack.h"
#include "policy.h"
#include "events.h"
#include "l7.h"

static __always_inline int drop(__u32 ep, __u8 dir, const struct packet *p, __u32 peer,
				int reason)
{
	count(dir, reason);
	emit(ep, dir, p, peer, 0, VERDICT_DROPPED, reason);
	return TC_ACT_SHOT;
}

/*
 * Fills the key that ties later fragments of one datagram to its first fragment. Zeroes
 * it first: padding is part of a map key.
 */
static __always_inline void frag_key_fill(struct frag_key *k, __u32 ep, __u8 dir,
					  const struct packet *p)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->endpointId = ep;
	k->saddr = p->t.saddr;
	k->daddr = p->t.daddr;
	k->id = p->ipId;
	k->direction = dir;
	k->protocol = p->t.protocol;
}

/* Lets a later fragment of this datagram follow the verdict of its first fragment. */
static __always_inline void frag_remember(__u32 ep, __u8 dir, const struct packet *p,
					  __u32 ruleId)
{
	struct frag_key k;
	struct frag_value v = {};

	if (p->frag != FRAG_FIRST)
		return;
	frag_key_fill(&k, ep, dir, p);
	v.sport = p->t.sport;
	v.dport = p->t.dport;
	v.ruleId = ruleId;
	bpf_map_update_elem(&pal_fragments, &k, &v, BPF_ANY);
}

static __always_inline struct frag_value *frag_find(__u32 ep, __u8 dir, const struct packet *p)
{
	struct frag_key k;

	frag_key_fill(&k, ep, dir, p);
	return bpf_map_lookup_elem(&pal_fragments, &k);
}

/* Current policy generation (see struct ct_value). Read before any policy lookup. */
static __always_inline __u32 policy_generation(void)
{
	__u32 zero = 0;
	struct config_value *c = bpf_map_lookup_elem(&pal_config, &zero);

	return c ? c->policyGeneration : 0;
}

/* An allowed forward packet: track the flow, report it when new, count it. */
static __always_inline int allow_forward(__u32 ep, __u8 dir, const struct packet *p,
					 struct ct_value *ct, __u32 generation,
					 __u32 peer, __u32 ruleId, __u64 now)
{
	if (ct_track(ep, dir, p, ct, ruleId, generation, now))
		emit(ep, dir, p, peer, ruleId, VERDICT_ALLOWED, 0);
	frag_remember(ep, dir, p, ruleId);
	count(dir, 0);
	return TC_ACT_OK;
}

/*
 * An allowed forward packet of a flow the L7 proxy terminates (bpf/lib/l7.h): tracked
 * like any allowed flow (the proxy's answers to the client are its replies), marked
 * CT_F_L7, reported as redirected. No proxy to take it: dropped (fail closed).
 */
static __always_inline int redirect_forward(struct __sk_buff *skb, __u32 ep, __u8 dir,
					    const struct packet *p, struct ct_value *ct,
					    __u32 generation, __u32 peer, __u32 ruleId, __u64 now)
{
	int kind, rc = l7_redirect(skb, dir, p, l7_config());

	if (rc == TC_ACT_SHOT)
		return drop(ep, dir, p, peer, DROP_POLICY_DENIED);
	if (ct_track(ep, dir, p, ct, ruleId, generation, now)) {
		emit(ep, dir, p, peer, ruleId, VERDICT_REDIRECTED, 0);
		ct = ct_find(ep, dir, &p->t, now, &kind);
	}
	if (ct)
		ct->flags |= CT_F_L7;
	count(dir, 0);
	return rc;
}

static __always_inline int palisade_verdict(struct __sk_buff *skb, __u8 dir)
{
	struct endpoint_key ek = { .ifindex = skb->ifindex };
	struct endpoint_value *ep;
	struct policy_value *pv;
	struct frag_value *fv;
	struct ct_value *ct;
	__u32 generation;
	struct packet p = {};
	__u32 epId, peer;
	__be32 remote;
	__u8 enforced;
	__u64 now;
	int rc;

	rc = parse_packet(skb, &p);
	/* ARP resolves the pod's gateway and the host's view of the pod: never policy. */
	if (rc == PARSE_ARP)
		return TC_ACT_OK;

	/* Conntrack lifetimes are seconds: the coarse clock (same timebase, tick
	 * resolution, Linux >= 5.11) is enough and never reads the clocksource, which is
	 * slow on some hosts. Events take the precise clock. */
	now = bpf_ktime_get_coarse_ns();
	generation = policy_generation();
	ep = bpf_map_lookup_elem(&pal_endpoints, &ek);
	if (!ep)
		return drop(0, dir, &p, 0, DROP_NO_ENDPOINT);
	epId = ep->endpointId;
	enforced = dir == DIR_INGRESS ? ep->ingressEnforced : ep->egressEnforced;

	if (rc < 0)
		return drop(epId, dir, &p, 0, rc);
	if (rc == PARSE_OTHER_L3) {
		/* Palisade enforces IPv4 only: anything else may pass only where no policy
		 * applies (fail closed, NETPOL 27). */
		if (enforced)
			return drop(epId, dir, &p, 0, DROP_UNSUPPORTED_L3);
		count(dir, 0);
		return TC_ACT_OK;
	}

	remote = dir == DIR_INGRESS ? p.t.saddr : p.t.daddr;
	/* L7: remember connections the node (its proxy) opens to this pod. */
	l7_note_upstream(skb, dir, &p);

	if (p.frag == FRAG_LATER) {
		/* Step 2. No L4 header: follow the first fragment's verdict, recorded
		 * when it passed. Never seen (reordered, or dropped) -> drop. */
		fv = frag_find(epId, dir, &p);
		if (!fv)
			return drop(epId, dir, &p, 0, DROP_FRAGMENT);
		count(dir, 0);
		return TC_ACT_OK;
	}

	/* Step 3: replies of a tracked flow, ICMP errors about one (NETPOL 21). */
	if (ct_is_reply(epId, dir, &p, now, &ct)) {
		frag_remember(epId, dir, &p, 0);
		count(dir, 0);
		/* A local server answering the L7 proxy's upstream connection. */
		if (dir == DIR_EGRESS)
			l7_upstream_reply(skb, dir, &p);
		return TC_ACT_OK;
	}

	/* Step 4: a flow allowed under the maps in force now: same verdict, no lookups. */
	if (ct && ct->generation == generation) {
		ct_touch(ct, now, ct_flags_of(&p));
		frag_remember(epId, dir, &p, ct->ruleId);
		count(dir, 0);
		if (ct->flags & CT_F_L7)
			return l7_redirect(skb, dir, &p, l7_config());
		return TC_ACT_OK;
	}

	/* A reply to the L7 proxy's upstream connection, about to enter the client pod. */
	if (dir == DIR_INGRESS) {
		rc = l7_upstream_reply(skb, dir, &p);
		if (rc >= 0)
			return rc;
	}

	peer = ipcache_identity(remote);

	/* Step 5: the node to its pods (NETPOL 22). */
	if (dir == DIR_INGRESS && peer == IDENTITY_HOST)
		return allow_forward(epId, dir, &p, ct, generation, peer, 0, now);
	/* Step 6: direction not isolated. */
	if (!enforced && ct && (ct->flags & CT_F_L7))
		return redirect_forward(skb, epId, dir, &p, ct, generation, peer, 0, now);
	if (!enforced)
		return allow_forward(epId, dir, &p, ct, generation, peer, 0, now);
	/* Steps 7-9: peer, any peer, CIDR identity; else default deny. */
	pv = policy_decide(epId, dir, peer, remote, &p);
	if (!pv) {
		/* A flow the current policy no longer allows loses its reply path too. */
		if (ct)
			ct_forget(epId, &p);
		return drop(epId, dir, &p, peer, DROP_POLICY_DENIED);
	}
	/* L7: redirect, except the proxy's own upstream connection (already judged). */
	if ((pv->proxyPort || (ct && (ct->flags & CT_F_L7))) && !l7_from_proxy(skb, dir))
		return redirect_forward(skb, epId, dir, &p, ct, generation, peer, pv->ruleId, now);
	return allow_forward(epId, dir, &p, ct, generation, peer, pv->ruleId, now);
}

#endif
