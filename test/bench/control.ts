/**
 * Control-plane benchmark (`make bench-control`, writes bench/out/control.json).
 *
 * 1. Policy change -> realized in the datapath maps: the real agent pipeline (client-node
 *    informers against the in-memory API server running in its own process, coalescing
 *    reconciler, compiler, MemoryDatapath; and LinuxDatapath on a private bpffs when root
 *    and built). 100 sequential changes after 10 unmeasured warm-up ones, each a new
 *    NetworkPolicy allowing a new port to this node's pods; a change is realized when the
 *    datapath's apply() carrying its entry has returned. Swept over 0, 1k and 10k background pods with 1k background
 *    policies. Also reported: how long `waitFor(rv)` (the lab's barrier) took.
 * 2. Full load: an empty datapath to a state of 10k policy entries (start -> ready, with
 *    the cluster already in memory).
 * 3. Agent RSS with 10k remote pods: a separate process (control-rss-child.ts) loading
 *    and running only the control plane against the API server of this process,
 *    measured after sync and a full GC, with default V8 flags and with the launcher's
 *    (the target applies to the latter: it is how the agent runs).
 *
 * Prints measured / target ratios side by side (ratio <= 1 meets the target).
 */
import { execFile, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startApiServer, type ApiServer } from '../../pkg/apiserver/index.ts';
import { ControlPlane, type RealizedEvent } from '../../pkg/controlplane/controlplane.ts';
import { createKubernetesControlPlane } from '../../pkg/controlplane/kubernetes.ts';
import { MemoryDatapath } from '../../pkg/datapath/memory/index.ts';
import { LinuxDatapath } from '../../pkg/datapath/linux/index.ts';
import type {
  Datapath, DatapathChange, DatapathCounters, DatapathState, FlowEvent,
} from '../../pkg/datapath/types.ts';
import { MemoryCluster } from '../../pkg/k8s/memory.ts';
import { PolicyCompiler } from '../../pkg/policy/compile.ts';
import type { LocalEndpoint } from '../../pkg/policy/snapshot.ts';

const NODE = 'bench-node-0';
const LOCAL_PODS = 20;
const CHANGES = 100;
const WARMUP = 10;
const TARGETS = { p99Ms: 50, loadMs: 200, rssMB: 150 };

function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('repository root not found');
    d = up;
  }
  return d;
}

/** Wraps a datapath and reports when each apply() has returned. */
class TimedDatapath implements Datapath {
  readonly inner: Datapath;
  onApply: ((c: DatapathChange, at: number) => void) | undefined;
  constructor(inner: Datapath) {
    this.inner = inner;
  }
  init(): Promise<void> { return this.inner.init(); }
  async apply(change: DatapathChange): Promise<void> {
    await this.inner.apply(change);
    this.onApply?.(change, performance.now());
  }
  dump(): Promise<DatapathState> { return this.inner.dump(); }
  attach(i: number): Promise<void> { return this.inner.attach(i); }
  detach(i: number): Promise<void> { return this.inner.detach(i); }
  events(): AsyncIterable<FlowEvent> { return this.inner.events(); }
  counters(): Promise<DatapathCounters> { return this.inner.counters(); }
  close(): Promise<void> { return this.inner.close(); }
}

type DatapathKind = 'memory' | 'linux';

/**
 * A fresh datapath of `kind`. The Linux one lives on a private bpffs mount made for it
 * (its programs and maps are pinned there and vanish with the mount); `release` closes
 * it and removes the mount.
 */
async function makeDatapath(kind: DatapathKind): Promise<{ dp: Datapath; release: () => Promise<void> }> {
  if (kind === 'memory') return { dp: new MemoryDatapath(), release: async () => {} };
  const root = join(tmpdir(), `pal-bench-control-${process.pid}-${Math.random().toString(36).slice(2, 8)}-bpffs`);
  const dp = new LinuxDatapath({ bpffsRoot: root });
  const release = async () => {
    await dp.close().catch(() => {});
    spawnSync('umount', [root], { stdio: 'ignore' });
    await rm(root, { recursive: true, force: true });
  };
  try {
    await dp.init();
  } catch (err) {
    await release();
    throw err;
  }
  return { dp, release };
}

/** Why the Linux datapath cannot be benchmarked here, or undefined when it can. */
function linuxUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  const root = repoRoot();
  for (const f of ['bin/palisade-bpf', 'bpf/out/from_pod.o', 'bpf/out/to_pod.o']) {
    if (!existsSync(join(root, f))) return `${f} missing (run 'make build')`;
  }
  return undefined;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

// ---- cluster content -----------------------------------------------------------------

const NAMESPACES = 10;
const APPS = 50;

function nsObj(i: number) {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${i}`, labels: { team: `t${i % 3}` } } };
}

function podObj(ns: string, name: string, ip: string, node: string, labels: Record<string, string>) {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'probe', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}

function nodeObj(i: number) {
  return {
    apiVersion: 'v1', kind: 'Node', metadata: { name: i === 0 ? NODE : `bench-node-${i}` },
    spec: { podCIDR: `10.${100 + i}.0.0/16` },
    status: { addresses: [{ type: 'InternalIP', address: `10.89.0.${10 + i}` }] },
  };
}

/** Background policy i: in ns-(i%10), app-(i%50) accepts app-((i+1)%50) on one port. */
function policyObj(i: number) {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy',
    metadata: { name: `bg-${i}`, namespace: `ns-${i % NAMESPACES}` },
    spec: {
      podSelector: { matchLabels: { app: `app-${i % APPS}` } },
      policyTypes: ['Ingress'],
      ingress: [{
        from: [{ podSelector: { matchLabels: { app: `app-${(i + 1) % APPS}` } } }],
        ports: [{ protocol: 'TCP', port: 1000 + (i % 100) }],
      }],
    },
  };
}

/** Bench change k: local pods (app=local) accept each other on port 30000+k. */
function changePolicy(k: number) {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy',
    metadata: { name: `change-${k}`, namespace: 'ns-0' },
    spec: {
      podSelector: { matchLabels: { app: 'local' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'local' } } }], ports: [{ protocol: 'TCP', port: 30000 + k }] }],
    },
  };
}

function localEndpoints(): LocalEndpoint[] {
  return Array.from({ length: LOCAL_PODS }, (_, i) => ({
    endpointId: i + 1, ifindex: 1000 + i, ifname: `lxc${i}`, containerId: `c${i}`,
    podNamespace: 'ns-0', podName: `local-${i}`, ipv4: `10.100.0.${i + 2}`,
  }));
}

/** Creates namespaces, nodes, `pods` remote pods, the local pods and `policies` policies. */
function populate(server: ApiServer, pods: number, policies: number): void {
  const setStatus = (o: ReturnType<typeof podObj>) => {
    const cur = server.create(o);
    server.update({ ...cur, status: o.status }, 'status');
  };
  for (let i = 0; i < NAMESPACES; i++) server.create(nsObj(i));
  for (let i = 0; i < 10; i++) server.create(nodeObj(i));
  for (const ep of localEndpoints()) {
    setStatus(podObj('ns-0', ep.podName, ep.ipv4, NODE, { app: 'local' }));
  }
  for (let i = 0; i < pods; i++) {
    const node = 1 + (i % 9);
    const ip = `10.${100 + node}.${Math.floor(i / 250) % 256}.${(i % 250) + 2}`;
    setStatus(podObj(`ns-${i % NAMESPACES}`, `bg-${i}`, ip, `bench-node-${node}`, { app: `app-${i % APPS}`, tier: `tier-${i % 7}` }));
  }
  for (let i = 0; i < policies; i++) server.create(policyObj(i));
}

// ---- 1. change -> realized -----------------------------------------------------------

interface LatencyResult {
  datapath: DatapathKind;
  backgroundPods: number;
  policies: number;
  changes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  waitForP50Ms: number;
  waitForP99Ms: number;
  reconcilesPerChange: number;
  /** From the watch event reaching the agent's store to realized (the reconcile's latencyMs). */
  agentP50Ms: number;
  agentP99Ms: number;
  reconcileP99Ms: number;
  compileP50Ms: number;
  compileP99Ms: number;
  initialRealizeMs: number;
}

/**
 * The API server in its own process, as in a real cluster (its allocations and GC pauses
 * are not the agent's): populated there, driven over IPC.
 */
class ApiProcess {
  readonly #child: ChildProcess;
  #pending: ((m: unknown) => void) | undefined;

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', (m) => {
      const p = this.#pending;
      this.#pending = undefined;
      p?.(m);
    });
  }

  static async start(pods: number, policies: number, kubeconfig: string): Promise<ApiProcess> {
    const child = fork(fileURLToPath(import.meta.url), ['--api-server', String(pods), String(policies), kubeconfig], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const api = new ApiProcess(child);
    await api.#call({ op: 'wait-ready' });
    return api;
  }

  #call(msg: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`api server process exited with ${code}`));
      this.#child.once('exit', onExit);
      this.#pending = (m) => {
        this.#child.off('exit', onExit);
        resolve(m);
      };
      if (!(msg as { op: string }).op.startsWith('wait')) this.#child.send(msg);
    });
  }

  /** Creates an object; resolves with the resourceVersion after the write. */
  async create(obj: object): Promise<string> {
    const r = await this.#call({ op: 'create', obj }) as { rv: string };
    return r.rv;
  }

  async close(): Promise<void> {
    const exited = new Promise((r) => this.#child.once('exit', r));
    this.#child.send({ op: 'close' });
    await exited;
  }
}

async function apiServerChild(pods: number, policies: number, kubeconfig: string): Promise<void> {
  const server = await startApiServer({ crdFiles: [join(repoRoot(), 'manifests', 'crds.yaml')] });
  populate(server, pods, policies);
  await server.writeKubeconfig(kubeconfig);
  process.on('message', (m: { op: string; obj?: object }) => {
    if (m.op === 'create') {
      server.create(m.obj as never);
      process.send!({ rv: server.resourceVersion() });
    } else if (m.op === 'close') {
      void server.close().then(() => process.exit(0));
    }
  });
  process.send!({ ready: true });
}

async function latencySweep(kind: DatapathKind, pods: number, policies: number, dir: string): Promise<LatencyResult> {
  const kubeconfig = join(dir, `kubeconfig-${pods}`);
  const server = await ApiProcess.start(pods, policies, kubeconfig);
  const made = await makeDatapath(kind);
  const datapath = new TimedDatapath(made.dp);
  let cp: Awaited<ReturnType<typeof createKubernetesControlPlane>> | undefined;
  try {
    cp = await createKubernetesControlPlane({ kubeconfig, nodeName: NODE, datapath });
    const t0 = performance.now();
    for (const ep of localEndpoints()) void cp.upsertEndpoint(ep);
    await cp.start();
    await cp.whenReady();
    const initialRealizeMs = performance.now() - t0;

    const lat: number[] = [];
    const waits: number[] = [];
    const agent: number[] = [];
    const reconcile: number[] = [];
    const compile: number[] = [];
    let lastEvent: RealizedEvent | undefined;
    cp.onRealized((e) => { lastEvent = e; });
    let reconcilesBefore = cp.reconciles;
    // WARMUP changes first (JIT, and the initial sync's garbage collected), then CHANGES
    // measured ones.
    for (let k = 0; k < WARMUP + CHANGES; k++) {
      if (k === WARMUP) {
        for (const xs of [lat, waits, agent, reconcile, compile]) xs.length = 0;
        reconcilesBefore = cp.reconciles;
      }
      const port = 30000 + k;
      const realized = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`change ${k} not realized within 30 s`)), 30_000);
        datapath.onApply = (c, at) => {
          if (c.upsert.policy.some((e) => e.port === port)) {
            clearTimeout(timer);
            resolve(at);
          }
        };
      });
      const start = performance.now();
      const rv = await server.create(changePolicy(k));
      const at = await realized;
      lat.push(at - start);
      await new Promise((r) => setImmediate(r));
      if (lastEvent) {
        agent.push(lastEvent.latencyMs);
        reconcile.push(lastEvent.durationMs);
        compile.push(lastEvent.compileMs);
      }
      await cp.waitFor(rv, 30_000);
      waits.push(performance.now() - start);
    }
    return {
      datapath: kind, backgroundPods: pods, policies, changes: CHANGES,
      p50Ms: round(quantile(lat, 0.5)), p99Ms: round(quantile(lat, 0.99)), maxMs: round(Math.max(...lat)),
      waitForP50Ms: round(quantile(waits, 0.5)), waitForP99Ms: round(quantile(waits, 0.99)),
      reconcilesPerChange: round((cp.reconciles - reconcilesBefore) / CHANGES),
      agentP50Ms: round(quantile(agent, 0.5)), agentP99Ms: round(quantile(agent, 0.99)),
      reconcileP99Ms: round(quantile(reconcile, 0.99)),
      compileP50Ms: round(quantile(compile, 0.5)), compileP99Ms: round(quantile(compile, 0.99)),
      initialRealizeMs: round(initialRealizeMs),
    };
  } finally {
    await cp?.stop();
    await server.close();
    await made.release();
  }
}

// ---- 2. full load of 10k policy entries ----------------------------------------------

async function fullLoad(kind: DatapathKind) {
  // 50 local pods x 200 policies, each allowing one port from one peer identity = 10k.
  const ENDPOINTS = 50;
  const POLICIES = 200;
  const cluster = new MemoryCluster();
  cluster.apply({ kind: 'Namespace', metadata: { name: 'load' } });
  cluster.apply({ kind: 'Pod', metadata: { name: 'peer', namespace: 'load', labels: { role: 'peer' } }, spec: { nodeName: 'other', containers: [] }, status: { phase: 'Running', podIP: '10.200.0.2' } } as never);
  const eps: LocalEndpoint[] = [];
  for (let i = 0; i < ENDPOINTS; i++) {
    const ip = `10.100.1.${i + 2}`;
    cluster.apply({ kind: 'Pod', metadata: { name: `p${i}`, namespace: 'load', labels: { role: 'server' } }, spec: { nodeName: NODE, containers: [] }, status: { phase: 'Running', podIP: ip } } as never);
    eps.push({ endpointId: i + 1, ifindex: 2000 + i, ifname: `lxc${i}`, containerId: `l${i}`, podNamespace: 'load', podName: `p${i}`, ipv4: ip });
  }
  for (let j = 0; j < POLICIES; j++) {
    cluster.apply({
      kind: 'NetworkPolicy', metadata: { name: `l${j}`, namespace: 'load' },
      spec: { podSelector: { matchLabels: { role: 'server' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { role: 'peer' } } }], ports: [{ port: 5000 + j * 2, protocol: 'TCP' }] }] },
    } as never);
  }
  const made = await makeDatapath(kind);
  const datapath = made.dp;
  const cp = new ControlPlane({ cluster, datapath, compiler: new PolicyCompiler(), nodeName: NODE });
  let event: { compileMs: number; applyMs: number; operations: number } | undefined;
  cp.onRealized((e) => { if (e.synced) event ??= e; });
  const t0 = performance.now();
  for (const ep of eps) void cp.upsertEndpoint(ep);
  await cp.start();
  await cp.whenReady();
  const ms = performance.now() - t0;
  await cp.stop();
  const entries = (await datapath.dump()).policy.length;
  await made.release();
  return {
    datapath: kind, policyEntries: entries, endpoints: ENDPOINTS, ms: round(ms),
    compileMs: round(event?.compileMs ?? 0), applyMs: round(event?.applyMs ?? 0), operations: event?.operations ?? 0,
  };
}

// ---- namespaceSelector {}: entries before/after the "any pod" entry ----------------------

/**
 * One policy selecting the 20 local pods, allowing port 80 from `namespaceSelector: {}`,
 * compiled with 10k background pods; against the same peer written as "every namespace
 * with a name label" (what `{}` compiled to before: one entry per label identity).
 */
function anyPodEntries() {
  const namespaces = new Map<string, object>();
  for (let i = 0; i < NAMESPACES; i++) {
    const n = nsObj(i);
    namespaces.set(n.metadata.name, { ...n, metadata: { ...n.metadata, labels: { ...n.metadata.labels, 'kubernetes.io/metadata.name': n.metadata.name } } });
  }
  const pods = new Map<string, ReturnType<typeof podObj>>();
  for (const ep of localEndpoints()) pods.set(`ns-0/${ep.podName}`, podObj('ns-0', ep.podName, ep.ipv4, NODE, { app: 'local' }));
  for (let i = 0; i < 10_000; i++) {
    const node = 1 + (i % 9);
    const ip = `10.${100 + node}.${Math.floor(i / 250) % 256}.${(i % 250) + 2}`;
    pods.set(`ns-${i % NAMESPACES}/bg-${i}`, podObj(`ns-${i % NAMESPACES}`, `bg-${i}`, ip, `bench-node-${node}`, { app: `app-${i % APPS}`, tier: `tier-${i % 7}` }));
  }
  const nodes = new Map(Array.from({ length: 10 }, (_, i) => [nodeObj(i).metadata.name, nodeObj(i)]));
  const run = (peer: object) => {
    const policies = new Map([['NetworkPolicy:ns-0/all', {
      kind: 'NetworkPolicy', metadata: { name: 'all', namespace: 'ns-0' },
      spec: { podSelector: { matchLabels: { app: 'local' } }, policyTypes: ['Ingress'], ingress: [{ from: [peer], ports: [{ port: 80 }] }] },
    }]]);
    const t0 = performance.now();
    const r = new PolicyCompiler().compile({
      revision: 1, nodeName: NODE, namespaces, pods, nodes, policies, endpoints: localEndpoints(),
    } as never);
    return { policyEntries: r.state.policy.length, identities: r.identities.size, compileMs: round(performance.now() - t0) };
  };
  return {
    backgroundPods: 10_000, localEndpoints: LOCAL_PODS,
    perIdentity: run({ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'Exists' }] } }),
    anyPod: run({ namespaceSelector: {} }),
  };
}

// ---- 3. RSS with 10k remote pods (child process) -------------------------------------

/** The V8 flags cmd/launcher.sh gives palisade-agent. */
function launcherV8Flags(): string[] {
  const text = readFileSync(join(repoRoot(), 'cmd', 'launcher.sh'), 'utf8');
  const m = /palisade-agent\) v8=(\S+) ;;/.exec(text);
  if (!m) throw new Error('cmd/launcher.sh: no V8 flags for palisade-agent found');
  return [m[1]!];
}

interface RssSample {
  flags: string;
  rssMB: number;
  heapUsedMB: number;
  /** Before the control plane started (Node + client-node loaded). */
  baselineRssMB: number;
  baselineHeapUsedMB: number;
  storedPods: number;
}

async function rss(dir: string) {
  const server = await startApiServer({ crdFiles: [join(repoRoot(), 'manifests', 'crds.yaml')] });
  try {
    populate(server, 10_000, 1000);
    const kubeconfig = join(dir, 'kubeconfig-rss');
    await server.writeKubeconfig(kubeconfig);
    const mb = (n: number) => round(n / 2 ** 20, 1);
    const samples: RssSample[] = [];
    // Default V8 flags, and the ones the agent's launcher sets (cmd/launcher.sh).
    for (const flags of [[], launcherV8Flags()]) {
      const childPath = fileURLToPath(new URL(`./control-rss-child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));
      const child = fork(childPath, [kubeconfig, NODE, String(LOCAL_PODS)], {
        execArgv: ['--expose-gc', ...flags], stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const msg = await new Promise<{ rss: number; heapUsed: number; baseRss: number; baseHeapUsed: number; pods: number }>((resolve, reject) => {
        child.once('message', (m) => resolve(m as never));
        child.once('exit', (code) => reject(new Error(`rss child exited with ${code}`)));
      });
      await new Promise((r) => child.once('exit', r));
      samples.push({
        flags: flags.join(' ') || '(default)', rssMB: mb(msg.rss), heapUsedMB: mb(msg.heapUsed),
        baselineRssMB: mb(msg.baseRss), baselineHeapUsedMB: mb(msg.baseHeapUsed), storedPods: msg.pods,
      });
    }
    return { remotePods: 10_000, policies: 1000, samples };
  } finally {
    await server.close();
  }
}

// ---- 3b. the whole agent (bin/palisade-agent) with 10k remote pods, as root ---------------

interface AgentRss {
  /** VmRSS samples once ready (1 s apart), MB. */
  rssMB: number[];
  readyAfterMs: number;
}

/**
 * Inside a private network namespace (the agent manages routes and masquerading there,
 * not on this host): an API server with the RSS cluster, and the real agent started by
 * its launcher (so with the launcher's V8 flags) in Kubernetes mode with the memory
 * datapath. Prints one JSON line.
 */
async function agentRssChild(): Promise<void> {
  const server = await startApiServer({ crdFiles: [join(repoRoot(), 'manifests', 'crds.yaml')] });
  populate(server, 10_000, 1000);
  const dir = await mkdtemp(join(tmpdir(), 'pal-bench-agent-'));
  let agent: ChildProcess | undefined;
  try {
    await server.writeKubeconfig(join(dir, 'kc'));
    const port = 19_000 + Math.floor(Math.random() * 1000);
    agent = spawn(join(repoRoot(), 'bin', 'palisade-agent'), [
      '--kubeconfig', join(dir, 'kc'), '--node-name', NODE, '--datapath', 'memory', '--state-dir', join(dir, 'state'),
      '--api-socket', join(dir, 'cni.sock'), '--health-port', String(port), '--l7-proxy-port', '0', '--log-level', 'error',
    ], { stdio: ['ignore', 'ignore', 'inherit'] });
    const t0 = performance.now();
    for (;;) {
      if (performance.now() - t0 > 120_000) throw new Error('agent not ready within 120 s');
      if (agent.exitCode !== null) throw new Error(`agent exited with ${agent.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const readyAfterMs = performance.now() - t0;
    const rssMB: number[] = [];
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))?.[1]);
      rssMB.push(round(kb / 1024, 1));
    }
    process.stdout.write(`${JSON.stringify({ rssMB, readyAfterMs: round(readyAfterMs) } satisfies AgentRss)}\n`);
  } finally {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((r) => agent!.once('exit', r));
      agent.kill('SIGTERM');
      await exited;
    }
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function agentRss(): Promise<AgentRss | string> {
  if (process.getuid?.() !== 0) return 'not root';
  if (!existsSync(join(repoRoot(), 'bin', 'palisade-agent'))) return "bin/palisade-agent missing (run 'make build')";
  const ns = `pal-bench-ctl-${process.pid}`;
  if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) return 'cannot create a network namespace';
  try {
    spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const { stdout } = await promisify(execFile)('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), '--agent-rss'],
      { maxBuffer: 1 << 20, timeout: 300_000 });
    return JSON.parse(stdout.trim().split('\n').pop()!) as AgentRss;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

// ---- main ------------------------------------------------------------------------------

function row(name: string, measured: number, target: number, unit: string): string {
  const ratio = measured / target;
  return `${name.padEnd(46)} ${`${measured} ${unit}`.padStart(12)} ${`${target} ${unit}`.padStart(10)} ${ratio.toFixed(2).padStart(7)}${ratio <= 1 ? '' : '  MISSED'}`;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--api-server') {
    return apiServerChild(Number(process.argv[3]), Number(process.argv[4]), process.argv[5]!);
  }
  if (process.argv[2] === '--agent-rss') return agentRssChild();
  const dir = await mkdtemp(join(tmpdir(), 'pal-bench-control-'));
  try {
    const latency: LatencyResult[] = [];
    const sizes = process.env.BENCH_PODS ? process.env.BENCH_PODS.split(',').map(Number) : [0, 1000, 10_000];
    const linuxSkip = linuxUnavailable();
    const kinds: DatapathKind[] = linuxSkip ? ['memory'] : ['memory', 'linux'];
    if (linuxSkip) process.stderr.write(`bench-control: linux datapath skipped: ${linuxSkip}\n`);
    for (const kind of kinds) {
      for (const pods of sizes) {
        process.stderr.write(`bench-control: ${kind} datapath, ${pods} background pods, 1000 policies...\n`);
        latency.push(await latencySweep(kind, pods, 1000, dir));
      }
    }
    const loads = [];
    for (const kind of kinds) {
      process.stderr.write(`bench-control: ${kind} datapath, full load of 10k policy entries...\n`);
      loads.push(await fullLoad(kind));
    }
    process.stderr.write('bench-control: namespaceSelector {} entries...\n');
    const anyPod = anyPodEntries();
    process.stderr.write('bench-control: RSS with 10k remote pods...\n');
    const mem = await rss(dir);
    process.stderr.write('bench-control: RSS of the whole agent with 10k remote pods...\n');
    const agent = await agentRss();

    const out = {
      benchmark: 'control', date: new Date().toISOString(),
      machine: { cpus: cpus().length, node: process.version },
      datapaths: kinds, linuxSkipped: linuxSkip ?? null,
      targets: TARGETS, latency, fullLoad: loads, namespaceSelectorAll: anyPod, rss: mem,
      agentRss: typeof agent === 'string' ? { skipped: agent } : agent,
      ratios: {
        ...Object.fromEntries(latency.map((l) => [`p99_${l.datapath}_${l.backgroundPods}pods`, round(l.p99Ms / TARGETS.p99Ms)])),
        ...Object.fromEntries(loads.map((l) => [`fullLoad_${l.datapath}`, round(l.ms / TARGETS.loadMs)])),
        // What the agent runs with: the launcher's flags.
        rss: round(mem.samples[1]!.rssMB / TARGETS.rssMB),
      },
    };
    const outDir = join(repoRoot(), 'bench', 'out');
    await mkdir(outDir, { recursive: true });
    await writeFile(join(outDir, 'control.json'), `${JSON.stringify(out, null, 2)}\n`);

    console.log(`${'metric'.padEnd(46)} ${'measured'.padStart(12)} ${'target'.padStart(10)} ${'ratio'.padStart(7)}`);
    for (const l of latency) {
      console.log(row(`change->realized p99, ${l.datapath}, ${l.backgroundPods} pods`, l.p99Ms, TARGETS.p99Ms, 'ms'));
    }
    for (const l of loads) {
      console.log(row(`full load, ${l.datapath}, ${l.policyEntries} policy entries`, l.ms, TARGETS.loadMs, 'ms'));
    }
    for (const m of mem.samples) {
      // The target is for the agent as shipped (the launcher's flags); the default-flags
      // row is a reference that shows what those flags save, not a target.
      if (m.flags === '(default)') {
        console.log(`${`control plane RSS, ${mem.remotePods} remote pods, default V8 flags (reference)`.padEnd(46)} ${`${m.rssMB} MB`.padStart(12)}`);
      } else {
        console.log(row(`control plane RSS, ${mem.remotePods} remote pods, launcher flags ${m.flags}`, m.rssMB, TARGETS.rssMB, 'MB'));
      }
    }
    if (typeof agent !== 'string') {
      console.log(row('whole agent RSS (bin/palisade-agent), 10k pods', Math.max(...agent.rssMB), TARGETS.rssMB, 'MB'));
    }
    console.log('');
    console.log('datapath background pods   p50 ms   p99 ms   max ms   agent p50/p99   reconcile p99   compile p50/p99   waitFor p50/p99   reconciles/change   initial ms');
    for (const l of latency) {
      console.log([
        l.datapath.padEnd(8), String(l.backgroundPods).padStart(15), String(l.p50Ms).padStart(8), String(l.p99Ms).padStart(8),
        String(l.maxMs).padStart(8), `${l.agentP50Ms}/${l.agentP99Ms}`.padStart(15), String(l.reconcileP99Ms).padStart(15),
        `${l.compileP50Ms}/${l.compileP99Ms}`.padStart(17), `${l.waitForP50Ms}/${l.waitForP99Ms}`.padStart(17),
        String(l.reconcilesPerChange).padStart(19), String(l.initialRealizeMs).padStart(12),
      ].join(' '));
    }
    for (const l of loads) {
      console.log(`full load (${l.datapath}): compile ${l.compileMs} ms, apply ${l.applyMs} ms, ${l.operations} operations`);
    }
    console.log(`namespaceSelector {} (10k pods, ${anyPod.perIdentity.identities} identities, ${LOCAL_PODS} endpoints): `
      + `${anyPod.anyPod.policyEntries} entries (any pod) vs ${anyPod.perIdentity.policyEntries} per identity; `
      + `compile ${anyPod.anyPod.compileMs} vs ${anyPod.perIdentity.compileMs} ms`);
    console.log(typeof agent === 'string' ? `whole agent RSS: skipped (${agent})`
      : `whole agent (launcher, Kubernetes mode, memory datapath): ready after ${agent.readyAfterMs} ms, VmRSS ${agent.rssMB.join(' / ')} MB`);
    for (const m of mem.samples) {
      console.log(`RSS ${m.flags}: ${m.rssMB} MB (heap used ${m.heapUsedMB} MB); before start ${m.baselineRssMB} MB (heap ${m.baselineHeapUsedMB} MB)`);
    }
    console.log('wrote bench/out/control.json');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench-control: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
