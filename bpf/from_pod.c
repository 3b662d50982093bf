/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tc ingress of a pod's host-side veth: traffic leaving the pod, judged by the pod's
 * egress policy. See docs/datapath.md.
 */
#include "lib/verdict.h"

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	return palisade_verdict(skb, DIR_EGRESS);
}

char LICENSE[] SEC("license") = "GPL";
