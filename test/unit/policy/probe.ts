/**
 * Compact connectivity expectations for table-driven tests:
 *   "x/a > y/b 80/TCP ."   pod x/a can connect to pod y/b on TCP 80
 *   "x/a > 8.8.8.8 53/UDP X"   x/a cannot send to an outside address
 *   "192.168.0.11 > x/a 80/TCP X"   an address (here node-1) cannot reach x/a
 * `.` = connected, `X` = blocked. ICMP has no port: "x/a > y/b ICMP .".
 */
import { expect } from 'vitest';
import type { TestCluster } from './cluster.ts';

const isPod = (s: string) => s.includes('/');

export function probe(c: TestCluster, spec: string): boolean {
  const m = /^(\S+) > (\S+) (?:(\d+)\/)?(TCP|UDP|SCTP|ICMP) ([.X])$/.exec(spec.trim());
  if (!m) throw new Error(`bad probe spec ${JSON.stringify(spec)}`);
  const [, from, to, port, proto] = m as unknown as [string, string, string, string | undefined, string];
  const p = Number(port ?? 0);
  if (isPod(from) && isPod(to)) return c.can(from, to, p, proto);
  if (isPod(from)) return c.canReachIp(from, to, p, proto);
  if (isPod(to)) return c.canBeReachedFrom(from, to, p, proto);
  throw new Error(`probe ${spec}: one side must be a pod`);
}

/** Asserts every probe; on failure lists all the cells that differ. */
export function expectProbes(c: TestCluster, specs: string[]): void {
  const wrong: string[] = [];
  for (const s of specs) {
    const want = s.trim().endsWith('.');
    const got = probe(c, s);
    if (got !== want) wrong.push(`${s.trim()} (observed ${got ? '.' : 'X'})`);
  }
  expect(wrong, 'probes that differ').toEqual([]);
}
