/**
 * `make bench-service`: what going through a ClusterIP costs, compared with going straight
 * to the pod IP, in the same run on the same programs.
 *
 * Two pod namespaces joined through a node namespace, both pods isolated with the flow
 * allowed (as in bench-datapath's palisade-10k), and 1000 ClusterIP frontends in the
 * service maps (plus the one under test: VIP:80 -> B:5001, port != targetPort). A's client
 * measures TCP request/response rate (rr: one connection, 1-byte ping-pong) and connection
 * rate (crr: connect, ping-pong, close) to B's IP:5001 and to VIP:80, alternating which
 * goes first each round. Ratios are medians of per-round ratios (service / pod IP).
 * Targets: rr >= 0.95x, crr >= 0.9x.
 *
 * Then the cost per packet under BPF_PROG_TEST_RUN (one run per call, median of many; a
 * repeated run would see its own rewrite): from_pod on an established flow's packet to the
 * pod IP vs to the ClusterIP (NAT hit + rewrite), and to_pod on its reply (reverse).
 *
 * Writes bench/out/service.json. Env: BENCH_ROUNDS (default 7), BENCH_SECONDS (default 1).
 * Needs root. Everything is created in private namespaces and a private bpffs, and removed.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus as osCpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LinuxDatapath } from '../../pkg/datapath/linux/datapath.ts';
import { emptyState, type EndpointEntry, type PolicyEntry, type ServiceEntry } from '../../pkg/datapath/types.ts';
import { startInNetns, wirePods } from '../helpers/netns.ts';
import { envCount, inNs, median, quiet, sh, tcpFrame } from './lib.ts';

const repo = new URL('../../', import.meta.url).pathname.replace(/\/dist\/$/, '/');
const ROUNDS = envCount('BENCH_ROUNDS', 7);
const SECONDS = envCount('BENCH_SECONDS', 1);
const FILLER_SERVICES = 1000;
const prefix = `pbs${process.pid % 10000}`;
const tmp = mkdtempSync(join(tmpdir(), `${prefix}-`));
const bpffs = join('/tmp', `${prefix}-bpffs`);

const GW = '10.95.0.1';
const VIP = '10.96.200.1';
const A = { ns: `${prefix}a`, ip: '10.95.0.10', hostIf: 'hosta', id: 301, identity: 4001, ifindex: 0 };
const B = { ns: `${prefix}b`, ip: '10.95.0.20', hostIf: 'hostb', id: 302, identity: 4002, ifindex: 0 };
const NODE = `${prefix}n`;

function setupNet(): void {
  wirePods(NODE, GW, [A, B]);
}

function startServer(rrBin: string): Promise<ChildProcess> {
  return startInNetns(B.ns, rrBin, ['server', '5001'], { what: 'rr server', timeoutMs: 5000, stderr: 'ignore' });
}

function fillerServices(): ServiceEntry[] {
  return Array.from({ length: FILLER_SERVICES }, (_, i) => ({
    name: `filler/${i}`, ip: `10.96.${100 + (i >> 8)}.${i & 255}`, port: 80 + (i % 3), protocol: 6,
    affinityTimeoutSec: 0,
    backends: Array.from({ length: 1 + (i % 4) }, (_, j) => ({ ip: `10.250.${i >> 8}.${(i + j) & 255}`, port: 8080 })),
  }));
}

interface Sample { rr: number; crr: number }

/** Median ns of one from_pod/to_pod run per call, for each frame. */
function packetCost(prog: (name: string) => string, ifA: number, runs: number): Record<string, number> {
  const helper = join(repo, 'bin', 'palisade-bpf');
  const file = (name: string, b: Buffer) => { const f = join(tmp, `${name}.bin`); writeFileSync(f, b); return f; };
  const run = (p: string, f: string): number => Number(sh('nsenter', [`--net=/run/netns/${NODE}`, '--', helper,
    'test-run', prog(p), f, String(ifA), '1']).trim().split(' ')[1]);
  const frames = {
    podOut: file('pod-out', tcpFrame(A.ip, B.ip, 41000, 5001, 0x10)),
    svcOut: file('svc-out', tcpFrame(A.ip, VIP, 41001, 80, 0x10)),
    podReply: file('pod-reply', tcpFrame(B.ip, A.ip, 5001, 41000, 0x10)),
    svcReply: file('svc-reply', tcpFrame(B.ip, A.ip, 5001, 41001, 0x10)),
  };
  // Open both flows (conntrack, and the translation).
  run('from_pod', file('pod-syn', tcpFrame(A.ip, B.ip, 41000, 5001, 0x02)));
  run('from_pod', file('svc-syn', tcpFrame(A.ip, VIP, 41001, 80, 0x02)));
  const t: Record<string, number[]> = { podOut: [], svcOut: [], podReply: [], svcReply: [] };
  for (let i = 0; i < runs; i++) {
    t.podOut!.push(run('from_pod', frames.podOut));
    t.svcOut!.push(run('from_pod', frames.svcOut));
    t.podReply!.push(run('to_pod', frames.podReply));
    t.svcReply!.push(run('to_pod', frames.svcReply));
  }
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench-service: needs root (BPF, network namespaces)');
    process.exit(2);
  }
  const started = Date.now();
  const rrBin = join(tmp, 'rr');
  sh('cc', ['-O2', '-o', rrBin, join(repo, 'bpf', 'tools', 'rr.c')]);
  let server: ChildProcess | undefined;
  const dp = new LinuxDatapath({ bpffsRoot: bpffs, netns: NODE, reload: true });
  try {
    setupNet();
    server = await startServer(rrBin);
    await dp.init();
    const eps: EndpointEntry[] = [A, B].map((p) => ({ ifindex: p.ifindex, endpointId: p.id, identity: p.identity,
      ipv4: p.ip, ingressEnforced: true, egressEnforced: true }));
    const policy: PolicyEntry[] = [
      { endpointId: A.id, direction: 'egress', peer: B.identity, protocol: 6, port: 5001, endPort: 5001, ruleId: 1, proxyPort: 0 },
      { endpointId: B.id, direction: 'ingress', peer: A.identity, protocol: 6, port: 5001, endPort: 5001, ruleId: 2, proxyPort: 0 },
    ];
    await dp.apply({ upsert: { ...emptyState(), endpoints: eps, policy,
      ipcache: [{ cidr: `${GW}/32`, identity: 1 }, { cidr: `${A.ip}/32`, identity: A.identity }, { cidr: `${B.ip}/32`, identity: B.identity }] },
    delete: emptyState() });
    await dp.applyServices([...fillerServices(),
      { name: 'bench/b', ip: VIP, port: 80, protocol: 6, affinityTimeoutSec: 0, backends: [{ ip: B.ip, port: 5001 }] }]);
    await dp.attach(A.ifindex);
    await dp.attach(B.ifindex);

    const measure = (host: string, port: string): Sample => ({
      rr: Number(inNs(A.ns, rrBin, ['rr', host, port, String(SECONDS)]).trim()),
      crr: Number(inNs(A.ns, rrBin, ['crr', host, port, String(SECONDS)]).trim()),
    });
    const pod: Sample[] = [];
    const svc: Sample[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ['pod', 'service'] : ['service', 'pod'];
      for (const o of order) {
        const s = o === 'pod' ? measure(B.ip, '5001') : measure(VIP, '80');
        (o === 'pod' ? pod : svc).push(s);
        console.error(`round ${r + 1} ${o}: rr ${s.rr}/s crr ${s.crr}/s`);
      }
    }
    const cost = packetCost((name) => join(bpffs, 'palisade', 'progs', name), A.ifindex, 101);
    const counters = await dp.serviceCounters();
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    const paired = (f: (x: Sample) => number) => r3(median(svc.map((x, i) => f(x) / f(pod[i]!))));
    const result = {
      machine: { cpus: osCpus().length, kernel: sh('uname', ['-r']).trim() },
      rounds: ROUNDS, seconds: SECONDS, frontends: FILLER_SERVICES + 1,
      podIp: { rr: median(pod.map((x) => x.rr)), crr: median(pod.map((x) => x.crr)) },
      clusterIp: { rr: median(svc.map((x) => x.rr)), crr: median(svc.map((x) => x.crr)) },
      ratio: { rr: paired((x) => x.rr), crr: paired((x) => x.crr) },
      targets: { rr: '>= 0.95', crr: '>= 0.9' },
      packetNs: cost,
      counters,
      durationS: Math.round((Date.now() - started) / 1000),
    };
    mkdirSync(join(repo, 'bench', 'out'), { recursive: true });
    writeFileSync(join(repo, 'bench', 'out', 'service.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log('\nTCP between two pod namespaces, both isolated, flow allowed (medians; ratios paired per round)');
    console.log('target        rr/s     crr/s');
    console.log(`pod IP     ${String(result.podIp.rr).padStart(8)} ${String(result.podIp.crr).padStart(8)}`);
    console.log(`ClusterIP  ${String(result.clusterIp.rr).padStart(8)} ${String(result.clusterIp.crr).padStart(8)}`);
    console.log(`\nClusterIP / pod IP: rr ${result.ratio.rr} (target >= 0.95), crr ${result.ratio.crr} (target >= 0.9)`);
    console.log(`per packet (BPF_PROG_TEST_RUN, one cold run per call, median ns): from_pod pod IP ${cost.podOut} / ClusterIP ${cost.svcOut}; ` +
      `to_pod reply ${cost.podReply} / reversed ${cost.svcReply}`);
    console.log(`translations: ${counters.newFlows} flows, ${counters.translated} packets out, ${counters.reversed} replies`);
    console.log(`wrote bench/out/service.json (${result.durationS} s)`);
  } finally {
    server?.kill('SIGKILL');
    await dp.close();
    for (const ns of [A.ns, B.ns, NODE]) quiet('ip', ['netns', 'del', ns]);
    quiet('umount', [bpffs]);
    rmSync(bpffs, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
