/**
 * eBPF map usage: entries the agent has applied per map against the map's capacity
 * (max_entries in bpf/lib/maps.h; test/unit/status/maps.test.ts fails when they drift).
 * The names and fields are those of `PalisadeNode.status.maps` and `GET /v1/status`.
 *
 * Counted from the applied DatapathState, not read from the kernel: the agent is the
 * only writer of these maps, and a count from state costs nothing while a kernel walk of
 * a million-entry trie takes seconds. Conntrack, fragments and events are filled by the
 * programs and are not counted.
 */
import { rangeToPrefixes } from '../datapath/codec.ts';
import { PROTO_ANY, type DatapathState, type PolicyEntry } from '../datapath/types.ts';

/** max_entries of the maps the agent fills (PAL_*_MAX in bpf/lib/maps.h). */
export const MAP_CAPACITY = {
  endpoints: 65536,
  ipcache: 262144,
  policy: 1048576,
  cidrs: 262144,
} as const;

export type MapName = keyof typeof MAP_CAPACITY;

export interface MapUsage {
  name: MapName;
  entries: number;
  maxEntries: number;
  /** entries / maxEntries in percent, rounded down, at most 100. */
  pressure: number;
}

/** Kernel keys of one policy entry: a port range is several LPM prefixes. */
function policyKeys(e: PolicyEntry): number {
  if (e.protocol === PROTO_ANY || e.port === 0) return 1;
  return rangeToPrefixes(e.port, e.endPort).length;
}

export function mapUsage(state: DatapathState): MapUsage[] {
  const entries: Record<MapName, number> = {
    endpoints: state.endpoints.length,
    ipcache: state.ipcache.length,
    policy: state.policy.reduce((n, e) => n + policyKeys(e), 0),
    cidrs: state.cidrs.length,
  };
  return (Object.keys(MAP_CAPACITY) as MapName[]).map((name) => {
    const maxEntries = MAP_CAPACITY[name];
    return { name, entries: entries[name], maxEntries, pressure: Math.min(100, Math.floor((entries[name] * 100) / maxEntries)) };
  });
}

/** The highest pressure of any map (0 when none). */
export function mapPressure(usage: readonly MapUsage[]): number {
  return usage.reduce((m, u) => Math.max(m, u.pressure), 0);
}
