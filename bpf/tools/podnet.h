/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pod interface setup over rtnetlink, for palisade-bpf's veth-add, pod-config and
 * link-del commands (the layout of pkg/endpoint/podnet.ts). Included by palisade-bpf.c.
 *
 * Why here and not `ip`: run by the agent's persistent helper, a pod's interface costs
 * no process start (two `ip -batch` processes and an nsenter before), and the pod side
 * is configured from a thread that entered the pod's network namespace (setns on a
 * network namespace is per thread), so nothing else in the helper changes namespace.
 */
#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>

#define EXIT_EXISTS 4

struct nl_msg {
	struct nlmsghdr h;
	char buf[2048];
};

static struct rtattr *nl_attr(struct nl_msg *m, int type, const void *data, int len)
{
	struct rtattr *a = (struct rtattr *)((char *)m + NLMSG_ALIGN(m->h.nlmsg_len));
	int alen = RTA_LENGTH(len);

	if (NLMSG_ALIGN(m->h.nlmsg_len) + RTA_ALIGN(alen) > sizeof(*m))
		return NULL;
	a->rta_type = type;
	a->rta_len = alen;
	if (len)
		memcpy(RTA_DATA(a), data, len);
	m->h.nlmsg_len = NLMSG_ALIGN(m->h.nlmsg_len) + RTA_ALIGN(alen);
	return a;
}

static void nl_end(struct nl_msg *m, struct rtattr *nest)
{
	nest->rta_len = (char *)m + m->h.nlmsg_len - (char *)nest;
}

static void nl_init(struct nl_msg *m, int type, int flags, const void *hdr, int hdrlen)
{
	memset(m, 0, sizeof(*m));
	m->h.nlmsg_len = NLMSG_LENGTH(hdrlen);
	m->h.nlmsg_type = type;
	m->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	memcpy(NLMSG_DATA(&m->h), hdr, hdrlen);
}

/* A rtnetlink socket in the calling thread's network namespace, or -errno. */
static int nl_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

/* Sends one request and waits for its ack: 0 or -errno. */
static int nl_talk(int fd, struct nl_msg *m)
{
	static __thread __u32 seq;
	char buf[8192];

	if (NLMSG_ALIGN(m->h.nlmsg_len) > sizeof(*m))
		return -EMSGSIZE;
	m->h.nlmsg_seq = ++seq;
	if (send(fd, m, m->h.nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		int n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *r;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (r = (struct nlmsghdr *)buf; NLMSG_OK(r, n); r = NLMSG_NEXT(r, n)) {
			if (r->nlmsg_seq != m->h.nlmsg_seq)
				continue;
			if (r->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(r))->error;
		}
	}
}

static int parse_mac(const char *s, unsigned char mac[6])
{
	unsigned int b[6];
	int i;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -EINVAL;
	for (i = 0; i < 6; i++)
		mac[i] = b[i];
	return 0;
}

static int link_set_up(int fd, int ifindex)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex,
				 .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
	struct nl_msg m;

	nl_init(&m, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	return nl_talk(fd, &m);
}

/* route replace DST/32 [via GW] dev IFINDEX, scope link when there is no gateway. */
static int route_replace(int fd, int ifindex, in_addr_t dst, int dst_len, in_addr_t gw)
{
	struct rtmsg rt = { .rtm_family = AF_INET, .rtm_dst_len = dst_len, .rtm_table = RT_TABLE_MAIN,
			    .rtm_protocol = RTPROT_BOOT, .rtm_type = RTN_UNICAST,
			    .rtm_scope = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK };
	struct nl_msg m;

	nl_init(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rt, sizeof(rt));
	if (dst_len)
		nl_attr(&m, RTA_DST, &dst, 4);
	if (gw)
		nl_attr(&m, RTA_GATEWAY, &gw, 4);
	nl_attr(&m, RTA_OIF, &ifindex, 4);
	return nl_talk(fd, &m);
}

/* neigh replace ADDR lladdr MAC dev IFINDEX nud permanent */
static int neigh_replace(int fd, int ifindex, in_addr_t addr, const unsigned char mac[6])
{
	struct ndmsg nd = { .ndm_family = AF_INET, .ndm_ifindex = ifindex, .ndm_state = NUD_PERMANENT };
	struct nl_msg m;

	nl_init(&m, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, &nd, sizeof(nd));
	nl_attr(&m, NDA_DST, &addr, 4);
	nl_attr(&m, NDA_LLADDR, mac, 6);
	return nl_talk(fd, &m);
}

static int link_del_index(int fd, int ifindex)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex };
	struct nl_msg m;

	nl_init(&m, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	return nl_talk(fd, &m);
}

/*
 * Strict reverse-path filtering on the host veth: a pod may only send from the address
 * routed to it. The kernel uses max(all, dev), so this never loosens a stricter node
 * setting. Best effort (the /32 route back already makes strict mode hold). /proc/sys/net
 * follows the calling thread's network namespace.
 */
static void set_rp_filter(const char *ifname)
{
	char path[96];
	int fd;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/rp_filter", ifname);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, "1", 1) < 0) {
		/* best effort, see above */
	}
	close(fd);
}

/*
 * net.ipv6.conf.IFNAME.disable_ipv6=1 in the calling thread's network namespace. Called
 * on the pod interface before it goes up, so the kernel never gives it a link-local
 * address and the pod sends no router solicitation, MLD report or DAD probe: Palisade
 * is IPv4-only and the datapath drops every non-IPv4 frame of an enforced endpoint
 * (docs/datapath.md), which would only fill the flow log. lo keeps ::1.
 * Returns 0, also when the kernel has no IPv6 (no such file: nothing to disable), else
 * -errno.
 */
static int disable_ipv6(const char *ifname)
{
	char path[96];
	int fd, err = 0;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (write(fd, "1", 1) != 1)
		err = -errno;
	close(fd);
	return err;
}

/*
 * veth-add HOST HOSTMAC POD PODMAC MTU NETNS IPV4: the pair with the pod end created
 * directly in NETNS (a path), the host end up with rp_filter=1, route IPV4/32 and a
 * permanent neighbour IPV4 -> PODMAC on it. Prints the host ifindex. Exit status
 * EXIT_EXISTS when HOST exists; on any other failure nothing is left.
 */
static int cmd_veth_add(char **a)
{
	const char *host = a[0], *pod = a[2], *netns = a[5];
	unsigned char hmac[6], pmac[6];
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
	struct ifinfomsg peer = { .ifi_family = AF_UNSPEC };
	struct rtattr *linkinfo, *data, *pe;
	int mtu = atoi(a[4]), nsfd, fd, err, ifindex;
	struct in_addr ip;
	struct nl_msg m;

	if (strlen(host) >= IFNAMSIZ || strlen(pod) >= IFNAMSIZ || parse_mac(a[1], hmac) ||
	    parse_mac(a[3], pmac) || mtu < 68 || !inet_aton(a[6], &ip))
		return fail("veth-add: parsing arguments", EINVAL);
	nsfd = open(netns, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return fail("veth-add: opening network namespace", errno);
	fd = nl_open();
	if (fd < 0) {
		close(nsfd);
		return fail("veth-add: netlink", fd);
	}
	nl_init(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	nl_attr(&m, IFLA_IFNAME, host, strlen(host) + 1);
	nl_attr(&m, IFLA_ADDRESS, hmac, 6);
	nl_attr(&m, IFLA_MTU, &mtu, 4);
	linkinfo = nl_attr(&m, IFLA_LINKINFO, NULL, 0);
	nl_attr(&m, IFLA_INFO_KIND, "veth", 5);
	data = nl_attr(&m, IFLA_INFO_DATA, NULL, 0);
	/* The peer's attributes follow its own ifinfomsg inside VETH_INFO_PEER. */
	pe = nl_attr(&m, VETH_INFO_PEER, &peer, sizeof(peer));
	nl_attr(&m, IFLA_IFNAME, pod, strlen(pod) + 1);
	nl_attr(&m, IFLA_ADDRESS, pmac, 6);
	nl_attr(&m, IFLA_MTU, &mtu, 4);
	nl_attr(&m, IFLA_NET_NS_FD, &nsfd, 4);
	nl_end(&m, pe);
	nl_end(&m, data);
	nl_end(&m, linkinfo);
	err = nl_talk(fd, &m);
	close(nsfd);
	if (err) {
		close(fd);
		if (err == -EEXIST) {
			errf("palisade-bpf: creating veth %s: %s", host, strerror(EEXIST));
			return EXIT_EXISTS;
		}
		errf("palisade-bpf: creating veth %s: %s", host, strerror(-err));
		return 1;
	}
	ifindex = if_nametoindex(host);
	if (!ifindex) {
		err = -errno;
		errf("palisade-bpf: reading ifindex of %s: %s", host, strerror(-err));
		goto undo_name;
	}
	err = route_replace(fd, ifindex, ip.s_addr, 32, 0);
	if (err) {
		errf("palisade-bpf: route %s/32 dev %s: %s", a[6], host, strerror(-err));
		goto undo;
	}
	err = neigh_replace(fd, ifindex, ip.s_addr, pmac);
	if (err) {
		errf("palisade-bpf: neighbour %s dev %s: %s", a[6], host, strerror(-err));
		goto undo;
	}
	close(fd);
	set_rp_filter(host);
	outf("%d\n", ifindex);
	return 0;
undo:
	link_del_index(fd, ifindex);
	close(fd);
	return 1;
undo_name: {
	struct ifinfomsg d = { .ifi_family = AF_UNSPEC };

	nl_init(&m, RTM_DELLINK, 0, &d, sizeof(d));
	nl_attr(&m, IFLA_IFNAME, host, strlen(host) + 1);
	nl_talk(fd, &m);
	close(fd);
	return 1;
	}
}

/*
 * pod-config NETNS POD IPV4 GATEWAY HOSTMAC, inside NETNS: lo up, IPv6 disabled on POD
 * (disable_ipv6 above), POD up, IPV4/32 on POD, route GATEWAY scope link, default via
 * GATEWAY, permanent neighbour GATEWAY -> HOSTMAC (the pod never ARPs for its gateway). Changes the calling thread's network
 * namespace: the server runs it on a thread of its own.
 */
static int cmd_pod_config(char **a)
{
	const char *netns = a[0], *pod = a[1];
	struct in_addr ip, gw;
	unsigned char hmac[6];
	int nsfd, fd, err, ifindex;
	const char *step;

	if (strlen(pod) >= IFNAMSIZ || !inet_aton(a[2], &ip) || !inet_aton(a[3], &gw) || parse_mac(a[4], hmac))
		return fail("pod-config: parsing arguments", EINVAL);
	nsfd = open(netns, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return fail("pod-config: opening network namespace", errno);
	err = setns(nsfd, CLONE_NEWNET);
	close(nsfd);
	if (err)
		return fail("pod-config: entering network namespace", errno);
	fd = nl_open();
	if (fd < 0)
		return fail("pod-config: netlink", fd);
	step = "setting lo up";
	err = link_set_up(fd, if_nametoindex("lo"));
	ifindex = if_nametoindex(pod);
	if (!err && !ifindex) {
		step = "finding the pod interface";
		err = -ENODEV;
	}
	if (!err) {
		/* Before the interface goes up: no link-local address is ever assigned. */
		step = "disabling IPv6 on the pod interface";
		err = disable_ipv6(pod);
	}
	if (!err) {
		step = "setting the pod interface up";
		err = link_set_up(fd, ifindex);
	}
	if (!err) {
		struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_prefixlen = 32,
					 .ifa_scope = RT_SCOPE_UNIVERSE, .ifa_index = ifindex };
		struct nl_msg m;

		step = "adding the address";
		nl_init(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, &ifa, sizeof(ifa));
		nl_attr(&m, IFA_LOCAL, &ip.s_addr, 4);
		nl_attr(&m, IFA_ADDRESS, &ip.s_addr, 4);
		err = nl_talk(fd, &m);
	}
	if (!err) {
		step = "adding the gateway route";
		err = route_replace(fd, ifindex, gw.s_addr, 32, 0);
	}
	if (!err) {
		step = "adding the default route";
		err = route_replace(fd, ifindex, 0, 0, gw.s_addr);
	}
	if (!err) {
		step = "adding the gateway neighbour";
		err = neigh_replace(fd, ifindex, gw.s_addr, hmac);
	}
	close(fd);
	if (err) {
		errf("palisade-bpf: configuring %s in %s: %s: %s", pod, netns, step, strerror(-err));
		return 1;
	}
	return 0;
}

/* link-del NAME: deletes the interface (a veth takes its peer along); gone is success. */
static int cmd_link_del(const char *name)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct nl_msg m;
	int fd, err;

	if (strlen(name) >= IFNAMSIZ)
		return fail("link-del: parsing arguments", EINVAL);
	fd = nl_open();
	if (fd < 0)
		return fail("link-del: netlink", fd);
	nl_init(&m, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	nl_attr(&m, IFLA_IFNAME, name, strlen(name) + 1);
	err = nl_talk(fd, &m);
	close(fd);
	if (err && err != -ENODEV) {
		errf("palisade-bpf: deleting %s: %s", name, strerror(-err));
		return 1;
	}
	return 0;
}
