/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tc ingress of the L7 device (l7_palisade): frames that to_pod redirected here belong to
 * connections the L7 proxy terminates (new ones, or replies to its upstream ones).
 * Assigns each to its socket (or the proxy's listener) and marks it for local delivery.
 * See bpf/lib/l7.h and docs/l7.md.
 */
#include "lib/parse.h"
#include "lib/l7.h"

SEC("tc")
int l7_device(struct __sk_buff *skb)
{
	struct l7_config *c = l7_config();
	struct packet p = {};

	if (!c || parse_packet(skb, &p) != PARSE_IPV4 || p.t.protocol != PROTO_TCP)
		return TC_ACT_SHOT;
	return l7_assign(skb, &p.t, c->proxyPort, 1) ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
