// `make bench-cni`: CNI ADD and DEL latency of palisade (shim + agent with the real
// datapath) side by side with the reference ptp + host-local plugins, in one run, on the
// same machine, each inside its own private "node" namespace. Writes bench/out/cni.json.
//
// Measured per operation: wall time from spawning the plugin until it exits, as a
// runtime sees it. For palisade also the shim's own share (process start until its
// request left, from PALISADE_CNI_TIMING) and the agent round trip.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../../../', import.meta.url).pathname.replace(/\/dist\/?$/, '/');
const REPO = existsSync(join(ROOT, 'package.json')) ? ROOT : new URL('../../../../', import.meta.url).pathname;
const SHIM = join(REPO, 'bin/palisade-cni');
const AGENT = join(REPO, 'dist/cmd/palisade-agent.js');
const REF_DIR = '/usr/lib/cni';
const N = Number(process.env.BENCH_CNI_N ?? 100);
const CONCURRENCY = 10;
const TARGETS = { seqP50: 60, seqP99: 150, concP99: 500 };

interface Run { code: number; stdout: string; stderr: string; ms: number }

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, input = ''): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => resolve({ code: -1, stdout: '', stderr: e.message, ms: 0 }));
    child.on('close', (code) => resolve({
      code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(),
      ms: Number(process.hrtime.bigint() - t0) / 1e6,
    }));
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

async function must(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

function summary(xs: number[]) {
  return { n: xs.length, p50: +pct(xs, 50).toFixed(2), p99: +pct(xs, 99).toFixed(2), max: +Math.max(...xs).toFixed(2) };
}

async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

interface Plugin {
  name: string;
  /** Runs one command for pod i; returns the wall time and, for palisade, the shim timing. */
  call(cmd: 'ADD' | 'DEL', i: number): Promise<Run>;
}

const tag = `bcni${process.pid % 10000}`;
const dir = mkdtempSync(join(tmpdir(), `${tag}-`));
const nodes = { pal: `${tag}pal`, ref: `${tag}ref` };
const pods = Array.from({ length: N }, (_, i) => `${tag}p${i}`);
let agent: ChildProcess | undefined;
const bpffs = join(dir, 'bpffs');
let mounted = false;

function get(socket: string, path: string): Promise<number> {
  return new Promise((resolve) => {
    const r = request({ socketPath: socket, path, timeout: 2000 }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    r.on('error', () => resolve(0));
    r.end();
  });
}

async function setup(): Promise<{ pal: Plugin; ref: Plugin }> {
  for (const n of Object.values(nodes)) {
    await must('ip', ['netns', 'add', n]);
    await must('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
  }
  for (const p of pods) await must('ip', ['netns', 'add', p]);
  mkdirSync(bpffs);
  await must('mount', ['-t', 'bpf', 'bpf', bpffs]);
  mounted = true;
  const socket = join(dir, 'cni.sock');
  agent = spawn('nsenter', [`--net=/var/run/netns/${nodes.pal}`, process.execPath, AGENT, '--standalone',
    '--node-name', 'bench', '--pod-cidr', '10.200.0.0/16', '--state-dir', join(dir, 'state'),
    '--api-socket', socket, '--bpffs-root', bpffs, '--log-level', 'debug',
    // BENCH_CNI_DATAPATH=none isolates the CNI path from the eBPF attach cost.
    '--datapath', process.env.BENCH_CNI_DATAPATH ?? 'linux',
    // BENCH_CNI_ATTACH=tcx|clsact overrides the agent's default attach mode.
    ...(process.env.BENCH_CNI_ATTACH ? ['--attach', process.env.BENCH_CNI_ATTACH] : [])],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  collectAgentLog(agent);
  for (let i = 0; i < 300 && (await get(socket, '/readyz')) !== 200; i++) await new Promise((r) => setTimeout(r, 100));
  if ((await get(socket, '/readyz')) !== 200) throw new Error('agent did not become ready');

  const palConf = JSON.stringify({ cniVersion: '1.1.0', name: 'benchpal', type: 'palisade', agentSocket: socket });
  const refConf = JSON.stringify({
    cniVersion: '1.0.0', name: 'benchref', type: 'ptp', ipMasq: false, mtu: 1500,
    ipam: { type: 'host-local', subnet: '10.201.0.0/16', dataDir: join(dir, 'host-local') },
  });
  const env = (cmd: string, i: number, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: `bench${i}`, CNI_NETNS: `/var/run/netns/${pods[i]}`,
    CNI_IFNAME: 'eth0', CNI_PATH: REF_DIR, CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=p${i}`, ...extra,
  });
  // Both plugins are started the same way: from the node namespace (the reference
  // plugins create the host veth where they run; palisade's shim does not care).
  return {
    pal: {
      name: 'palisade',
      call: (cmd, i) => run('nsenter', [`--net=/var/run/netns/${nodes.pal}`, SHIM],
        env(cmd, i, { PALISADE_CNI_TIMING: '1' }), palConf),
    },
    ref: {
      name: 'ptp+host-local',
      call: (cmd, i) => run('nsenter', [`--net=/var/run/netns/${nodes.ref}`, join(REF_DIR, 'ptp')], env(cmd, i), refConf),
    },
  };
}

async function teardown(): Promise<void> {
  if (agent && agent.exitCode === null) {
    const done = new Promise((r) => agent!.once('exit', r));
    agent.kill('SIGTERM');
    await done;
  }
  for (const p of pods) await run('ip', ['netns', 'del', p]);
  for (const n of Object.values(nodes)) await run('ip', ['netns', 'del', n]);
  if (mounted) await run('umount', [bpffs]);
  rmSync(dir, { recursive: true, force: true });
}

/** The agent's per-phase debug timings of ADD/DEL, by operation and phase name. */
type PhaseLog = { add: Map<string, number[]>; del: Map<string, number[]> };
const agentPhases: Record<'sequential' | 'concurrent', PhaseLog> = {
  sequential: { add: new Map(), del: new Map() },
  concurrent: { add: new Map(), del: new Map() },
};
let recordPhases: 'sequential' | 'concurrent' | undefined;

/** Keeps the agent's timing lines; forwards its warnings and errors. */
function collectAgentLog(child: ChildProcess): void {
  let buf = '';
  child.stderr!.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      // BENCH_CNI_AGENT_LOG=FILE keeps every agent line (the debug timings of each ADD/DEL).
      if (process.env.BENCH_CNI_AGENT_LOG) appendFileSync(process.env.BENCH_CNI_AGENT_LOG, `${line}\n`);
      let rec: Record<string, unknown>;
      try { rec = JSON.parse(line) as Record<string, unknown>; } catch { process.stderr.write(`${line}\n`); continue; }
      const http = rec.msg === 'cni request timings (ms)';
      const op = rec.msg === 'endpoint add timings (ms)' || (http && rec.command === 'ADD') ? 'add'
        : rec.msg === 'endpoint del timings (ms)' || (http && rec.command === 'DEL') ? 'del' : undefined;
      if (op) {
        if (!recordPhases) continue;
        const log = agentPhases[recordPhases];
        for (const [k, v] of Object.entries(rec)) {
          if (k === 'command') continue;
          if (typeof v !== 'number') continue;
          const xs = log[op].get(k) ?? [];
          xs.push(v);
          log[op].set(k, xs);
        }
      } else if (rec.level === 'warn' || rec.level === 'error') {
        process.stderr.write(`${line}\n`);
      }
    }
  });
}

interface Phase {
  add: number[]; del: number[]; shimMs: number[]; agentMs: number[]; outsideMs: number[];
  /** Shim clock: connected - sent, first byte of the answer - connected, total - first byte. */
  connectMs: number[]; waitMs: number[]; afterMs: number[];
}

function shimTiming(stderr: string): { sent?: number; agent?: number; total?: number; connected?: number; firstByte?: number } {
  const m = /requestSentMs=([\d.]+) agentMs=([\d.]+) totalMs=([\d.]+)(?: connectedMs=([\d.]+) firstByteMs=([\d.]+))?/.exec(stderr);
  return m ? {
    sent: Number(m[1]), agent: Number(m[2]), total: Number(m[3]),
    connected: m[4] === undefined ? undefined : Number(m[4]), firstByte: m[5] === undefined ? undefined : Number(m[5]),
  } : {};
}

async function phase(p: Plugin, concurrency: number): Promise<Phase> {
  const out: Phase = { add: [], del: [], shimMs: [], agentMs: [], outsideMs: [], connectMs: [], waitMs: [], afterMs: [] };
  const idx = pods.map((_, i) => i);
  for (const cmd of ['ADD', 'DEL'] as const) {
    await pool(idx, concurrency, async (i) => {
      const r = await p.call(cmd, i);
      if (r.code !== 0) throw new Error(`${p.name} ${cmd} pod ${i}: ${r.stdout}${r.stderr}`);
      (cmd === 'ADD' ? out.add : out.del).push(r.ms);
      const t = shimTiming(r.stderr);
      if (t.sent !== undefined) out.shimMs.push(t.sent);
      if (t.agent !== undefined) out.agentMs.push(t.agent);
      // Wall time Node's clock does not see: nsenter, the sh launcher, process exit.
      if (t.total !== undefined) out.outsideMs.push(r.ms - t.total);
      if (cmd === 'ADD' && t.sent !== undefined && t.connected && t.firstByte && t.total !== undefined) {
        out.connectMs.push(t.connected - t.sent);
        out.waitMs.push(t.firstByte - t.connected);
        out.afterMs.push(t.total - t.firstByte);
      }
    });
  }
  return out;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench-cni: needs root (network namespaces, bpffs); skipped');
    process.exit(0);
  }
  if (!existsSync(join(REF_DIR, 'ptp')) || !existsSync(join(REF_DIR, 'host-local'))) {
    throw new Error(`reference plugins missing in ${REF_DIR} (containernetworking-plugins)`);
  }
  const plugins = await setup();
  // Warm-up (fills the shim's compile cache and page cache for both).
  for (const p of [plugins.pal, plugins.ref]) {
    await p.call('ADD', 0);
    await p.call('DEL', 0);
  }
  const results: Record<string, Record<string, Phase>> = { palisade: {}, reference: {} };
  // Interleave the plugins so that background load hits both alike.
  for (const [label, conc] of [['sequential', 1], ['concurrent', CONCURRENCY]] as const) {
    recordPhases = label;
    results.palisade![label] = await phase(plugins.pal, conc);
    recordPhases = undefined;
    results.reference![label] = await phase(plugins.ref, conc);
  }
  // Shim start-up with and without the V8 compile cache (STATUS: the cheapest request).
  const status = async (env: NodeJS.ProcessEnv) => {
    const xs: number[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await run(SHIM, [], { PATH: process.env.PATH, CNI_COMMAND: 'STATUS', PALISADE_CNI_TIMING: '1', ...env },
        JSON.stringify({ cniVersion: '1.1.0', name: 'benchpal', agentSocket: join(dir, 'cni.sock') }));
      const t = shimTiming(r.stderr);
      if (t.sent !== undefined) xs.push(t.sent);
    }
    return summary(xs);
  };
  const shimCache = await status({});
  const shimNoCache = await status({ NODE_DISABLE_COMPILE_CACHE: '1' });
  const bare = [];
  for (let i = 0; i < 30; i++) bare.push((await run(process.execPath, ['-e', '0'])).ms);

  const report = {
    when: new Date().toISOString(),
    n: N, concurrency: CONCURRENCY, targets: TARGETS,
    palisade: {} as Record<string, unknown>, reference: {} as Record<string, unknown>,
    ratio: {} as Record<string, number>,
    shim: {
      requestSentMs: summary(results.palisade!.sequential!.shimMs),
      agentRoundTripMs: summary(results.palisade!.sequential!.agentMs),
      /** Spawn-to-exit minus Node's own clock: launcher, nsenter, exit. */
      outsideNodeClockMs: summary(results.palisade!.sequential!.outsideMs),
      /** Sequential ADD on the shim's clock: connecting, waiting for the answer, printing it. */
      addConnectMs: summary(results.palisade!.sequential!.connectMs),
      addWaitForAnswerMs: summary(results.palisade!.sequential!.waitMs),
      addAfterAnswerMs: summary(results.palisade!.sequential!.afterMs),
      startupWithCompileCacheMs: shimCache,
      startupWithoutCompileCacheMs: shimNoCache,
      bareNodeProcessMs: summary(bare),
    },
    /** Inside the agent, sequential run: p50 per phase (ms); `*Overlapped` run beside another phase. */
    agentPhasesP50: Object.fromEntries((['sequential', 'concurrent'] as const).map((label) => [label,
      Object.fromEntries((['add', 'del'] as const).map((op) => [op,
        Object.fromEntries([...agentPhases[label][op]].map(([k, xs]) => [k, +pct(xs, 50).toFixed(2)]))]))])),
    /** Tails inside the agent (total per ADD/DEL), to tell them from the shims' CPU waits. */
    agentTotalP99: Object.fromEntries((['sequential', 'concurrent'] as const).map((label) => [label,
      Object.fromEntries((['add', 'del'] as const).map((op) => [op, +pct(agentPhases[label][op].get('total') ?? [], 99).toFixed(2)]))])),
    pass: {} as Record<string, boolean>,
  };
  console.log(`\nCNI latency, ms (${N} pods; wall time from spawn to exit)`);
  console.log('phase        op   palisade p50/p99     reference p50/p99    ratio p50');
  for (const label of ['sequential', 'concurrent'] as const) {
    for (const op of ['add', 'del'] as const) {
      const a = summary(results.palisade![label]![op]);
      const b = summary(results.reference![label]![op]);
      (report.palisade[`${label}.${op}`] = a);
      (report.reference[`${label}.${op}`] = b);
      const ratio = +(a.p50 / b.p50).toFixed(2);
      report.ratio[`${label}.${op}.p50`] = ratio;
      console.log(`${label.padEnd(12)} ${op.toUpperCase().padEnd(4)} ${`${a.p50} / ${a.p99}`.padEnd(20)} `
        + `${`${b.p50} / ${b.p99}`.padEnd(20)} ${ratio}x`);
    }
  }
  const seqAdd = report.palisade['sequential.add'] as { p50: number; p99: number };
  const concAdd = report.palisade['concurrent.add'] as { p99: number };
  report.pass = {
    seqP50: seqAdd.p50 <= TARGETS.seqP50, seqP99: seqAdd.p99 <= TARGETS.seqP99, concP99: concAdd.p99 <= TARGETS.concP99,
  };
  console.log(`\nshim share (process start until the request left): p50 ${report.shim.requestSentMs.p50} ms, `
    + `p99 ${report.shim.requestSentMs.p99} ms; agent round trip p50 ${report.shim.agentRoundTripMs.p50} ms; `
    + `launcher + exit (outside Node's clock) p50 ${report.shim.outsideNodeClockMs.p50} ms`);
  console.log(`sequential ADD on the shim's clock, p50: request sent at ${report.shim.requestSentMs.p50}, connect `
    + `${report.shim.addConnectMs.p50}, waiting for the answer ${report.shim.addWaitForAnswerMs.p50}, printing and exiting `
    + `${report.shim.addAfterAnswerMs.p50} (+ launcher/exit outside the clock)`);
  for (const label of ['sequential', 'concurrent'] as const) {
    for (const op of ['add', 'del'] as const) {
      console.log(`agent ${label} ${op.toUpperCase()} phases p50 (ms): ${Object.entries(report.agentPhasesP50[label]![op]!)
        .map(([k, v]) => `${k} ${v}`).join(', ')}; total p99 ${report.agentTotalP99[label]![op]}`);
    }
  }
  console.log(`shim start-up with compile cache p50 ${shimCache.p50} ms, without ${shimNoCache.p50} ms; `
    + `bare 'node -e 0' p50 ${report.shim.bareNodeProcessMs.p50} ms`);
  console.log(`targets (ADD): sequential p50 <= ${TARGETS.seqP50} ms ${report.pass.seqP50 ? 'met' : 'MISSED'}, `
    + `p99 <= ${TARGETS.seqP99} ms ${report.pass.seqP99 ? 'met' : 'MISSED'}; `
    + `concurrent p99 <= ${TARGETS.concP99} ms ${report.pass.concP99 ? 'met' : 'MISSED'}`);
  mkdirSync(join(REPO, 'bench/out'), { recursive: true });
  writeFileSync(join(REPO, 'bench/out/cni.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log('wrote bench/out/cni.json');
}

try {
  await main();
} finally {
  await teardown();
}
