/**
 * bench-l7: HTTP through the L7 proxy vs the same traffic under an L3/L4-only policy, in
 * one lab run (real agent, datapath redirect, pods on one node). Rounds alternate the two
 * policies (L4, L7, L4, L7, ...) and ratios are paired per round, so drift on this shared
 * machine hits both sides alike.
 *
 * Each round measures, from a client pod to a server pod (the lab's Node.js HTTP server):
 * - latency: 1 keep-alive connection, sequential GETs: p50/p99 per request;
 * - throughput: 16 keep-alive connections, each sequential: requests/s in total.
 * Targets (issue 9): added p50 <= 0.5 ms; >= 5,000 requests/s through one proxy.
 *
 * Part 2, the datapath's share: BPF_PROG_TEST_RUN of the real programs in a private
 * netns and bpffs, L7 off vs on (pal_l7_config written): a conntrack reply leaving a pod
 * (from_pod; with L7 on it pays one socket lookup, for the proxy's upstream replies) and
 * a packet without a flow entering a pod (to_pod; one socket lookup).
 * Writes bench/out/l7.json. Needs root and `make build`.
 *
 * Internal: `l7.js --load IP PORT SECONDS CONNECTIONS` is the load generator, run by the
 * bench inside the client pod's network namespace; it prints one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createMapRef, objGet, RawMap } from 'bpf';
import { LinuxDatapath } from '../../pkg/datapath/linux/datapath.ts';
import { diffState } from '../../pkg/datapath/diff.ts';
import { emptyState, type DatapathState } from '../../pkg/datapath/types.ts';
import { tcpFrame } from './lib.ts';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Load { requests: number; errors: number; seconds: number; rps: number; p50: number; p99: number }

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/** N keep-alive connections, each sending the next GET when the previous answer is complete. */
async function load(host: string, port: number, seconds: number, connections: number): Promise<Load> {
  const req = Buffer.from('GET /bench HTTP/1.1\r\nHost: bench\r\n\r\n', 'latin1');
  const lat: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const one = (): Promise<void> => new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let sent = 0;
    const send = (): void => {
      if (performance.now() >= end) {
        s.destroy();
        resolve();
        return;
      }
      sent = performance.now();
      s.write(req);
    };
    s.on('connect', send);
    s.on('data', (c: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, c]) : c;
      for (;;) {
        const he = buf.indexOf('\r\n\r\n');
        if (he < 0) return;
        const headText = buf.toString('latin1', 0, he);
        const m = /content-length: *(\d+)/i.exec(headText);
        let total = he + 4 + (m ? Number(m[1]) : 0);
        if (!m && /transfer-encoding: *chunked/i.test(headText)) {
          // The lab's server answers with a small chunked body: up to the last chunk.
          const last = buf.indexOf('\r\n0\r\n\r\n', he);
          if (last < 0) return;
          total = last + 7;
        }
        if (buf.length < total) return;
        if (!headText.startsWith('HTTP/1.1 200')) errors++;
        buf = buf.subarray(total);
        lat.push(performance.now() - sent);
        send();
      }
    });
    s.on('error', () => { errors++; });
    s.on('close', () => resolve());
  });
  await Promise.all(Array.from({ length: connections }, one));
  const took = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { requests: lat.length, errors, seconds: took, rps: lat.length / took, p50: percentile(lat, 0.5), p99: percentile(lat, 0.99) };
}

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');

function sh(cmd: string, args: string[], timeout = 120_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 4).join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

interface CostResult { replyOffNs: number; replyOnNs: number; newFlowOffNs: number; newFlowOnNs: number }

/** Part 2: the per-packet cost of the L7 hooks (see the file comment). */
async function datapathCost(): Promise<CostResult> {
  const id = `pbl7${process.pid % 10000}`;
  const bpffs = join('/tmp', `${id}-bpffs`);
  const tmp = mkdtempSync(join(tmpdir(), 'bench-l7-dp-'));
  const helper = join(root, 'bin', 'palisade-bpf');
  mkdirSync(bpffs, { recursive: true });
  sh('ip', ['netns', 'add', id]);
  try {
    sh('ip', ['netns', 'exec', id, 'ip', 'link', 'add', 'dev0', 'type', 'veth', 'peer', 'name', 'dev1']);
    const ifindex = Number(sh('ip', ['netns', 'exec', id, 'cat', '/sys/class/net/dev0/ifindex']).trim());
    const dp = new LinuxDatapath({ bpffsRoot: bpffs });
    await dp.init();
    const state: DatapathState = {
      endpoints: [{ ifindex, endpointId: 1, identity: 500, ipv4: '10.2.0.1', ingressEnforced: true, egressEnforced: true }],
      ipcache: [{ cidr: '10.1.0.2/32', identity: 5000 }, { cidr: '10.2.0.1/32', identity: 500 }],
      policy: [{ endpointId: 1, direction: 'ingress', peer: 5000, protocol: 6, port: 80, endPort: 80, ruleId: 42, proxyPort: 0 }],
      cidrs: [],
    };
    await dp.apply(diffState(state, emptyState()));
    const files = { fwd: join(tmp, 'fwd.bin'), reply: join(tmp, 'reply.bin'), stranger: join(tmp, 'stranger.bin') };
    writeFileSync(files.fwd, tcpFrame('10.1.0.2', '10.2.0.1', 40000, 80, 0x10));
    writeFileSync(files.reply, tcpFrame('10.2.0.1', '10.1.0.2', 80, 40000, 0x10));
    writeFileSync(files.stranger, tcpFrame('10.1.0.9', '10.2.0.1', 40001, 80, 0x10));
    const progs = join(bpffs, 'palisade', 'progs');
    const testRun = (prog: string, file: string): number => Number(sh('ip', ['netns', 'exec', id, helper, 'test-run',
      join(progs, prog), file, String(ifindex), '200000']).trim().split(' ')[1]);
    // The L7 program shares the maps; loading it creates pal_l7_config.
    sh(helper, ['load', join(root, 'bpf', 'out', 'l7_device.o'), join(progs, 'l7_device'), join(bpffs, 'palisade', 'maps')]);
    const config = (port: number): void => {
      const ref = createMapRef(objGet(join(bpffs, 'palisade', 'maps', 'pal_l7_config')), { transfer: true });
      const v = Buffer.alloc(12);
      v.writeUInt16LE(port, 0);
      v.writeUInt32LE(1, 8); // an ifindex is needed only when a packet is redirected
      new RawMap(ref).set(Buffer.alloc(4), v);
      ref.close();
    };
    testRun('to_pod', files.fwd); // the flow's conntrack entry
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const off = { reply: [] as number[], stranger: [] as number[] };
    const on = { reply: [] as number[], stranger: [] as number[] };
    for (let r = 0; r < 5; r++) {
      for (const [m, port] of [[off, 0], [on, 15001]] as const) {
        config(port);
        m.reply.push(testRun('from_pod', files.reply));
        m.stranger.push(testRun('to_pod', files.stranger));
      }
    }
    await dp.close();
    return { replyOffNs: med(off.reply), replyOnNs: med(on.reply), newFlowOffNs: med(off.stranger), newFlowOnNs: med(on.stranger) };
  } finally {
    spawnSync('ip', ['netns', 'del', id]);
    spawnSync('umount', [bpffs]);
    rmSync(bpffs, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const a = process.argv;
  if (a[2] === '--load') {
    const r = await load(a[3]!, Number(a[4]), Number(a[5]), Number(a[6]));
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  if (process.getuid?.() !== 0) {
    console.error('bench-l7: needs root (the lab builds network namespaces)');
    process.exit(2);
  }
  const cost = await datapathCost();
  console.log(`datapath (BPF_PROG_TEST_RUN, ns per packet): conntrack reply leaving a pod ${cost.replyOffNs} -> ${cost.replyOnNs} with L7 on; `
    + `packet without a flow entering a pod ${cost.newFlowOffNs} -> ${cost.newFlowOnNs}`);
  const rounds = Number(process.env.BENCH_L7_ROUNDS ?? 3);
  const seconds = Number(process.env.BENCH_L7_SECONDS ?? 3);
  const name = `bl7${process.pid % 10000}`;
  const tmp = mkdtempSync(join(tmpdir(), 'bench-l7-'));
  const lab = join(root, 'bin/palisade-lab');
  const kubeconfig = `/run/palisade-lab/${name}/kubeconfig`;
  const scenario = join(tmp, 'lab.yaml');
  writeFileSync(scenario, `name: ${name}
nodes: 1
namespaces: {x: {}}
pods:
  - {namespace: x, name: server, labels: {pod: server}, node: 0, ports: [{name: http, containerPort: 80}]}
  - {namespace: x, name: client, labels: {pod: client}, node: 0, ports: [{name: http, containerPort: 80}]}
steps: []
`);
  const l4 = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bench, namespace: x}
spec:
  podSelector: {matchLabels: {pod: server}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: client}}}], ports: [{port: 80}]}]
`;
  const l7 = `apiVersion: palisade.dev/v1alpha1
kind: PalisadeNetworkPolicy
metadata: {name: bench, namespace: x}
spec:
  podSelector: {matchLabels: {pod: server}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: client}}}], ports: [{port: 80, http: [{method: GET, path: /bench}]}]}]
`;
  const policies = { l4: join(tmp, 'l4.yaml'), l7: join(tmp, 'l7.yaml') };
  writeFileSync(policies.l4, l4);
  writeFileSync(policies.l7, l7);
  try {
    const out = JSON.parse(sh(lab, ['run', scenario, '--json', '--keep', '--name', name], 300_000)) as
      { pods: Record<string, { ip: string }> };
    const serverIp = out.pods['x/server']!.ip;
    const clientNs = `pl-${name}_p-x.client`;
    const kubectl = (args: string[]): string => sh('kubectl', ['--kubeconfig', kubeconfig, ...args]);
    const loadIn = (conns: number): Load => JSON.parse(sh('ip', ['netns', 'exec', clientNs, process.execPath,
      fileURLToPath(import.meta.url), '--load', serverIp, '80', String(seconds), String(conns)], 120_000)) as Load;
    /** Applies one policy and waits until a request shows it is in force. */
    const use = async (kind: 'l4' | 'l7'): Promise<void> => {
      kubectl(['delete', kind === 'l4' ? 'palisadenetworkpolicy' : 'networkpolicy', 'bench', '-n', 'x', '--ignore-not-found']);
      kubectl(['apply', '-f', policies[kind]]);
      const want = kind === 'l7' ? '403' : '200';
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const r = spawnSync('ip', ['netns', 'exec', clientNs, 'python3', '-c',
          `import socket;s=socket.create_connection(("${serverIp}",80),timeout=2);s.sendall(b"GET /other HTTP/1.1\\r\\nHost: b\\r\\nConnection: close\\r\\n\\r\\n");print(s.recv(64).split()[1].decode())`],
        { encoding: 'utf8', timeout: 5000 });
        if (r.stdout.trim() === want) return;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error(`policy ${kind} not in force after 30 s`);
    };
    const results: { round: number; l4: { lat: Load; tput: Load }; l7: { lat: Load; tput: Load } }[] = [];
    for (let i = 0; i < rounds; i++) {
      const r: Partial<(typeof results)[number]> = { round: i + 1 };
      for (const kind of ['l4', 'l7'] as const) {
        await use(kind);
        r[kind] = { lat: loadIn(1), tput: loadIn(16) };
      }
      results.push(r as (typeof results)[number]);
      const x = r as (typeof results)[number];
      console.log(`round ${i + 1}: p50 L4 ${x.l4.lat.p50.toFixed(3)} ms, L7 ${x.l7.lat.p50.toFixed(3)} ms (added ${(x.l7.lat.p50 - x.l4.lat.p50).toFixed(3)} ms); `
        + `req/s L4 ${x.l4.tput.rps.toFixed(0)}, L7 ${x.l7.tput.rps.toFixed(0)} (ratio ${(x.l7.tput.rps / x.l4.tput.rps).toFixed(2)})`);
    }
    const med = (xs: number[]): number => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
    const summary = {
      p50L4Ms: med(results.map((r) => r.l4.lat.p50)),
      p50L7Ms: med(results.map((r) => r.l7.lat.p50)),
      p99L4Ms: med(results.map((r) => r.l4.lat.p99)),
      p99L7Ms: med(results.map((r) => r.l7.lat.p99)),
      addedP50Ms: med(results.map((r) => r.l7.lat.p50 - r.l4.lat.p50)),
      rpsL4: med(results.map((r) => r.l4.tput.rps)),
      rpsL7: med(results.map((r) => r.l7.tput.rps)),
      rpsRatio: med(results.map((r) => r.l7.tput.rps / r.l4.tput.rps)),
      errors: results.reduce((n, r) => n + r.l4.lat.errors + r.l4.tput.errors + r.l7.lat.errors + r.l7.tput.errors, 0),
    };
    const targets = { addedP50MsMax: 0.5, rpsL7Min: 5000 };
    const met = { addedP50: summary.addedP50Ms <= targets.addedP50MsMax, rps: summary.rpsL7 >= targets.rpsL7Min };
    console.log('');
    console.log('                 L3/L4 only    through proxy   ratio / added');
    console.log(`p50 latency      ${summary.p50L4Ms.toFixed(3).padStart(8)} ms   ${summary.p50L7Ms.toFixed(3).padStart(8)} ms     +${summary.addedP50Ms.toFixed(3)} ms (target <= ${targets.addedP50MsMax} ms: ${met.addedP50 ? 'met' : 'NOT met'})`);
    console.log(`p99 latency      ${summary.p99L4Ms.toFixed(3).padStart(8)} ms   ${summary.p99L7Ms.toFixed(3).padStart(8)} ms     x${(summary.p99L7Ms / summary.p99L4Ms).toFixed(2)}`);
    console.log(`requests/s (16c) ${summary.rpsL4.toFixed(0).padStart(8)}      ${summary.rpsL7.toFixed(0).padStart(8)}        x${summary.rpsRatio.toFixed(2)} (target >= ${targets.rpsL7Min}: ${met.rps ? 'met' : 'NOT met'})`);
    if (summary.errors) console.log(`non-200 answers or socket errors: ${summary.errors}`);
    mkdirSync(join(root, 'bench', 'out'), { recursive: true });
    writeFileSync(join(root, 'bench', 'out', 'l7.json'), `${JSON.stringify({
      bench: 'l7', time: new Date().toISOString(), rounds, secondsPerRun: seconds,
      setup: 'lab, 1 node, client and server pods on it; latency: 1 keep-alive connection; throughput: 16',
      summary, targets, met, results, datapathCostNs: cost,
    }, null, 2)}\n`);
    console.log('wrote bench/out/l7.json');
  } finally {
    spawnSync(lab, ['down', name], { encoding: 'utf8', timeout: 120_000 });
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(`bench-l7: ${e.message}`);
  process.exit(1);
});
