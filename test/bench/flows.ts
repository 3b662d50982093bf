/**
 * `make bench-flows`: can the agent keep up with its datapath's event stream? Measures,
 * side by side in one run, storing records as they are (baseline) and the full per-event
 * path (enrichment with a 10 000-pod address index and a 5 000-rule compile, then the
 * store), against the most the kernel queue can deliver (8192 records per 100 ms poll,
 * docs/datapath.md). Also: a filtered query over a full ring, and a follow subscriber's
 * cost. Writes bench/out/flows.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FlowEvent } from '../../pkg/datapath/types.ts';
import { enrichEvent, type FlowSources } from '../../pkg/flow/enrich.ts';
import { PodIpIndex } from '../../pkg/flow/pods.ts';
import { FlowStore, matchesFilter } from '../../pkg/flow/store.ts';
import type { FlowRecord } from '../../pkg/flow/types.ts';
import type { Pod } from '../../pkg/policy/snapshot.ts';

const ROOT = new URL('../../../', import.meta.url).pathname.replace(/\/dist\/?$/, '/');
const OUT = join(ROOT.endsWith('dist/') ? join(ROOT, '..') : ROOT, 'bench/out');
const N = Number(process.env.BENCH_FLOWS_N ?? 400_000);
const ROUNDS = 7;
const KERNEL_MAX_PER_S = 8192 * 10;

const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const pods = new Map<string, Pod>();
for (let i = 0; i < 10_000; i++) {
  pods.set(`ns${i % 50}/p${i}`, {
    metadata: { name: `p${i}`, namespace: `ns${i % 50}` }, spec: { containers: [] },
    status: { phase: 'Running', podIP: ip(i + 1) },
  });
}
const rules = new Map<number, { policy: string }>();
for (let r = 1; r <= 5000; r++) rules.set(r, { policy: `NetworkPolicy:ns${r % 50}/pol-${r}` });
const endpoints = new Map<number, { identity: number; ingressEnforced: boolean; egressEnforced: boolean }>();
for (let e = 1; e <= 110; e++) endpoints.set(e, { identity: 300 + e, ingressEnforced: e % 2 === 0, egressEnforced: false });

const index = new PodIpIndex(() => pods);
const sources: FlowSources = {
  node: 'bench', podByIp: (a) => index.lookup(a), policyOfRule: (id) => rules.get(id)?.policy,
  endpoint: (id) => endpoints.get(id),
};
const events: FlowEvent[] = Array.from({ length: 4096 }, (_, i) => ({
  time: 1_800_000_000_000 + i, verdict: i % 3 === 0 ? 'dropped' : 'allowed', reason: i % 3 === 0 ? 'policy-denied' : undefined,
  direction: i % 2 ? 'ingress' : 'egress', endpointId: (i % 110) + 1, srcIp: ip((i * 7) % 10_000 + 1), dstIp: ip((i * 13) % 12_000 + 1),
  srcPort: 30000 + i, dstPort: 80, protocol: 6, peerIdentity: 400 + (i % 90), ruleId: i % 3 === 0 ? 0 : (i % 5000) + 1,
}));
const prebuilt: FlowRecord[] = events.map((e) => enrichEvent(e, sources));

function perSecond(fn: (i: number) => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn(i);
  return N / (Number(process.hrtime.bigint() - t0) / 1e9);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base: number[] = [];
const full: number[] = [];
const followed: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  // Interleaved so that machine noise hits every configuration alike.
  const s1 = new FlowStore();
  base.push(perSecond((i) => s1.record(prebuilt[i & 4095]!)));
  const s2 = new FlowStore();
  full.push(perSecond((i) => s2.record(enrichEvent(events[i & 4095]!, sources))));
  const s3 = new FlowStore();
  let sent = 0;
  s3.subscribe((rec) => { if (matchesFilter(rec, { verdict: 'dropped' })) sent += JSON.stringify(rec).length; });
  followed.push(perSecond((i) => s3.record(enrichEvent(events[i & 4095]!, sources))));
  if (sent === 0) throw new Error('subscriber saw nothing');
}

const ring = new FlowStore();
for (let i = 0; i < 8192; i++) ring.record(prebuilt[i & 4095]!);
const q: number[] = [];
for (let r = 0; r < 51; r++) {
  const t0 = process.hrtime.bigint();
  const got = ring.query({ pod: 'ns21/p21', verdict: 'dropped', limit: 8192 });
  q.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (got.length === 0 && r === 0) console.error('note: the filtered query matched nothing');
}

const result = {
  n: N, rounds: ROUNDS,
  recordPerS: Math.round(median(base)),
  enrichAndRecordPerS: Math.round(median(full)),
  enrichRecordFollowPerS: Math.round(median(followed)),
  kernelMaxPerS: KERNEL_MAX_PER_S,
  headroomVsKernel: Number((median(full) / KERNEL_MAX_PER_S).toFixed(1)),
  enrichCostRatio: Number((median(base) / median(full)).toFixed(2)),
  queryFullRingMs: Number(median(q).toFixed(3)),
};
mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, 'flows.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(`flow records/s: store only ${result.recordPerS}, enrich+store ${result.enrichAndRecordPerS} (${result.enrichCostRatio}x slower), +follower ${result.enrichRecordFollowPerS}`);
console.log(`kernel queue delivers at most ${KERNEL_MAX_PER_S}/s: headroom ${result.headroomVsKernel}x`);
console.log(`filtered query over a full ring (8192): ${result.queryFullRingMs} ms`);
