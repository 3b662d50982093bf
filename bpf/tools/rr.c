// SPDX-License-Identifier: GPL-2.0
/*
 * rr: the request/response load generator of test/bench/datapath.ts (compiled by the
 * benchmark itself; not part of the product).
 *
 *   rr server PORT            echo server, one connection at a time; prints "ready"
 *   rr rr HOST PORT SECONDS   one connection, 1-byte request/response; prints ops/s
 *   rr crr HOST PORT SECONDS  connect + 1-byte request/response + close; prints ops/s
 *
 * The crr client closes with SO_LINGER 0 (RST) so that TIME_WAIT does not exhaust the
 * ephemeral ports during a run.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(const char *host, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, host, &a.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("connect");
		exit(1);
	}
	return fd;
}

static int ping(int fd)
{
	char c = 'x';

	return write(fd, &c, 1) == 1 && read(fd, &c, 1) == 1;
}

static int server(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
	char buf[256];

	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1024) < 0) {
		perror("listen");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		ssize_t n;

		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(fd, buf, n) != n)
				break;
		close(fd);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]));
	if (argc == 5 && (!strcmp(argv[1], "rr") || !strcmp(argv[1], "crr"))) {
		int crr = argv[1][0] == 'c', port = atoi(argv[3]);
		double end = now() + atof(argv[4]), start = now();
		long ops = 0;
		int fd = crr ? -1 : dial(argv[2], port);

		while (now() < end) {
			if (crr) {
				struct linger l = { .l_onoff = 1, .l_linger = 0 };

				fd = dial(argv[2], port);
				if (!ping(fd))
					return 1;
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
				close(fd);
			} else if (!ping(fd)) {
				return 1;
			}
			ops++;
		}
		printf("%.0f\n", ops / (now() - start));
		return 0;
	}
	fprintf(stderr, "usage: rr server PORT | rr rr|crr HOST PORT SECONDS\n");
	return 2;
}
