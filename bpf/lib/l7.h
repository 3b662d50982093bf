/* SPDX-License-Identifier: GPL-2.0 */
/*
 * L7 redirect: hands TCP connections that a policy entry with a proxy port allows to the
 * agent's transparent HTTP proxy, with their addresses unchanged. docs/l7.md ("The
 * redirect") has the whole path; in short:
 *
 * - egress (from_pod, tc ingress of the client's host veth): bpf_sk_assign the packet to
 *   the proxy's socket for its tuple, else to the proxy's listener (127.0.0.1:proxyPort),
 *   and mark it; an `ip rule fwmark L7_MARK` sends marked packets to a table whose only
 *   route is `local 0.0.0.0/0 dev lo`, so the node delivers it instead of forwarding.
 * - ingress (to_pod, tc egress of the server's host veth): bpf_sk_assign works at tc
 *   ingress only, so the packet is redirected to the ingress of the L7 device
 *   (l7_palisade, set up by pkg/datapath/linux/l7redirect.ts) whose program (bpf/l7_redirect.c)
 *   does the same assignment. This one place catches clients on this node and on others.
 * - the proxy's own connections to servers (it connects from the client's address):
 *   recognised at to_pod by a local socket on the skb (skb->sk) with a pod source:
 *   judged by L3/L4 policy, never redirected again. Their replies are given back to the
 *   proxy socket: at from_pod when the server is local (assigned right there), at to_pod
 *   of the client pod when they arrive from elsewhere (through the L7 device).
 *
 * A flow redirected once stays with the proxy (CT_F_L7 on its conntrack entry) while
 * L3/L4 policy allows it, even when the update removed its `http` rules: the proxy holds
 * the connection's TCP state, the server has never seen it. The proxy applies the
 * current rules to each request.
 */
#ifndef PALISADE_L7_H
#define PALISADE_L7_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"
#include "parse.h"

/* skb->mark bit of packets assigned to a proxy socket; routed by the L7 ip rule. */
#define L7_MARK 0x00200000
/* ct_value.flags bit (next to CT_F_CLOSING): the flow is terminated at the L7 proxy. */
#define CT_F_L7 2
/* The proxy listens on loopback: nothing outside the node can reach it directly. */
#define L7_PROXY_ADDR 0x7f000001

/* ---- config: one entry, written by the agent (pkg/datapath/linux/l7redirect.ts) ---- */
struct l7_config {
	__u16 proxyPort; /* 0 = no proxy on this node: redirected traffic is dropped */
	__u8 mac[6];     /* the L7 device's address (a redirected frame must be for it) */
	__u32 ifindex;   /* the L7 device */
};

/*
 * ---- upstream: connections the proxy opened to a pod of this node ----------------------
 * Keyed as their replies read (server -> client), so that from_pod recognises a reply
 * for the proxy with one hash lookup instead of a socket lookup on every reply packet
 * (measured: see docs/l7.md). Entries are written on the SYN only; a stale one costs a
 * socket lookup that finds nothing.
 */
struct l7_upstream_key {
	__be32 server;
	__be32 client;
	__be16 serverPort;
	__be16 clientPort;
};

#define PAL_L7_UPSTREAM_MAX 65536
#define L7_TCP_SYN 0x02

_Static_assert(sizeof(struct l7_config) == 12, "l7_config size");
_Static_assert(sizeof(struct l7_upstream_key) == 12, "l7_upstream_key size");
_Static_assert(__builtin_offsetof(struct l7_config, ifindex) == 8, "l7_config.ifindex");

#ifdef __BPF__

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct l7_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_l7_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct l7_upstream_key);
	__type(value, __u8);
	__uint(max_entries, PAL_L7_UPSTREAM_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_l7_upstream SEC(".maps");

/* The node's L7 configuration, or NULL when no proxy runs here. */
static __always_inline struct l7_config *l7_config(void)
{
	__u32 zero = 0;
	struct l7_config *c = bpf_map_lookup_elem(&pal_l7_config, &zero);

	return c && c->proxyPort ? c : NULL;
}

/* The socket-lookup key of tuple `t` (IPv4, network byte order as in `t`). */
static __always_inline void l7_sock_tuple(struct bpf_sock_tuple *st, const struct tuple *t)
{
	st->ipv4.saddr = t->saddr;
	st->ipv4.daddr = t->daddr;
	st->ipv4.sport = t->sport;
	st->ipv4.dport = t->dport;
}

/*
 * Assigns `skb` (tuple `t`) to the node's socket of that tuple (established, in
 * handshake or TIME_WAIT), else, when `listener`, to the proxy's listener, and marks it
 * for local delivery. Call at tc ingress only. Returns 0, or -1 when there is no socket
 * (the proxy is not running) or the kernel refused.
 */
static __always_inline int l7_assign(struct __sk_buff *skb, const struct tuple *t,
				     __u16 proxyPort, int listener)
{
	struct bpf_sock_tuple st = {};
	struct bpf_sock *sk;
	long r;

	l7_sock_tuple(&st, t);
	sk = bpf_skc_lookup_tcp(skb, &st, sizeof(st.ipv4), BPF_F_CURRENT_NETNS, 0);
	/* A node listener on the tuple's port is not the proxy: only the proxy's own
	 * listener, looked up by its address below, takes new connections. */
	if (sk && sk->state == BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		sk = NULL;
	}
	if (!sk) {
		if (!listener)
			return -1;
		__builtin_memset(&st, 0, sizeof(st));
		st.ipv4.daddr = bpf_htonl(L7_PROXY_ADDR);
		st.ipv4.dport = bpf_htons(proxyPort);
		sk = bpf_skc_lookup_tcp(skb, &st, sizeof(st.ipv4), BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return -1;
		if (sk->state != BPF_TCP_LISTEN) {
			bpf_sk_release(sk);
			return -1;
		}
	}
	r = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (r)
		return -1;
	skb->mark |= L7_MARK;
	return 0;
}

/* Sends a frame leaving through tc egress to the L7 device's ingress. */
static __always_inline int l7_to_device(struct __sk_buff *skb, const struct l7_config *c)
{
	/* The device's receive path drops frames addressed to another MAC (OTHERHOST). */
	if (bpf_skb_store_bytes(skb, 0, c->mac, 6, 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(c->ifindex, BPF_F_INGRESS);
}

/* Is an established socket of the node the destination of `t`? (the proxy's upstream) */
static __always_inline int l7_upstream_socket(struct __sk_buff *skb, const struct tuple *t)
{
	struct bpf_sock_tuple st = {};
	struct bpf_sock *sk;
	int found;

	l7_sock_tuple(&st, t);
	sk = bpf_sk_lookup_tcp(skb, &st, sizeof(st.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	found = sk->state != BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return found;
}

/*
 * Hands a packet of a redirected flow to the proxy: assignment at from_pod, the L7
 * device at to_pod. TC_ACT_SHOT when no proxy takes it (fail closed: a client's SYN is
 * retried until the proxy is back).
 */
static __always_inline int l7_redirect(struct __sk_buff *skb, __u8 dir, const struct packet *p,
				       const struct l7_config *c)
{
	if (!c || p->t.protocol != PROTO_TCP)
		return TC_ACT_SHOT;
	if (dir == DIR_EGRESS)
		return l7_assign(skb, &p->t, c->proxyPort, 1) ? TC_ACT_SHOT : TC_ACT_OK;
	return l7_to_device(skb, c);
}

/*
 * A locally sent packet entering a pod from a pod address: the proxy's upstream. At tc
 * egress, forwarded packets carry no socket (ip_rcv orphans them); the node's own
 * traffic (IDENTITY_HOST) is decided before this is asked.
 */
static __always_inline int l7_from_proxy(struct __sk_buff *skb, __u8 dir)
{
	return dir == DIR_INGRESS && skb->sk;
}

/*
 * Notes the SYN of a connection the node opens to a pod (the proxy's upstream, or the
 * node's own), so that its replies can be given back to the node's socket at from_pod.
 */
static __always_inline void l7_note_upstream(struct __sk_buff *skb, __u8 dir,
					     const struct packet *p)
{
	struct l7_upstream_key k = {};
	__u8 one = 1;

	if (dir != DIR_INGRESS || p->t.protocol != PROTO_TCP || !(p->tcpFlags & L7_TCP_SYN) ||
	    !skb->sk || !l7_config())
		return;
	k.server = p->t.daddr;
	k.client = p->t.saddr;
	k.serverPort = p->t.dport;
	k.clientPort = p->t.sport;
	bpf_map_update_elem(&pal_l7_upstream, &k, &one, BPF_ANY);
}

/*
 * A packet that belongs to no flow of its endpoint: is it a reply to a proxy upstream
 * connection? Then it goes to the proxy. Returns the action, or -1 to continue.
 * At from_pod it is the server's reply (assigned at once); at to_pod one that arrived
 * from elsewhere, about to enter the client pod.
 */
static __always_inline int l7_upstream_reply(struct __sk_buff *skb, __u8 dir,
					     const struct packet *p)
{
	struct l7_config *c;

	if (p->t.protocol != PROTO_TCP)
		return -1;
	c = l7_config();
	if (!c)
		return -1;
	/* At tc ingress of a pod's veth skb->sk may still be the pod's own socket (veth
	 * does not orphan; ip_rcv will): only the tuple says whether the proxy waits. */
	if (dir == DIR_EGRESS) {
		struct l7_upstream_key k = {
			.server = p->t.saddr, .client = p->t.daddr,
			.serverPort = p->t.sport, .clientPort = p->t.dport,
		};

		if (!bpf_map_lookup_elem(&pal_l7_upstream, &k))
			return -1;
		return l7_assign(skb, &p->t, 0, 0) ? -1 : TC_ACT_OK;
	}
	/* At tc egress, forwarded packets have none (ip_rcv orphaned them): a socket means
	 * a packet the node sent itself. */
	if (skb->sk || !l7_upstream_socket(skb, &p->t))
		return -1;
	return l7_to_device(skb, c);
}

#endif /* __BPF__ */

#endif
