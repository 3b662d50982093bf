/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every map of the datapath and the byte layout of its keys and values.
 *
 * This header owns the layouts. pkg/datapath/codec.ts mirrors them field by field with
 * the same names (they are also the names of pkg/datapath/types.ts); the drift test
 * (test/unit/datapath/codec-drift.test.ts) compiles this header on the host and fails
 * when a size or an offset differs. The _Static_asserts below pin the layouts so that a
 * change here is a deliberate one.
 *
 * All maps are pinned by name (LIBBPF_PIN_BY_NAME) under <bpffs-root>/palisade/maps, so
 * both programs share them and they survive agent restarts.
 */
#ifndef PALISADE_MAPS_H
#define PALISADE_MAPS_H

#include <linux/bpf.h>
#ifdef __BPF__
#include <bpf/bpf_helpers.h>
#endif

#include "drop.h"

/* Directions, as seen from the endpoint (the pod). */
#define DIR_INGRESS 0
#define DIR_EGRESS  1

/* Reserved identities (pkg/identity/reserved.ts). 0 in a policy key = any peer. */
#define IDENTITY_ANY   0
#define IDENTITY_HOST  1
#define IDENTITY_WORLD 2
/* Policy peer only: any pod, i.e. any label identity (NETPOL 9, namespaceSelector {}). */
#define IDENTITY_CLUSTER_POD 8
#define IDENTITY_FIRST_LABEL 256
#define IDENTITY_FIRST_CIDR  0x01000000

#define PROTO_ANY  0
#define PROTO_ICMP 1
#define PROTO_TCP  6
#define PROTO_UDP  17
#define PROTO_SCTP 132

#define PAL_ENDPOINTS_MAX  65536
#define PAL_IPCACHE_MAX    262144
#define PAL_POLICY_MAX     1048576
#define PAL_CIDRS_MAX      262144
#define PAL_CONNTRACK_MAX  131072
#define PAL_FRAGMENTS_MAX  8192
#define PAL_EVENTS_MAX     8192

/* ---- endpoints: host-side veth ifindex -> endpoint ------------------------------- */

struct endpoint_key {
	__u32 ifindex;
};

struct endpoint_value {
	__u32 endpointId;
	__u32 identity;
	__be32 ipv4;
	__u8 ingressEnforced; /* 1 = the pod is isolated for ingress */
	__u8 egressEnforced;
	__u8 pad[2];
};

/* ---- ipcache: LPM over a 16-byte address (IPv4 as ::ffff:a.b.c.d) -> identity ----- */

/* prefixlen of an IPv4 /n entry is IPCACHE_V4_PREFIX + n. */
#define IPCACHE_V4_PREFIX 96

struct ipcache_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct ipcache_value {
	__u32 identity;
};

/*
 * ---- policy: LPM over (endpoint, peer, direction, protocol, port) -> allow ---------
 *
 * One lookup answers "exact port, port range, every port of a protocol, every protocol"
 * for one peer: the first POLICY_PREFIX_FIXED bits (endpointId, peer, direction) are
 * always matched in full; an entry for every protocol stops there; one for every port
 * of a protocol stops after the protocol byte; a port range [port, endPort] is split
 * into the few aligned prefixes that cover it (at most 30), so no range is exploded into
 * single ports. endpointId and peer are compared as bytes, so their byte order does not
 * matter; port is big-endian so that its prefixes are numeric ranges.
 */
#define POLICY_PREFIX_FIXED 72  /* endpointId(32) + peer(32) + direction(8) */
#define POLICY_PREFIX_PROTO 80  /* + protocol(8): every port of one protocol */
#define POLICY_PREFIX_FULL  96  /* + port(16): exact port */

struct policy_key {
	__u32 prefixlen;
	__u32 endpointId;
	__u32 peer;
	__u8 direction;
	__u8 protocol;
	__be16 port;
};

/* The value carries the entry's original range, so a dump can rebuild the entry. */
struct policy_value {
	__u32 ruleId;
	__u16 port;
	__u16 endPort;
	__u16 proxyPort;
	__u16 pad;
};

/* ---- cidrs: LPM over (endpoint, direction, 16-byte address) -> CIDR identity ------ */

#define CIDR_PREFIX_FIXED 64  /* endpointId(32) + direction(8) + pad(24) */
/* prefixlen of an IPv4 /n entry is CIDR_PREFIX_FIXED + IPCACHE_V4_PREFIX + n. */

struct cidr_key {
	__u32 prefixlen;
	__u32 endpointId;
	__u8 direction;
	__u8 pad[3];
	__u8 addr[16];
};

struct cidr_value {
	__u32 identity;
};

/*
 * ---- conntrack: flows an endpoint allowed, one entry per flow and endpoint ---------
 *
 * The key is the flow's tuple in a canonical order (the lower (address, port) end
 * first), so both directions of a flow find the same entry with one lookup; the value
 * says which end opened it and in which direction. A packet is a reply when the entry
 * was opened in the other direction by the other end. Keying by endpoint keeps two pods
 * on one node from opening each other's reply path: A's egress allowing A->B says
 * nothing about B's ingress.
 */
struct ct_key {
	__u32 endpointId;
	__be32 addrLo;
	__be32 addrHi;
	__be16 portLo;
	__be16 portHi;
	__u8 protocol;
	__u8 pad[3];
};

#define CT_F_CLOSING 1 /* a FIN or RST was seen: short lifetime */

/*
 * `generation` caches the forward verdict: an entry whose generation equals the current
 * policy generation (config map) was allowed by exactly the maps in force now, so its
 * next forward packet passes without the ipcache and policy lookups. Every apply() bumps
 * the generation after its writes, which re-judges every flow on its next packet, so
 * NETPOL 25 (forward packets checked against the current policy) still holds.
 */
struct ct_value {
	__u64 lastSeen; /* bpf_ktime_get_coarse_ns() */
	__u32 ruleId;
	__u32 generation;
	__u8 flags;
	__u8 direction; /* direction (of the endpoint) the flow was opened in */
	__u8 originLo;  /* 1: the opening packet came from the key's lower end */
	__u8 pad[5];
};

/* ---- fragments: first fragment allowed -> later fragments of that datagram pass ---- */

struct frag_key {
	__u32 endpointId;
	__be32 saddr;
	__be32 daddr;
	__be16 id;
	__u8 direction;
	__u8 protocol;
};

struct frag_value {
	__be16 sport;
	__be16 dport;
	__u32 ruleId;
};

/* ---- events: drop and new-flow verdict records, a queue the agent polls ---------- */

#define VERDICT_ALLOWED    0
#define VERDICT_DROPPED    1
#define VERDICT_REDIRECTED 2

struct flow_event {
	__u64 time; /* bpf_ktime_get_ns() */
	__u32 endpointId;
	__u32 peerIdentity;
	__u32 ruleId;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 direction;
	__u8 verdict;
	__s8 reason; /* 0 or a DROP_* code */
	__u32 pad;
};

/* ---- config: one entry, written by the agent ---------------------------------------- */

struct config_value {
	__u32 policyGeneration; /* bumped by every apply(), after its map writes */
	__u32 pad;
};

/* ---- counters: [direction][slot], slot 0 = allowed, slot -reason = that drop ----- */

#define COUNTER_SLOTS (1 + DROP_REASON_COUNT)
#define COUNTERS_MAX  (2 * COUNTER_SLOTS)

_Static_assert(sizeof(struct endpoint_key) == 4, "endpoint_key size");
_Static_assert(sizeof(struct endpoint_value) == 16, "endpoint_value size");
_Static_assert(__builtin_offsetof(struct endpoint_value, ipv4) == 8, "endpoint_value.ipv4");
_Static_assert(__builtin_offsetof(struct endpoint_value, ingressEnforced) == 12, "endpoint_value.ingressEnforced");
_Static_assert(sizeof(struct ipcache_key) == 20, "ipcache_key size");
_Static_assert(__builtin_offsetof(struct ipcache_key, addr) == 4, "ipcache_key.addr");
_Static_assert(sizeof(struct ipcache_value) == 4, "ipcache_value size");
_Static_assert(sizeof(struct policy_key) == 16, "policy_key size");
_Static_assert(__builtin_offsetof(struct policy_key, peer) == 8, "policy_key.peer");
_Static_assert(__builtin_offsetof(struct policy_key, direction) == 12, "policy_key.direction");
_Static_assert(__builtin_offsetof(struct policy_key, port) == 14, "policy_key.port");
_Static_assert(sizeof(struct policy_value) == 12, "policy_value size");
_Static_assert(__builtin_offsetof(struct policy_value, proxyPort) == 8, "policy_value.proxyPort");
_Static_assert(sizeof(struct cidr_key) == 28, "cidr_key size");
_Static_assert(__builtin_offsetof(struct cidr_key, addr) == 12, "cidr_key.addr");
_Static_assert(sizeof(struct cidr_value) == 4, "cidr_value size");
_Static_assert(sizeof(struct ct_key) == 20, "ct_key size");
_Static_assert(__builtin_offsetof(struct ct_key, protocol) == 16, "ct_key.protocol");
_Static_assert(sizeof(struct ct_value) == 24, "ct_value size");
_Static_assert(__builtin_offsetof(struct ct_value, generation) == 12, "ct_value.generation");
_Static_assert(__builtin_offsetof(struct ct_value, originLo) == 18, "ct_value.originLo");
_Static_assert(sizeof(struct config_value) == 8, "config_value size");
_Static_assert(sizeof(struct frag_key) == 16, "frag_key size");
_Static_assert(sizeof(struct frag_value) == 8, "frag_value size");
_Static_assert(sizeof(struct flow_event) == 40, "flow_event size");
_Static_assert(__builtin_offsetof(struct flow_event, protocol) == 32, "flow_event.protocol");

#ifdef __BPF__

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_value);
	__uint(max_entries, PAL_ENDPOINTS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, PAL_IPCACHE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
	__uint(max_entries, PAL_POLICY_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct cidr_key);
	__type(value, struct cidr_value);
	__uint(max_entries, PAL_CIDRS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
	__uint(max_entries, PAL_CONNTRACK_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct frag_key);
	__type(value, struct frag_value);
	__uint(max_entries, PAL_FRAGMENTS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_fragments SEC(".maps");

/*
 * A queue, not a ring buffer: the agent reads it with the npm `bpf` package (which has
 * no ring buffer reader) by popping. When full, a push with BPF_EXIST drops the oldest
 * record, so a drop flood never blocks the datapath.
 */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__type(value, struct flow_event);
	__uint(max_entries, PAL_EVENTS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct config_value);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_config SEC(".maps");

/* Per CPU: no atomic on a shared cache line per packet. The npm `bpf` package cannot
 * read per-CPU values, so the agent sums them with `palisade-bpf counters`. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, COUNTERS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_counters SEC(".maps");

#endif /* __BPF__ */

#endif
