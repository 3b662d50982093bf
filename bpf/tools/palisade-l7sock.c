// SPDX-License-Identifier: GPL-2.0
/*
 * palisade-l7sock: makes sockets of its parent process transparent (IP_TRANSPARENT).
 *
 *   palisade-l7sock
 *       Reads one file descriptor number per line on stdin: a socket of the parent
 *       process. Answers one line per request on stdout, in order:
 *       "ok FD" or "err FD <cause>". Exits when stdin closes.
 *
 * Why: the L7 proxy runs in Node.js, which cannot set IP_TRANSPARENT on its sockets, and
 * the transparent proxy needs it twice (docs/l7.md, "The redirect"):
 *  - on the listener, so that the SYN-ACK of a connection accepted through
 *    bpf_sk_assign may leave with the original destination (a pod's address, not one of
 *    the node's) as its source: without it the route lookup for the reply fails and
 *    the kernel drops the SYN (FLOWI_FLAG_ANYSRC comes only from IP_TRANSPARENT);
 *  - on each upstream socket, so that it may connect from the client pod's address.
 * pidfd_getfd(2) (Linux >= 5.6, needs ptrace access to the parent: same user, or root)
 * gives this process a duplicate of the parent's descriptor; both refer to one socket,
 * so the option set here is the parent's. The duplicate is closed at once.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif

static int make_transparent(int pidfd, long fd)
{
	int one = 1;
	int dup = (int)syscall(__NR_pidfd_getfd, pidfd, (int)fd, 0);
	int err = 0;

	if (dup < 0)
		return errno;
	if (setsockopt(dup, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0)
		err = errno;
	close(dup);
	return err;
}

int main(void)
{
	char line[64];
	int pidfd = (int)syscall(__NR_pidfd_open, getppid(), 0);

	if (pidfd < 0) {
		fprintf(stderr, "palisade-l7sock: opening parent: %s\n", strerror(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		char *end;
		long fd = strtol(line, &end, 10);
		int err;

		if (end == line || fd < 0 || fd > 1 << 24) {
			printf("err -1 bad request\n");
			continue;
		}
		err = make_transparent(pidfd, fd);
		if (err)
			printf("err %ld %s\n", fd, strerror(err));
		else
			printf("ok %ld\n", fd);
	}
	return 0;
}
