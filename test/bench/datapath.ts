/**
 * `make bench-datapath`: what the datapath costs.
 *
 * 1. Decision cost per packet: BPF_PROG_TEST_RUN (repeat N) of to_pod with 100, 10k and
 *    100k policy entries, against a pass-through program, for two packets:
 *    - deny: a full evaluation where every lookup misses (peer, any peer, CIDR): the
 *      worst case of a new flow; "decision" = its cost minus the pass-through's;
 *    - allow: a forward packet of an established flow (the conntrack verdict cache hits
 *      after the first repeat): what most packets cost.
 *    Target: decision cost at 100k <= 1.3x at 100.
 * 2. Sockets between two pod namespaces joined through a node namespace: TCP
 *    request/response rate (rr), connection rate (crr) and one-flow stream throughput
 *    (iperf3), for: no program, Palisade with 0 entries (registered, not enforced),
 *    Palisade with 10k entries (both pods isolated, the flow allowed), and an iptables
 *    translation of the same 10k rules with conntrack. Target: Palisade 10k >= 0.95x of
 *    no program.
 *
 * Every configuration is measured in interleaved rounds (the order rotates each round, so
 * no configuration always runs first); medians are reported, and ratios to "no program"
 * are medians of per-round ratios.
 * Writes bench/out/datapath.json. Env: BENCH_ROUNDS (default 7), BENCH_SECONDS (default 1),
 * BENCH_PIN_CPUS=1 (see below).
 * Needs root. Everything is created in private namespaces and a private bpffs, and removed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diffState } from '../../pkg/datapath/diff.ts';
import { LinuxDatapath } from '../../pkg/datapath/linux/datapath.ts';
import { emptyState, type DatapathState, type EndpointEntry, type PolicyEntry } from '../../pkg/datapath/types.ts';
import { startInNetns, wirePods } from '../helpers/netns.ts';
import { envCount, inNs, median, quiet, sh, tcpFrame } from './lib.ts';

const repo = new URL('../../', import.meta.url).pathname.replace(/\/dist\/$/, '/');
const helper = join(repo, 'bin', 'palisade-bpf');
const ROUNDS = envCount('BENCH_ROUNDS', 7);
const SECONDS = envCount('BENCH_SECONDS', 1);
const TEST_RUN_REPEAT = 200_000;
const prefix = `pbd${process.pid % 10000}`;
const tmp = mkdtempSync(join(tmpdir(), `${prefix}-`));
const bpffs = join('/tmp', `${prefix}-bpffs`);

/** `count` policy entries spread over 100 endpoints (ids 1..100), exact ports, ranges, all-ports. */
function fillerPolicy(count: number, firstEndpoint = 1): PolicyEntry[] {
  const out: PolicyEntry[] = [];
  for (let i = 0; out.length < count; i++) {
    const port = 1024 + ((i * 7919) % 60000);
    const kind = i % 10;
    out.push({
      endpointId: firstEndpoint + (i % 100), direction: i % 2 ? 'egress' : 'ingress',
      peer: 10_000 + ((i * 31) % 5000), protocol: i % 4 === 3 ? 17 : 6,
      port: kind === 9 ? 0 : port, endPort: kind === 9 ? 0 : kind < 6 ? port : Math.min(65535, port + kind * 37),
      ruleId: i + 1, proxyPort: 0,
    });
  }
  return out;
}

// ---- part 1: decision cost -----------------------------------------------------------------

interface CostRow { entries: number; passNs: number; allowNs: number; denyNs: number; decisionNs: number; establishedNs: number }

async function decisionCost(): Promise<CostRow[]> {
  const ns = `${prefix}d`;
  sh('ip', ['netns', 'add', ns]);
  try {
    inNs(ns, 'ip', ['link', 'add', 'dev0', 'type', 'veth', 'peer', 'name', 'dev1']);
    const ifindex = Number(inNs(ns, 'cat', ['/sys/class/net/dev0/ifindex']).trim());
    const dp = new LinuxDatapath({ bpffsRoot: bpffs });
    await dp.init();
    const progs = join(bpffs, 'palisade', 'progs');
    sh(helper, ['load', join(repo, 'bpf', 'out', 'passthrough.o'), join(progs, 'bench_pass'), join(bpffs, 'palisade', 'maps')]);
    const allowFile = join(tmp, 'allow.bin');
    const denyFile = join(tmp, 'deny.bin');
    writeFileSync(allowFile, tcpFrame('10.1.0.2', '10.2.0.1', 40000, 8080, 0x10));
    writeFileSync(denyFile, tcpFrame('10.1.0.3', '10.2.0.1', 40000, 8080, 0x10));
    const run = (prog: string, file: string): number => {
      const out = sh('nsenter', [`--net=/run/netns/${ns}`, '--', helper, 'test-run', join(progs, prog), file,
        String(ifindex), String(TEST_RUN_REPEAT)]);
      return Number(out.trim().split(' ')[1]);
    };
    let applied = emptyState();
    const rows: CostRow[] = [];
    for (const entries of [100, 10_000, 100_000]) {
      const desired: DatapathState = {
        endpoints: [{ ifindex, endpointId: 1, identity: 500, ipv4: '10.2.0.1', ingressEnforced: true, egressEnforced: true }],
        ipcache: [{ cidr: '10.1.0.2/32', identity: 5000 }, { cidr: '10.1.0.3/32', identity: 5001 },
          { cidr: '10.2.0.1/32', identity: 500 }],
        policy: [...fillerPolicy(entries - 1, 1),
          { endpointId: 1, direction: 'ingress', peer: 5000, protocol: 6, port: 8080, endPort: 8080, ruleId: 42, proxyPort: 0 }],
        cidrs: [],
      };
      const t0 = Date.now();
      await dp.apply(diffState(desired, applied));
      const applyMs = Date.now() - t0;
      applied = desired;
      run('to_pod', allowFile); // warm: creates the conntrack entry
      const pass: number[] = [];
      const allow: number[] = [];
      const deny: number[] = [];
      for (let r = 0; r < ROUNDS * 3; r++) {
        pass.push(run('bench_pass', allowFile));
        allow.push(run('to_pod', allowFile));
        deny.push(run('to_pod', denyFile));
      }
      const row = { entries, passNs: median(pass), allowNs: median(allow), denyNs: median(deny), decisionNs: 0, establishedNs: 0 };
      row.decisionNs = row.denyNs - row.passNs;
      row.establishedNs = row.allowNs - row.passNs;
      rows.push(row);
      console.error(`decision: ${entries} entries applied in ${applyMs} ms: pass ${row.passNs} ns, allow ${row.allowNs} ns, deny ${row.denyNs} ns`);
    }
    await dp.apply(diffState(emptyState(), applied));
    await dp.close();
    return rows;
  } finally {
    quiet('ip', ['netns', 'del', ns]);
  }
}

// ---- part 2: sockets ------------------------------------------------------------------------

type Config = 'none' | 'palisade-0' | 'palisade-10k' | 'iptables-10k';
interface NetSample { rr: number; crr: number; streamGbps: number }
/** Medians of the raw values, and medians of the per-round ratios to "none" (paired). */
interface NetRow extends NetSample { config: Config; rrVsNone: number; crrVsNone: number; streamVsNone: number }

const GW = '10.98.0.1';
const A = { ns: `${prefix}a`, ip: '10.98.0.10', hostIf: 'hosta', id: 201, identity: 3001, ifindex: 0 };
const B = { ns: `${prefix}b`, ip: '10.98.0.20', hostIf: 'hostb', id: 202, identity: 3002, ifindex: 0 };
const NODE = `${prefix}n`;

function setupNet(): void {
  wirePods(NODE, GW, [A, B]);
}

/**
 * BENCH_PIN_CPUS=1 pins client and server to different CPUs: left to the scheduler, a
 * 1-byte request/response swings by up to 3x between "same CPU" and "other CPU"
 * placements; on a machine shared with other jobs, pinning makes it worse (measured), so
 * it is off by default.
 */
const cpus = (await import('node:os')).cpus().length;
const PIN = process.env.BENCH_PIN_CPUS === '1';
const CLIENT_CPU = '0';
const SERVER_CPU = String(cpus > 1 ? 1 : 0);
const pinned = (cpu: string, cmd: string, args: string[]): [string, string[]] =>
  PIN ? ['taskset', ['-c', cpu, cmd, ...args]] : [cmd, args];

function startServer(cmd: string, args: string[], readyLine: boolean): Promise<ChildProcess> {
  const [c, a] = pinned(SERVER_CPU, cmd, args);
  if (readyLine) return startInNetns(B.ns, c, a, { what: cmd, timeoutMs: 5000, stderr: 'ignore' });
  const p = spawn('ip', ['netns', 'exec', B.ns, c, ...a], { stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((res) => setTimeout(() => res(p), 300));
}

/** Entries for the socket benchmark: A may reach B on 5001 and 5201, among `total` others. */
function netPolicy(total: number): PolicyEntry[] {
  const mk = (endpointId: number, direction: 'ingress' | 'egress', peer: number, port: number): PolicyEntry =>
    ({ endpointId, direction, peer, protocol: 6, port, endPort: port, ruleId: port, proxyPort: 0 });
  const needed = [mk(A.id, 'egress', B.identity, 5001), mk(A.id, 'egress', B.identity, 5201),
    mk(B.id, 'ingress', A.identity, 5001), mk(B.id, 'ingress', A.identity, 5201)];
  // Endpoint ids 103..202: A (201) and B (202) get their share of the filler too.
  return [...fillerPolicy(total - needed.length, 103), ...needed];
}

/** iptables translation of the same rules: per-endpoint chains, conntrack first. */
function iptablesRules(policy: PolicyEntry[]): string {
  const chains = new Map<string, string[]>();
  const devOf = (id: number) => (id === A.id ? A.hostIf : id === B.id ? B.hostIf : `fake${id}`);
  const ipOf = (peer: number) => (peer === A.identity ? A.ip : peer === B.identity ? B.ip
    : `10.${200 + (peer >> 16) % 50}.${(peer >> 8) & 255}.${peer & 255}`);
  for (const e of policy) {
    const chain = `PAL-${e.endpointId}-${e.direction === 'ingress' ? 'IN' : 'OUT'}`;
    const peerMatch = e.direction === 'ingress' ? ['-s', ipOf(e.peer)] : ['-d', ipOf(e.peer)];
    const proto = e.protocol === 17 ? 'udp' : 'tcp';
    const ports = e.port === 0 ? [] : ['--dport', e.endPort > e.port ? `${e.port}:${e.endPort}` : String(e.port)];
    const rules = chains.get(chain) ?? [];
    rules.push([`-A ${chain}`, ...peerMatch, '-p', proto, ...(ports.length ? ['-m', proto, ...ports] : []), '-j RETURN'].join(' '));
    chains.set(chain, rules);
  }
  const lines = ['*filter', ':FORWARD ACCEPT [0:0]'];
  for (const c of chains.keys()) lines.push(`:${c} - [0:0]`);
  lines.push('-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT');
  const ids = [...new Set(policy.map((e) => e.endpointId))].sort((x, y) => Number(x === A.id || x === B.id) - Number(y === A.id || y === B.id));
  for (const id of ids) {
    if (chains.has(`PAL-${id}-OUT`)) lines.push(`-A FORWARD -i ${devOf(id)} -j PAL-${id}-OUT`);
    if (chains.has(`PAL-${id}-IN`)) lines.push(`-A FORWARD -o ${devOf(id)} -j PAL-${id}-IN`);
  }
  for (const [c, rules] of chains) {
    // The allowing rules of A and B go last: a new flow walks the whole chain.
    const sorted = [...rules].sort((x, y) => Number(/5001|5201/.test(x)) - Number(/5001|5201/.test(y)));
    lines.push(...sorted, `-A ${c} -j DROP`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

async function netBench(rrBin: string): Promise<NetRow[]> {
  setupNet();
  const servers: ChildProcess[] = [];
  const dp = new LinuxDatapath({ bpffsRoot: bpffs, netns: NODE });
  try {
    servers.push(await startServer(rrBin, ['server', '5001'], true));
    servers.push(await startServer('iperf3', ['-s', '-p', '5201'], false));
    await dp.init();
    const policy10k = netPolicy(10_000);
    const rulesFile = join(tmp, 'iptables.rules');
    writeFileSync(rulesFile, iptablesRules(policy10k));
    const ipcache = [{ cidr: `${GW}/32`, identity: 1 }, { cidr: `${A.ip}/32`, identity: A.identity },
      { cidr: `${B.ip}/32`, identity: B.identity }];
    const eps = (enforced: boolean): EndpointEntry[] => [A, B].map((p) => ({ ifindex: p.ifindex, endpointId: p.id,
      identity: p.identity, ipv4: p.ip, ingressEnforced: enforced, egressEnforced: enforced }));
    let applied = emptyState();
    const setState = async (s: DatapathState) => { await dp.apply(diffState(s, applied)); applied = s; };

    const configure = async (c: Config) => {
      quiet('ip', ['netns', 'exec', NODE, 'iptables', '-F']);
      quiet('ip', ['netns', 'exec', NODE, 'iptables', '-X']);
      if (c === 'none' || c === 'iptables-10k') {
        await dp.detach(A.ifindex);
        await dp.detach(B.ifindex);
        if (c === 'iptables-10k') inNs(NODE, 'iptables-restore', [rulesFile]);
        return;
      }
      await setState(c === 'palisade-0'
        ? { ...emptyState(), endpoints: eps(false), ipcache }
        : { endpoints: eps(true), ipcache, policy: policy10k, cidrs: [] });
      await dp.attach(A.ifindex);
      await dp.attach(B.ifindex);
    };
    const measure = (): NetSample => {
      const client = (cmd: string, args: string[]) => inNs(A.ns, ...pinned(CLIENT_CPU, cmd, args));
      const rr = Number(client(rrBin, ['rr', B.ip, '5001', String(SECONDS)]).trim());
      const crr = Number(client(rrBin, ['crr', B.ip, '5001', String(SECONDS)]).trim());
      const j = JSON.parse(client('iperf3', ['-c', B.ip, '-p', '5201', '-t', String(SECONDS), '-J'])) as
        { end: { sum_received: { bits_per_second: number } } };
      return { rr, crr, streamGbps: j.end.sum_received.bits_per_second / 1e9 };
    };

    const configs: Config[] = ['none', 'palisade-0', 'palisade-10k', 'iptables-10k'];
    const samples = new Map<Config, NetSample[]>(configs.map((c) => [c, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of [...configs.slice(r % configs.length), ...configs.slice(0, r % configs.length)]) {
        await configure(c);
        const m = measure();
        samples.get(c)!.push(m);
        console.error(`round ${r + 1} ${c}: rr ${m.rr}/s crr ${m.crr}/s stream ${m.streamGbps.toFixed(2)} Gbit/s`);
      }
    }
    await configure('none');
    await setState(emptyState());
    // Ratios are taken within a round (configurations measured seconds apart) and then
    // the median over rounds: the background load of a shared machine drifts over
    // minutes, and pairing cancels most of it.
    const none = samples.get('none')!;
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    return configs.map((c) => {
      const s = samples.get(c)!;
      const paired = (f: (x: NetSample) => number) => r3(median(s.map((x, i) => f(x) / f(none[i]!))));
      return { config: c, rr: median(s.map((x) => x.rr)), crr: median(s.map((x) => x.crr)),
        streamGbps: median(s.map((x) => x.streamGbps)),
        rrVsNone: paired((x) => x.rr), crrVsNone: paired((x) => x.crr), streamVsNone: paired((x) => x.streamGbps) };
    });
  } finally {
    for (const s of servers) s.kill('SIGKILL');
    await dp.close();
    for (const ns of [A.ns, B.ns, NODE]) quiet('ip', ['netns', 'del', ns]);
  }
}

// ---- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench-datapath: needs root (BPF, network namespaces)');
    process.exit(2);
  }
  const started = Date.now();
  const rrBin = join(tmp, 'rr');
  sh('cc', ['-O2', '-o', rrBin, join(repo, 'bpf', 'tools', 'rr.c')]);
  try {
    const cost = await decisionCost();
    const net = await netBench(rrBin);
    const base = cost[0]!;
    const ratio = (x: number, y: number) => Math.round((x / y) * 1000) / 1000;
    const result = {
      machine: { cpus, kernel: sh('uname', ['-r']).trim(), pinnedCpus: PIN },
      rounds: ROUNDS, seconds: SECONDS, testRunRepeat: TEST_RUN_REPEAT,
      decision: cost.map((r) => ({ ...r, decisionVs100: ratio(r.decisionNs, base.decisionNs),
        establishedVs100: ratio(r.establishedNs, base.establishedNs) })),
      sockets: net,
      targets: {
        decision100kVs100: { value: ratio(cost[2]!.decisionNs, base.decisionNs), target: '<= 1.3' },
        palisade10kVsNone: (() => {
          const p = net.find((r) => r.config === 'palisade-10k')!;
          return { rr: p.rrVsNone, crr: p.crrVsNone, stream: p.streamVsNone, target: '>= 0.95' };
        })(),
      },
      durationS: Math.round((Date.now() - started) / 1000),
    };
    mkdirSync(join(repo, 'bench', 'out'), { recursive: true });
    writeFileSync(join(repo, 'bench', 'out', 'datapath.json'), `${JSON.stringify(result, null, 2)}\n`);

    console.log('\ncost per packet (BPF_PROG_TEST_RUN, median ns; decision = full evaluation - pass-through)');
    console.log('entries   pass   established   full(deny)   decision   vs 100   established vs 100');
    for (const r of result.decision) {
      console.log(`${String(r.entries).padStart(7)} ${String(r.passNs).padStart(6)} ${String(r.allowNs).padStart(13)} ` +
        `${String(r.denyNs).padStart(12)} ${String(r.decisionNs).padStart(10)} ${String(r.decisionVs100).padStart(7)}x ` +
        `${String(r.establishedVs100).padStart(12)}x`);
    }
    console.log('\nsockets between two pod namespaces (medians; ratios paired per round)');
    console.log('config          rr/s     crr/s   stream Gbit/s   rr    crr   stream (vs none)');
    for (const r of result.sockets) {
      console.log(`${r.config.padEnd(13)} ${String(r.rr).padStart(7)} ${String(r.crr).padStart(8)} ${r.streamGbps.toFixed(2).padStart(10)}` +
        `      ${r.rrVsNone.toFixed(2)}  ${r.crrVsNone.toFixed(2)}  ${r.streamVsNone.toFixed(2)}`);
    }
    console.log(`\ntargets: decision 100k/100 = ${result.targets.decision100kVs100.value} (<= 1.3); ` +
      `palisade-10k/none rr ${result.targets.palisade10kVsNone.rr}, crr ${result.targets.palisade10kVsNone.crr}, ` +
      `stream ${result.targets.palisade10kVsNone.stream} (>= 0.95)`);
    console.log(`wrote bench/out/datapath.json (${result.durationS} s)`);
  } finally {
    quiet('umount', [bpffs]);
    rmSync(bpffs, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
