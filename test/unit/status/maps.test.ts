/** Map usage: capacities agree with bpf/lib/maps.h; policy entries count their LPM keys. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MAP_CAPACITY, mapPressure, mapUsage } from '../../../pkg/status/maps.ts';

describe('map usage', () => {
  it('capacities are the max_entries of bpf/lib/maps.h', () => {
    const h = readFileSync(new URL('../../../bpf/lib/maps.h', import.meta.url), 'utf8');
    const define = (name: string) => Number(new RegExp(`#define ${name}\\s+(\\d+)`).exec(h)?.[1]);
    expect(MAP_CAPACITY).toEqual({
      endpoints: define('PAL_ENDPOINTS_MAX'),
      ipcache: define('PAL_IPCACHE_MAX'),
      policy: define('PAL_POLICY_MAX'),
      cidrs: define('PAL_CIDRS_MAX'),
    });
  });

  it('counts kernel keys and pressure', () => {
    const p = (port: number, endPort: number, protocol = 6) => ({ endpointId: 1, direction: 'ingress' as const, peer: 1, protocol, port, endPort, ruleId: 1, proxyPort: 0 });
    const eps = Array.from({ length: 40000 }, (_, i) => ({ ifindex: i + 1, endpointId: i + 1, identity: 256, ipv4: '10.0.0.1', ingressEnforced: false, egressEnforced: false }));
    const u = mapUsage({
      endpoints: eps, ipcache: [], cidrs: [],
      // any protocol: 1 key; all ports: 1; 80: 1; 1..65535: 16 prefixes.
      policy: [p(0, 0, 0), p(0, 0), p(80, 80), p(1, 65535)],
    });
    expect(u.find((m) => m.name === 'policy')?.entries).toBe(3 + 16);
    expect(u.find((m) => m.name === 'endpoints')).toEqual({ name: 'endpoints', entries: 40000, maxEntries: 65536, pressure: 61 });
    expect(mapPressure(u)).toBe(61);
    expect(mapPressure([])).toBe(0);
  });
});
