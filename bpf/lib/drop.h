/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Drop reasons: named negative codes, defined here and nowhere else.
 *
 * They are what a dropped packet's event and counter carry. pkg/datapath/codec.ts maps
 * them to the DropReason names of pkg/datapath/types.ts (same order, same meaning); the
 * codec drift test compiles this header and fails when the two disagree.
 */
#ifndef PALISADE_DROP_H
#define PALISADE_DROP_H

/* No policy entry allows the packet (default deny of an isolated direction). */
#define DROP_POLICY_DENIED   -1
/* Truncated or inconsistent headers (IPv4 length fields, too short for its L4 header). */
#define DROP_MALFORMED       -2
/* A non-first IPv4 fragment whose first fragment was not allowed (or not seen). */
#define DROP_FRAGMENT        -3
/* Neither IPv4 nor ARP, in a direction that is enforced (fail closed, NETPOL 27). */
#define DROP_UNSUPPORTED_L3  -4
/* The interface carries our program but no endpoint is registered for it. */
#define DROP_NO_ENDPOINT     -5

/* Number of reasons; counters reserve one slot per reason plus slot 0 for "allowed". */
#define DROP_REASON_COUNT     5

#endif
