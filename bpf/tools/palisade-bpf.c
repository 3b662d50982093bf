// SPDX-License-Identifier: GPL-2.0
/*
 * palisade-bpf: the few kernel operations the agent cannot do from Node.
 *
 *   palisade-bpf load OBJ PROG_PIN MAPS_DIR
 *       Loads the one program of OBJ, reusing the maps pinned in MAPS_DIR (pinning the
 *       ones that are missing), and pins the program at PROG_PIN (atomically replacing
 *       a previous pin). Prints the program id.
 *   palisade-bpf attach IFINDEX ingress|egress PROG_PIN LINK_PIN [HOOK PROG_PIN LINK_PIN]
 *       Attaches PROG_PIN to the interface with a tcx link pinned at LINK_PIN (one or
 *       two hooks per call: a pod's attach is one process, not two).
 *       Idempotent: an existing live link for the same interface and hook is kept (and
 *       switched atomically to PROG_PIN if it runs another program). Exit status 3 when
 *       the kernel has no tcx, so the caller can fall back to clsact.
 *   palisade-bpf detach LINK_PIN
 *       Detaches and unpins the link; succeeds when it is already gone.
 *   palisade-bpf tc-attach IFINDEX ingress|egress PROG_PIN [HOOK PROG_PIN]
 *       clsact attachment through libbpf's netlink (bpf_tc_*): adds the clsact qdisc
 *       when missing and replaces the direct-action filter at priority 1, handle 1 (the
 *       same filter `tc filter replace ... prio 1 handle 1 bpf da pinned PROG` makes).
 *   palisade-bpf tc-detach IFINDEX ingress|egress [HOOK]
 *       Removes those filters; succeeds when they or the interface are gone.
 *   palisade-bpf veth-add HOST HOSTMAC POD PODMAC MTU NETNS_PATH IPV4
 *   palisade-bpf pod-config NETNS_PATH POD IPV4 GATEWAY HOSTMAC
 *   palisade-bpf link-del NAME
 *       A pod's veth pair, its pod side, its removal, over rtnetlink (see podnet.h).
 *       veth-add prints the host ifindex and exits 4 when HOST already exists.
 *   palisade-bpf gc-links DIR
 *       Unpins every tcx link in DIR whose interface is gone (a pod deleted without a
 *       detach); prints how many. A defunct link still holds its program.
 *   palisade-bpf ifname IFINDEX
 *       Prints the interface name (for tc, which wants names).
 *   palisade-bpf counters MAP_PIN
 *       Prints every slot of a per-CPU array of u64, summed over CPUs, one per line.
 *   palisade-bpf info PROG_PIN
 *       Prints "ID LOADED_AT_MS": the program id and when it was loaded (epoch ms).
 *   palisade-bpf test-run PROG_PIN DATA_FILE IFINDEX REPEAT [OUT_FILE]
 *       BPF_PROG_TEST_RUN with the frame in DATA_FILE and skb->ifindex = IFINDEX;
 *       prints "RETVAL DURATION_NS" (the kernel's average per run); with OUT_FILE,
 *       also writes the frame as the program left it there.
 *   palisade-bpf serve
 *       The agent's persistent helper: reads requests "ID COMMAND ARGS..." one per line
 *       on stdin (COMMAND one of attach, detach, tc-attach, tc-detach, veth-add,
 *       pod-config, link-del, gc-links, ifname, info, with the arguments above; no argument contains whitespace) and answers
 *       each with one
 *       line "ID STATUS TEXT" on stdout, where STATUS is the exit status the command
 *       would have had and TEXT its output (status 0) or error line. Requests run
 *       concurrently, one thread each, so answers may come out of order. Exits when
 *       stdin closes, after the requests in flight are answered.
 *
 * Why native code: tcx needs BPF_LINK_CREATE with BPF_TCX_{INGRESS,EGRESS}, which
 * neither bpftool 7.1 nor iproute2 6.1 knows, and loading through libbpf lets both
 * programs share pinned maps (pin_root_path + LIBBPF_PIN_BY_NAME) in one step.
 * Errors go to stderr as one line: "palisade-bpf: <step>: <cause>".
 */
/* setns() for pod-config (podnet.h). */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/* Not in the uapi headers of the build machine (Linux 6.6 added them). */
#define PAL_BPF_TCX_INGRESS 46
#define PAL_BPF_TCX_EGRESS  47
#define PAL_BPF_LINK_TYPE_TCX 11

#define EXIT_NO_TCX 3

/*
 * What a command prints, per thread: `g_out` is its result (stdout in the CLI), `g_err`
 * its one error line (stderr). The CLI and the server print them each their own way.
 */
static __thread char g_out[4096];
static __thread char g_err[1024];

static void outf(const char *fmt, ...)
{
	size_t n = strlen(g_out);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g_out + n, sizeof(g_out) - n, fmt, ap);
	va_end(ap);
}

static void errf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g_err, sizeof(g_err), fmt, ap);
	va_end(ap);
}

static int fail(const char *step, int err)
{
	errf("palisade-bpf: %s: %s", step, strerror(err < 0 ? -err : err));
	return 1;
}

#include "podnet.h"

static int silent_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	char msg[1024];

	/* libbpf's own log (verifier output included) only on warnings, to stderr. */
	if (level != LIBBPF_WARN)
		return 0;
	vsnprintf(msg, sizeof(msg), fmt, args);
	/* The kernel's words for outcomes tc-attach/tc-detach expect (clsact already
	 * there, filter already gone): not worth a line in the agent's log. */
	if (strstr(msg, "Exclusivity flag on") || strstr(msg, "Cannot find specified filter chain"))
		return 0;
	return fputs(msg, stderr);
}

static int cmd_load(const char *obj_path, const char *prog_pin, const char *maps_dir)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = maps_dir);
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	char tmp[4096];
	int err, fd;

	obj = bpf_object__open_file(obj_path, &opts);
	if (!obj)
		return fail("opening object", errno);
	err = bpf_object__load(obj);
	if (err) {
		bpf_object__close(obj);
		return fail("loading object", err);
	}
	prog = bpf_object__next_program(obj, NULL);
	if (!prog || bpf_object__next_program(obj, prog)) {
		bpf_object__close(obj);
		errf("palisade-bpf: loading object: expected exactly one program");
		return 1;
	}
	fd = bpf_program__fd(prog);
	/* Pin beside the target, then rename over it: a reader never sees no pin. */
	/* bpffs refuses names containing a dot. */
	snprintf(tmp, sizeof(tmp), "%s_new", prog_pin);
	unlink(tmp);
	err = bpf_obj_pin(fd, tmp);
	if (!err && rename(tmp, prog_pin) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		bpf_object__close(obj);
		return fail("pinning program", err);
	}
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	outf("%u\n", err ? 0 : info.id);
	bpf_object__close(obj);
	return 0;
}

/* The part of struct bpf_link_info a tcx link fills (layout of Linux >= 6.6). */
struct tcx_link_info {
	__u32 type;
	__u32 id;
	__u32 prog_id;
	__u32 pad;
	__u32 ifindex;
	__u32 attach_type;
	__u8 rest[64];
};

static int prog_id_of(int fd, __u32 *id)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int err = bpf_obj_get_info_by_fd(fd, &info, &len);

	if (!err)
		*id = info.id;
	return err;
}

/*
 * An existing pin at link_pin: 0 = kept or updated (done), 1 = stale (removed, create a
 * new one), <0 = error.
 */
static int reuse_link(const char *link_pin, int ifindex, __u32 attach_type, int prog_fd)
{
	struct tcx_link_info li = {};
	__u32 len = sizeof(li), want;
	int fd, err;

	fd = bpf_obj_get(link_pin);
	if (fd < 0)
		return errno == ENOENT ? 1 : -errno;
	err = bpf_obj_get_info_by_fd(fd, &li, &len);
	if (err || li.type != PAL_BPF_LINK_TYPE_TCX || li.ifindex != (__u32)ifindex ||
	    li.attach_type != attach_type) {
		/* The interface is gone (ifindex 0: the link is defunct) or the pin is
		 * not ours to keep. */
		close(fd);
		unlink(link_pin);
		return 1;
	}
	err = prog_id_of(prog_fd, &want);
	if (!err && li.prog_id != want)
		err = bpf_link_update(fd, prog_fd, NULL);
	close(fd);
	return err ? -errno : 0;
}

static int cmd_attach(int ifindex, const char *hook, const char *prog_pin, const char *link_pin)
{
	struct {
		__u32 prog_fd;
		__u32 target_ifindex;
		__u32 attach_type;
		__u32 flags;
		__u32 relative_fd;
		__u32 pad;
		__u64 expected_revision;
	} attr;
	__u32 attach_type;
	int prog_fd, link_fd, rc;

	if (!strcmp(hook, "ingress"))
		attach_type = PAL_BPF_TCX_INGRESS;
	else if (!strcmp(hook, "egress"))
		attach_type = PAL_BPF_TCX_EGRESS;
	else
		return fail("parsing hook", EINVAL);

	prog_fd = bpf_obj_get(prog_pin);
	if (prog_fd < 0)
		return fail("opening program pin", errno);

	rc = reuse_link(link_pin, ifindex, attach_type, prog_fd);
	if (rc <= 0) {
		close(prog_fd);
		return rc ? fail("updating link", rc) : 0;
	}

	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = prog_fd;
	attr.target_ifindex = ifindex;
	attr.attach_type = attach_type;
	link_fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	if (link_fd < 0) {
		int err = errno;

		close(prog_fd);
		/* EINVAL: unknown attach type (kernel < 6.6); EOPNOTSUPP/ENOTSUPP (524): no
		 * tcx in this build. The caller falls back to clsact. */
		if (err == EINVAL || err == EOPNOTSUPP || err == 524) {
			errf("palisade-bpf: creating tcx link: %s", strerror(err));
			return EXIT_NO_TCX;
		}
		return fail("creating tcx link", err);
	}
	if (bpf_obj_pin(link_fd, link_pin)) {
		int err = errno;

		/* Closing the only fd releases the link: nothing is left attached. */
		close(link_fd);
		close(prog_fd);
		return fail("pinning link", err);
	}
	close(link_fd);
	close(prog_fd);
	return 0;
}

static int tc_hook_of(const char *hook, enum bpf_tc_attach_point *ap)
{
	if (!strcmp(hook, "ingress"))
		*ap = BPF_TC_INGRESS;
	else if (!strcmp(hook, "egress"))
		*ap = BPF_TC_EGRESS;
	else
		return -EINVAL;
	return 0;
}

/*
 * Why clsact from here rather than `tc`: one request to the persistent helper instead
 * of three process starts, and no RCU grace period in the kernel (a tcx attach waits
 * for two per hook while holding the RTNL lock).
 */
static int cmd_tc_attach(int ifindex, const char *hook, const char *prog_pin)
{
	LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex);
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = 1, .priority = 1, .flags = BPF_TC_F_REPLACE);
	int prog_fd, err;

	if (tc_hook_of(hook, &h.attach_point))
		return fail("parsing hook", EINVAL);
	prog_fd = bpf_obj_get(prog_pin);
	if (prog_fd < 0)
		return fail("opening program pin", errno);
	err = bpf_tc_hook_create(&h);
	if (err && err != -EEXIST) {
		close(prog_fd);
		return fail("adding clsact", err);
	}
	o.prog_fd = prog_fd;
	err = bpf_tc_attach(&h, &o);
	close(prog_fd);
	return err ? fail("attaching clsact filter", err) : 0;
}

static int cmd_tc_detach(int ifindex, const char *hook)
{
	LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex);
	LIBBPF_OPTS(bpf_tc_opts, o, .handle = 1, .priority = 1);
	int err;

	if (tc_hook_of(hook, &h.attach_point))
		return fail("parsing hook", EINVAL);
	err = bpf_tc_detach(&h, &o);
	/* No filter, no qdisc or no interface: nothing left to detach. */
	if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
		return fail("detaching clsact filter", err);
	return 0;
}

static int cmd_detach(const char *link_pin)
{
	int fd = bpf_obj_get(link_pin);

	if (fd < 0)
		return errno == ENOENT ? 0 : fail("opening link pin", errno);
	/* Detach even if some other process holds the link open; EINVAL/ENOLINK when
	 * it is already defunct. */
	bpf_link_detach(fd);
	close(fd);
	if (unlink(link_pin) < 0 && errno != ENOENT)
		return fail("unpinning link", errno);
	return 0;
}

static int cmd_gc_links(const char *dir)
{
	struct dirent *de;
	char path[4096];
	int removed = 0;
	DIR *d = opendir(dir);

	if (!d)
		return errno == ENOENT ? (outf("0\n"), 0) : fail("opening links dir", errno);
	while ((de = readdir(d))) {
		struct tcx_link_info li = {};
		__u32 len = sizeof(li);
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		/* A tcx link whose device went away reports ifindex 0. */
		if (!bpf_obj_get_info_by_fd(fd, &li, &len) && li.type == PAL_BPF_LINK_TYPE_TCX &&
		    li.ifindex == 0 && !unlink(path))
			removed++;
		close(fd);
	}
	closedir(d);
	outf("%d\n", removed);
	return 0;
}

static int cmd_ifname(int ifindex)
{
	char name[IF_NAMESIZE];

	if (!if_indextoname(ifindex, name))
		return fail("resolving ifindex", errno);
	outf("%s\n", name);
	return 0;
}

static int cmd_info(const char *prog_pin)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	struct timespec real, boot;
	long long loaded_ms;
	int fd, err;

	fd = bpf_obj_get(prog_pin);
	if (fd < 0)
		return fail("opening program pin", errno);
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (err)
		return fail("reading program info", errno);
	/* load_time counts from boot (CLOCK_BOOTTIME); convert to the epoch. */
	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	loaded_ms = (real.tv_sec * 1000LL + real.tv_nsec / 1000000) -
		    ((boot.tv_sec * 1000000000LL + boot.tv_nsec - (long long)info.load_time) / 1000000);
	outf("%u %lld\n", info.id, loaded_ms);
	return 0;
}

static int cmd_counters(const char *map_pin)
{
	int ncpu = libbpf_num_possible_cpus();
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), i;
	__u64 *vals;
	int fd, c;

	if (ncpu <= 0)
		return fail("counting cpus", ncpu);
	fd = bpf_obj_get(map_pin);
	if (fd < 0)
		return fail("opening map pin", errno);
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.value_size != sizeof(__u64)) {
		close(fd);
		return fail("reading map info", EINVAL);
	}
	vals = calloc(ncpu, sizeof(__u64));
	if (!vals) {
		close(fd);
		return fail("allocating", ENOMEM);
	}
	for (i = 0; i < info.max_entries; i++) {
		unsigned long long sum = 0;

		if (bpf_map_lookup_elem(fd, &i, vals)) {
			free(vals);
			close(fd);
			return fail("reading counters", errno);
		}
		for (c = 0; c < ncpu; c++)
			sum += vals[c];
		printf("%llu\n", sum);
	}
	free(vals);
	close(fd);
	return 0;
}

static int cmd_test_run(const char *prog_pin, const char *data_file, int ifindex, int repeat,
			const char *out_file)
{
	unsigned char data[9216], out[9216 + 256];
	struct __sk_buff ctx = {};
	LIBBPF_OPTS(bpf_test_run_opts, opts);
	ssize_t n;
	int fd, prog_fd, err;

	fd = open(data_file, O_RDONLY);
	if (fd < 0)
		return fail("opening data file", errno);
	n = read(fd, data, sizeof(data));
	close(fd);
	if (n < 0)
		return fail("reading data file", errno);
	prog_fd = bpf_obj_get(prog_pin);
	if (prog_fd < 0)
		return fail("opening program pin", errno);
	ctx.ifindex = ifindex;
	opts.data_in = data;
	opts.data_size_in = n;
	opts.data_out = out;
	opts.data_size_out = sizeof(out);
	opts.ctx_in = &ctx;
	opts.ctx_size_in = sizeof(ctx);
	opts.repeat = repeat;
	err = bpf_prog_test_run_opts(prog_fd, &opts);
	close(prog_fd);
	if (err)
		return fail("running program", errno);
	if (out_file) {
		fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			return fail("opening output file", errno);
		n = write(fd, out, opts.data_size_out);
		close(fd);
		if (n != (ssize_t)opts.data_size_out)
			return fail("writing output file", n < 0 ? errno : EIO);
	}
	printf("%d %u\n", (int)opts.retval, opts.duration);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: palisade-bpf load OBJ PROG_PIN MAPS_DIR\n"
		"       palisade-bpf attach IFINDEX ingress|egress PROG_PIN LINK_PIN [HOOK PROG_PIN LINK_PIN]\n"
		"       palisade-bpf detach LINK_PIN\n"
		"       palisade-bpf tc-attach IFINDEX ingress|egress PROG_PIN [HOOK PROG_PIN]\n"
		"       palisade-bpf tc-detach IFINDEX ingress|egress [HOOK]\n"
		"       palisade-bpf veth-add HOST HOSTMAC POD PODMAC MTU NETNS_PATH IPV4\n"
		"       palisade-bpf pod-config NETNS_PATH POD IPV4 GATEWAY HOSTMAC\n"
		"       palisade-bpf link-del NAME\n"
		"       palisade-bpf gc-links DIR\n"
		"       palisade-bpf ifname IFINDEX\n"
		"       palisade-bpf counters MAP_PIN\n"
		"       palisade-bpf info PROG_PIN\n"
		"       palisade-bpf test-run PROG_PIN DATA_FILE IFINDEX REPEAT [OUT_FILE]\n"
		"       palisade-bpf serve\n");
}

/* The commands the server runs; -1 when argv is not one of them. */
static int dispatch_shared(int argc, char **argv)
{
	if ((argc == 6 || argc == 9) && !strcmp(argv[1], "attach")) {
		int rc = cmd_attach(atoi(argv[2]), argv[3], argv[4], argv[5]);

		if (rc || argc == 6)
			return rc;
		return cmd_attach(atoi(argv[2]), argv[6], argv[7], argv[8]);
	}
	if (argc == 3 && !strcmp(argv[1], "detach"))
		return cmd_detach(argv[2]);
	if ((argc == 5 || argc == 7) && !strcmp(argv[1], "tc-attach")) {
		int rc = cmd_tc_attach(atoi(argv[2]), argv[3], argv[4]);

		if (rc || argc == 5)
			return rc;
		return cmd_tc_attach(atoi(argv[2]), argv[5], argv[6]);
	}
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "tc-detach")) {
		int rc = cmd_tc_detach(atoi(argv[2]), argv[3]);

		if (rc || argc == 4)
			return rc;
		return cmd_tc_detach(atoi(argv[2]), argv[4]);
	}
	if (argc == 9 && !strcmp(argv[1], "veth-add"))
		return cmd_veth_add(argv + 2);
	if (argc == 7 && !strcmp(argv[1], "pod-config"))
		return cmd_pod_config(argv + 2);
	if (argc == 3 && !strcmp(argv[1], "link-del"))
		return cmd_link_del(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "gc-links"))
		return cmd_gc_links(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "ifname"))
		return cmd_ifname(atoi(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "info"))
		return cmd_info(argv[2]);
	return -1;
}

#define SERVE_MAX_ARGS 12

struct serve_req {
	char *line;
	char *id;
	int argc;
	char *argv[SERVE_MAX_ARGS + 1];
};

static pthread_mutex_t serve_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t serve_idle = PTHREAD_COND_INITIALIZER;
static int serve_inflight;

/* One answer line; TEXT has its newlines folded into spaces so it stays one line. */
static void serve_answer(const char *id, int rc, const char *text)
{
	char buf[sizeof(g_out)];
	size_t n;

	snprintf(buf, sizeof(buf), "%s", text);
	for (char *c = buf; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	n = strlen(buf);
	while (n && buf[n - 1] == ' ')
		buf[--n] = 0;
	pthread_mutex_lock(&serve_lock);
	printf("%s %d %s\n", id, rc, buf);
	fflush(stdout);
	pthread_mutex_unlock(&serve_lock);
}

static void *serve_one(void *arg)
{
	struct serve_req *r = arg;
	int rc;

	g_out[0] = g_err[0] = 0;
	rc = dispatch_shared(r->argc, r->argv);
	if (rc < 0)
		serve_answer(r->id, 2, "palisade-bpf: serve: unknown request");
	else
		serve_answer(r->id, rc, rc ? (g_err[0] ? g_err : "palisade-bpf: failed") : g_out);
	free(r->line);
	free(r);
	pthread_mutex_lock(&serve_lock);
	if (--serve_inflight == 0)
		pthread_cond_signal(&serve_idle);
	pthread_mutex_unlock(&serve_lock);
	return NULL;
}

/*
 * Why a server: every attach or detach used to be a process start (~2 ms of the agent's
 * event loop, more under load), and requests of different pods now overlap instead of
 * queueing behind each other's kernel waits (tcx attach waits for RCU grace periods).
 */
static int cmd_serve(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 << 10);
	while ((n = getline(&line, &cap, stdin)) > 0) {
		struct serve_req *r = calloc(1, sizeof(*r));
		char *save = NULL, *tok;
		pthread_t t;

		if (!r)
			return fail("serve", ENOMEM);
		r->line = strdup(line);
		if (!r->line)
			return fail("serve", ENOMEM);
		r->id = strtok_r(r->line, " \t\r\n", &save);
		if (!r->id) {
			free(r->line);
			free(r);
			continue;
		}
		/* argv[0] is the program name, as in the CLI. */
		r->argv[r->argc++] = "palisade-bpf";
		while ((tok = strtok_r(NULL, " \t\r\n", &save)) && r->argc < SERVE_MAX_ARGS)
			r->argv[r->argc++] = tok;
		pthread_mutex_lock(&serve_lock);
		serve_inflight++;
		pthread_mutex_unlock(&serve_lock);
		if (pthread_create(&t, &attr, serve_one, r)) {
			/* No thread: answer from here, in order. */
			serve_one(r);
		}
	}
	free(line);
	pthread_mutex_lock(&serve_lock);
	while (serve_inflight > 0)
		pthread_cond_wait(&serve_idle, &serve_lock);
	pthread_mutex_unlock(&serve_lock);
	return 0;
}

static int cli(int argc, char **argv)
{
	int rc;

	if (argc == 2 && !strcmp(argv[1], "serve"))
		return cmd_serve();
	if (argc == 5 && !strcmp(argv[1], "load"))
		return cmd_load(argv[2], argv[3], argv[4]);
	if (argc == 3 && !strcmp(argv[1], "counters"))
		return cmd_counters(argv[2]);
	if ((argc == 6 || argc == 7) && !strcmp(argv[1], "test-run"))
		return cmd_test_run(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]),
				    argc == 7 ? argv[6] : NULL);
	rc = dispatch_shared(argc, argv);
	if (rc >= 0)
		return rc;
	usage();
	return 2;
}

int main(int argc, char **argv)
{
	int rc;

	libbpf_set_print(silent_print);
	rc = cli(argc, argv);
	fputs(g_out, stdout);
	if (g_err[0])
		fprintf(stderr, "%s\n", g_err);
	return rc;
}
