/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tc egress of a pod's host-side veth: traffic entering the pod, judged by the pod's
 * ingress policy. See docs/datapath.md.
 */
#include "lib/verdict.h"
#include "lib/service.h"

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	/* Replies of translated flows get their ClusterIP back after the verdict. */
	return svc_reverse(skb, palisade_verdict(skb, DIR_INGRESS));
}

char LICENSE[] SEC("license") = "GPL";
