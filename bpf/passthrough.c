/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Baseline for test/bench/datapath.ts: a tc program that lets everything through, so
 * the benchmark can subtract the cost of running any program at all. Never attached by
 * the agent.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int passthrough(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
