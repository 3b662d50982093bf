/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tc ingress of a pod's host-side veth: traffic leaving the pod, judged by the pod's
 * egress policy. See docs/datapath.md.
 */
#include "lib/verdict.h"
#include "lib/service.h"

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	struct svc_state svc;
	int rc;

	/* ClusterIP -> backend first: egress policy judges the real destination. */
	rc = svc_translate(skb, &svc);
	if (rc != SVC_CONTINUE)
		return rc;
	rc = palisade_verdict(skb, DIR_EGRESS);
	return svc_egress_done(skb, &svc, rc);
}

char LICENSE[] SEC("license") = "GPL";
