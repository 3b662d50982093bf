/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Flow events and counters.
 *
 * An event is sent for every dropped packet and for the first allowed packet of a flow
 * (a new conntrack entry), with the rule id that decided (0 for default deny, replies,
 * node traffic and unenforced directions). Counters count every packet, per CPU.
 */
#ifndef PALISADE_EVENTS_H
#define PALISADE_EVENTS_H

#include "maps.h"
#include "parse.h"

/* Adds one to the counter of (`dir`, `reason`); reason 0 = allowed. */
static __always_inline void count(__u8 dir, int reason)
{
	__u32 slot = reason < 0 ? (__u32)(-reason) : 0;
	__u32 idx;
	__u64 *c;

	if (slot >= COUNTER_SLOTS)
		return;
	idx = (dir ? COUNTER_SLOTS : 0) + slot;
	c = bpf_map_lookup_elem(&pal_counters, &idx);
	if (c)
		*c += 1; /* this CPU's slot: no other writer */
}

static __always_inline void emit(__u32 ep, __u8 dir, const struct packet *p, __u32 peer,
				 __u32 ruleId, __u8 verdict, int reason)
{
	struct flow_event e = {};

	/* The precise clock here only: events are rare, packets are not. */
	e.time = bpf_ktime_get_ns();
	e.endpointId = ep;
	e.peerIdentity = peer;
	e.ruleId = ruleId;
	e.saddr = p->t.saddr;
	e.daddr = p->t.daddr;
	e.sport = p->t.sport;
	e.dport = p->t.dport;
	e.protocol = p->t.protocol;
	e.direction = dir;
	e.verdict = verdict;
	e.reason = (__s8)reason;
	/* BPF_EXIST: when the queue is full the oldest record makes room. */
	bpf_map_push_elem(&pal_events, &e, BPF_EXIST);
}

#endif
