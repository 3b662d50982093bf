/**
 * A running lab: topology, the lab API server, one palisade-agent per node, pods wired
 * by the real CNI plugin, probe servers, the revision barrier, and teardown.
 *
 * Lifecycle contract:
 * - `Lab.create()` builds everything or, on any failure, removes what it built and
 *   throws. Leftovers of a killed lab with the same name are removed first; a lab of
 *   that name that is still up (owner alive, or kept) is an error (`LabBusyError`).
 * - `lab.keep()` + `lab.startKubelet()` hand a kept lab to its kubelet loop (kubelet.ts),
 *   which from then on wires and unwires pods (kubectl-made ones too) and owns the state
 *   file; this object must not create or delete pods after that.
 * - `lab.destroy()` / `destroyLab(name)` remove everything: the kubelet loop, CNI DEL for every pod while
 *   the agents still run, then every process in the lab's namespaces, the API server,
 *   the namespaces themselves (their links go with them), mounts under the lab
 *   directory and the directory. Both are idempotent.
 *
 * Where things live: network namespaces `pl-<name>_*` (topology.ts), files under
 * /run/palisade-lab/<name>/: state.json, kubeconfig (root-namespace view, for kubectl),
 * kubeconfig-node (the nodes' view through the host-namespace forwarder), api.sock,
 * cni-bin/, n<i>/ (agent state, socket, bpffs root, log), pods/ (probe server sockets
 * and logs), kubelet.log and kubelet.ready (kept labs).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { killAll, pidAlive, pidMatches, pidUsesDir, run, sleep, startDetached } from './exec.ts';
import { invokeCni, type CniCall } from './cni.ts';
import { KubeClient, type Json } from './kube.ts';
import { AGENT_POD_LABELS, DEFAULT_AGENT_NAMESPACE, DEFAULT_AGENT_PORT } from '../inspect/agents.ts';
import type { ContainerPort, ProbeSpec } from './scenario.ts';
import type { ProbeRequest, ProbeValue } from './probe.ts';
import {
  addNodeRoutes, API_PORT, createHost, createNode, createOutside, delNetns, GATEWAY_IP, hostNetns,
  labNetnses, labsWithNetns, netnsPids, nodeInfo, outsideNetns, OUTSIDE_IP, podNetns, type NodeInfo, addNetns,
} from './topology.ts';

export const LAB_ROOT = '/run/palisade-lab';
/** Written by the kubelet loop into the lab directory once it has synced. */
export const KUBELET_READY_FILE = 'kubelet.ready';
export const BARRIER_TIMEOUT_MS = 30_000;
const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

export type CniMode = 'palisade' | 'ptp';

export interface LabOptions {
  name: string;
  nodes: number;
  /** `palisade` (default): agents + palisade-cni. `ptp`: the reference plugins and no
   * policy at all, to exercise the lab machinery on its own. */
  cni?: CniMode;
  log?: (line: string) => void;
}

export interface PodState {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ports: ContainerPort[];
  node: number;
  netns: string;
  containerId: string;
  uid: string;
  ip: string;
  serverPid: number;
}

interface LabStateFile {
  name: string;
  nodes: number;
  cni: CniMode;
  ownerPid: number;
  kept: boolean;
  apiPid: number;
  /** The kubelet loop of a kept lab (kubelet-main.js), 0 or absent when none runs. */
  kubeletPid?: number;
  pods: PodState[];
}

/** A lab of that name is up (its owner runs, or it was kept). */
export class LabBusyError extends Error {
  readonly code = 'PAL_LAB_BUSY';
}

/** The machine cannot run a lab (not root, a tool missing, nothing built). */
export class LabPrerequisiteError extends Error {
  readonly code = 'PAL_LAB_PREREQ';
}

export function labDir(name: string): string {
  return join(LAB_ROOT, name);
}

/** The repository root (where bin/ and dist/ are), from this module's location. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin'))) return dir;
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

export function validateLabName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new LabPrerequisiteError(`invalid lab name "${name}": use up to 32 lowercase letters, digits and '-'`);
  }
  return name;
}

/** Derives a lab name from free text (a scenario name or file name). */
export function labNameFrom(text: string): string {
  const s = text.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 32).replace(/-+$/, '');
  return s || 'lab';
}

/** Checks root and the tools a lab needs; throws LabPrerequisiteError with the fix. */
export async function checkPrerequisites(cni: CniMode): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new LabPrerequisiteError('needs root (network namespaces, BPF): run it as root, e.g. with sudo');
  }
  // Root's tools live in sbin, which a user's PATH may lack.
  const path = (process.env.PATH ?? '/usr/bin:/bin').split(':');
  for (const d of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!path.includes(d)) path.push(d);
  process.env.PATH = path.join(':');
  for (const [tool, pkg] of [['ip', 'iproute2'], ['sysctl', 'procps'], ['umount', 'mount']] as const) {
    if (!path.some((d) => existsSync(join(d, tool)))) {
      throw new LabPrerequisiteError(`the '${tool}' tool (${pkg}) is missing: run 'make setup'`);
    }
  }
  const root = repoRoot();
  const need = [join(root, 'dist/pkg/lab/podserver.js'), join(root, 'dist/pkg/lab/apiserver-main.js'), join(root, 'dist/pkg/lab/kubelet-main.js')];
  if (cni === 'palisade') need.push(join(root, 'bin/palisade-agent'), join(root, 'bin/palisade-cni'));
  else need.push('/usr/lib/cni/ptp', '/usr/lib/cni/host-local');
  for (const f of need) {
    if (!existsSync(f)) throw new LabPrerequisiteError(`${f} is missing: run 'make build' (and 'make setup')`);
  }
}

export type { LabStateFile };

export function readState(name: string): LabStateFile | undefined {
  try {
    return JSON.parse(readFileSync(join(labDir(name), 'state.json'), 'utf8')) as LabStateFile;
  } catch {
    return undefined;
  }
}

/** Labs known on this host (a state directory or network namespaces). */
export function listLabs(): string[] {
  return [...new Set([...readdirSyncSafe(LAB_ROOT), ...labsWithNetns()])].sort();
}

function readdirSyncSafe(dir: string): string[] {
  try { return readdirSync(dir); } catch { return []; }
}

/** A JSON request to a unix-socket HTTP server (agent API, probe servers). */
export function unixRequest(sock: string, method: string, path: string, body: unknown, timeoutMs: number): Promise<{ status: number; json: Json }> {
  return new Promise((resolvePromise, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request({
      socketPath: sock, method, path, timeout: timeoutMs,
      headers: data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => {
        let json: Json;
        try { json = text ? (JSON.parse(text) as Json) : {}; } catch { json = { raw: text }; }
        resolvePromise({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

function lastLines(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join(' | ');
  } catch {
    return '(no log)';
  }
}

/** Unmounts every mount point under `dir` (deepest first); best effort. */
async function unmountUnder(dir: string): Promise<void> {
  let lines: string[];
  try {
    lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  } catch {
    return;
  }
  const points = lines.map((l) => l.split(' ')[4] ?? '').filter((p) => p === dir || p.startsWith(`${dir}/`));
  for (const p of points.sort((a, b) => b.length - a.length)) await run('umount', ['-l', p]);
}

/**
 * Removes a lab by name: works for a lab this process built, a kept one, and the
 * leftovers of a killed one. Never touches anything outside `pl-<name>_*` namespaces,
 * the lab directory, and processes recorded there or living in those namespaces.
 */
export async function destroyLab(name: string, log: (l: string) => void = () => {}): Promise<void> {
  const dir = labDir(name);
  // The kubelet loop first: it must not wire a pod while the lab goes, and it is the
  // last writer of the state file's pods, which are read after it stopped.
  const kubeletPid = readState(name)?.kubeletPid ?? 0;
  if (kubeletPid > 0 && isKubeletOf(kubeletPid, dir) && kubeletPid !== process.pid) await killAll([kubeletPid], 5000);
  const state = readState(name);
  const netnses = labNetnses(name);
  // CNI DEL while agents may still be alive, as a runtime does before removing a pod.
  if (state && state.cni === 'palisade') {
    await Promise.all(state.pods.map((p) => cniDel(name, state.cni, p).catch(() => undefined)));
  }
  const pids = new Set<number>();
  for (const ns of netnses) for (const p of await netnsPids(ns)) pids.add(p);
  for (const p of state?.pods ?? []) if (pidUsesDir(p.serverPid, dir)) pids.add(p.serverPid);
  if (state && pidUsesDir(state.apiPid, dir)) pids.add(state.apiPid);
  pids.delete(process.pid);
  await killAll([...pids]);
  // Pods first: deleting a pod namespace removes its veth, whose peer lives in a node.
  const order = (n: string) => (n.includes('_p-') ? 0 : n.endsWith('_host') ? 2 : 1);
  for (const ns of netnses.sort((a, b) => order(a) - order(b))) {
    await delNetns(ns).catch((err: Error) => log(`warning: ${err.message}`));
  }
  await unmountUnder(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** Whether `pid` is the kubelet loop of the lab in `dir` (its exact `--dir` argument). */
export function isKubeletOf(pid: number, dir: string): boolean {
  return pid > 0 && pidMatches(pid, `kubelet-main.js\0--lab\0`) && pidMatches(pid, `\0--dir\0${dir}\0`);
}

/** CNI DEL during teardown: bounded, since the agent may be gone or stuck. */
export async function cniDel(lab: string, mode: CniMode, p: PodState): Promise<void> {
  await invokeCni({ ...cniCall(lab, mode, 'DEL', p), timeoutMs: 10_000 });
}

export function cniCall(lab: string, mode: CniMode, command: CniCall['command'], p: Pick<PodState, 'namespace' | 'name' | 'node' | 'netns' | 'containerId' | 'uid'>): CniCall {
  const dir = labDir(lab);
  const node = nodeInfo(lab, p.node);
  const config: CniCall['config'] = mode === 'palisade'
    ? { cniVersion: '1.0.0', name: 'palisade', type: 'palisade', agentSocket: join(dir, `n${p.node}`, 'agent.sock') }
    : {
      cniVersion: '1.0.0', name: 'lab-ptp', type: 'ptp',
      ipam: { type: 'host-local', ranges: [[{ subnet: node.podCIDR }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(dir, `n${p.node}`, 'ipam') },
    };
  return {
    command,
    cniPath: join(dir, 'cni-bin'),
    containerId: p.containerId,
    netns: `/var/run/netns/${p.netns}`,
    ifName: 'eth0',
    args: {
      IgnoreUnknown: '1',
      K8S_POD_NAMESPACE: p.namespace,
      K8S_POD_NAME: p.name,
      K8S_POD_INFRA_CONTAINER_ID: p.containerId,
      K8S_POD_UID: p.uid,
    },
    config,
    // The runtime of node i runs on node i: plugins that create links (ptp) create the
    // host side in the namespace they run in.
    inNetns: node.netns,
  };
}

/** The control socket and log of a pod's probe server (in the lab's pods/ directory). */
export function podServerFiles(lab: string, namespace: string, name: string): { sock: string; log: string } {
  const d = join(labDir(lab), 'pods');
  return { sock: join(d, `${namespace}.${name}.sock`), log: join(d, `${namespace}.${name}.log`) };
}

/**
 * Starts a pod's probe server inside its netns (detached): a server on each TCP and UDP
 * container port, and the control socket the lab probes from. Returns its pid.
 */
export function startPodServer(lab: string, p: Pick<PodState, 'namespace' | 'name' | 'netns' | 'ports'>): number {
  const f = podServerFiles(lab, p.namespace, p.name);
  const tcp = p.ports.filter((x) => x.protocol === 'TCP').map((x) => x.containerPort);
  const udp = p.ports.filter((x) => x.protocol === 'UDP').map((x) => x.containerPort);
  return startDetached('ip', ['netns', 'exec', p.netns, process.execPath,
    join(repoRoot(), 'dist/pkg/lab/podserver.js'), '--control', f.sock,
    '--tcp', [...new Set(tcp)].join(','), '--udp', [...new Set(udp)].join(','),
  ], f.log);
}

/** Whether a pod's recorded probe server still runs (pid alive and still that server). */
export function podServerAlive(lab: string, p: Pick<PodState, 'namespace' | 'name' | 'serverPid'>): boolean {
  return p.serverPid > 0 && pidMatches(p.serverPid, podServerFiles(lab, p.namespace, p.name).sock);
}

/** Waits until a pod's probe server answers on its control socket (15 s). */
export async function waitPodServer(lab: string, p: Pick<PodState, 'namespace' | 'name' | 'serverPid'>): Promise<void> {
  const f = podServerFiles(lab, p.namespace, p.name);
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (!pidAlive(p.serverPid)) throw new Error(`probe server exited: ${lastLines(f.log, 3)}`);
    try {
      const r = await unixRequest(f.sock, 'GET', '/ready', undefined, 1000);
      if (r.status === 200) return;
    } catch { /* not listening yet */ }
    await sleep(30);
  }
  throw new Error('probe server not ready within 15 s');
}

/** The status a kubelet reports for a running pod with one ready container. */
export function runningPodStatus(node: NodeInfo, podIP: string, containerNames: readonly string[], image = 'palisade-lab/podserver'): Json {
  const now = new Date().toISOString();
  return {
    phase: 'Running', hostIP: node.ip, hostIPs: [{ ip: node.ip }],
    podIP, podIPs: [{ ip: podIP }], startTime: now,
    conditions: [
      { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
      { type: 'Initialized', status: 'True', lastTransitionTime: now },
      { type: 'ContainersReady', status: 'True', lastTransitionTime: now },
      { type: 'Ready', status: 'True', lastTransitionTime: now },
    ],
    containerStatuses: containerNames.map((name) => ({
      name, ready: true, started: true, restartCount: 0, image, imageID: '', state: { running: { startedAt: now } },
    })),
  };
}

/**
 * Removes a pod's network as kubelet + runtime do on deletion: CNI DEL (its error is
 * thrown, after the rest is done), the pod's processes, its netns. Idempotent.
 */
export async function teardownPod(lab: string, mode: CniMode, p: PodState, timeoutMs = 60_000): Promise<void> {
  let delErr: unknown;
  try {
    await invokeCni({ ...cniCall(lab, mode, 'DEL', p), timeoutMs });
  } catch (err) {
    delErr = err;
  }
  const pids = await netnsPids(p.netns);
  if (podServerAlive(lab, p)) pids.push(p.serverPid);
  await killAll(pids);
  await delNetns(p.netns);
  if (delErr) throw delErr;
}

export class Lab {
  readonly name: string;
  readonly dir: string;
  readonly cni: CniMode;
  readonly nodes: NodeInfo[];
  readonly kube: KubeClient;
  readonly pods = new Map<string, PodState>();
  private readonly log: (l: string) => void;
  private apiPid = 0;
  private kubeletPid = 0;
  private kept = false;
  /** The outside host as a probe endpoint (`outside/host`), once started. */
  outsideHost: { ip: string; sock: string } | undefined;
  private nextNode = 0;

  private constructor(opts: LabOptions, apiUrl: string) {
    this.name = opts.name;
    this.dir = labDir(opts.name);
    this.cni = opts.cni ?? 'palisade';
    this.nodes = Array.from({ length: opts.nodes }, (_, i) => nodeInfo(opts.name, i));
    this.kube = new KubeClient(apiUrl);
    this.log = opts.log ?? (() => {});
  }

  get kubeconfig(): string {
    return join(this.dir, 'kubeconfig');
  }

  /** Builds a lab; on failure nothing is left behind. */
  static async create(opts: LabOptions): Promise<Lab> {
    const name = validateLabName(opts.name);
    const cni = opts.cni ?? 'palisade';
    const log = opts.log ?? (() => {});
    if (opts.nodes < 1 || opts.nodes > 16) throw new LabPrerequisiteError('--nodes must be 1..16');
    await checkPrerequisites(cni);
    const prev = readState(name);
    if (prev && (prev.kept || (prev.ownerPid !== process.pid && pidAlive(prev.ownerPid) && pidMatches(prev.ownerPid, 'palisade-lab')))) {
      throw new LabBusyError(`lab "${name}" is up (${prev.kept ? 'kept' : `pid ${prev.ownerPid}`}): run 'palisade-lab down ${name}' first`);
    }
    if (prev || labNetnses(name).length > 0 || existsSync(labDir(name))) {
      log(`removing leftovers of an earlier lab "${name}"`);
      await destroyLab(name, log);
    }
    const dir = labDir(name);
    mkdirSync(join(dir, 'pods'), { recursive: true });
    const state: LabStateFile = { name, nodes: opts.nodes, cni, ownerPid: process.pid, kept: false, apiPid: 0, pods: [] };
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
    let lab: Lab | undefined;
    try {
      const apiPid = await startApiServer(dir, cni === 'palisade' ? opts.nodes : 0);
      state.apiPid = apiPid;
      writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
      const api = JSON.parse(readFileSync(join(dir, 'api.json'), 'utf8')) as { url: string };
      lab = new Lab({ ...opts, name, cni }, api.url);
      lab.apiPid = apiPid;
      await lab.build();
      return lab;
    } catch (err) {
      await destroyLab(name, log);
      throw err;
    }
  }

  private async build(): Promise<void> {
    const t0 = Date.now();
    await createHost(this.name);
    await Promise.all(this.nodes.map((n) => createNode(this.name, n)));
    await createOutside(this.name, this.nodes);
    const root = repoRoot();
    startDetached('ip', ['netns', 'exec', hostNetns(this.name), process.execPath,
      join(root, 'dist/pkg/lab/forward-main.js'), '--listen', `${GATEWAY_IP}:${API_PORT}`, '--to', join(this.dir, 'api.sock')],
    join(this.dir, 'forward.log'));
    mkdirSync(join(this.dir, 'cni-bin'), { recursive: true });
    if (this.cni === 'palisade') {
      symlinkSync(join(root, 'bin/palisade-cni'), join(this.dir, 'cni-bin', 'palisade'));
    } else {
      for (const p of ['ptp', 'host-local', 'loopback']) symlinkSync(`/usr/lib/cni/${p}`, join(this.dir, 'cni-bin', p));
      await addNodeRoutes(this.nodes);
    }
    for (const n of this.nodes) await this.registerNode(n);
    if (this.cni === 'palisade') await Promise.all(this.nodes.map((n) => this.startAgent(n)));
    this.log(`lab "${this.name}": ${this.nodes.length} nodes up in ${Date.now() - t0} ms`);
  }

  private async registerNode(n: NodeInfo): Promise<void> {
    const ref = { apiVersion: 'v1', kind: 'Node', name: n.name };
    const status = {
      addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }],
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'palisade lab node' }],
      nodeInfo: { kubeletVersion: 'v1.32.0-lab', operatingSystem: 'linux', architecture: 'amd64' },
    };
    await this.kube.create({
      apiVersion: 'v1', kind: 'Node',
      metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name, 'kubernetes.io/os': 'linux' } },
      spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] },
      status,
    });
    // Like a kubelet, report status through the status subresource as well (servers may
    // drop status on create).
    const cur = await this.kube.get(ref);
    await this.kube.replaceStatus(ref, { ...cur, status });
  }

  private agentSock(n: NodeInfo | number): string {
    const i = typeof n === 'number' ? n : n.index;
    return join(this.dir, `n${i}`, 'agent.sock');
  }

  private async startAgent(n: NodeInfo): Promise<void> {
    const nd = join(this.dir, `n${n.index}`);
    for (const d of ['state', 'bpffs', 'cni-conf']) mkdirSync(join(nd, d), { recursive: true });
    const log = join(nd, 'agent.log');
    const pid = startDetached('ip', ['netns', 'exec', n.netns, join(repoRoot(), 'bin/palisade-agent'),
      '--kubeconfig', join(this.dir, 'kubeconfig-node'),
      '--node-name', n.name,
      '--state-dir', join(nd, 'state'),
      '--api-socket', this.agentSock(n),
      '--bpffs-root', join(nd, 'bpffs'),
    ], log);
    const deadline = Date.now() + 60_000;
    let last = '';
    while (Date.now() < deadline) {
      if (!pidAlive(pid)) throw new Error(`agent on ${n.name} exited: ${lastLines(log, 5)}`);
      try {
        const r = await unixRequest(this.agentSock(n), 'GET', '/v1/status', undefined, 2000);
        if (r.status === 200 && r.json.ready === true) {
          await this.registerAgentPod(n);
          return;
        }
        last = JSON.stringify(r.json);
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(100);
    }
    throw new Error(`agent on ${n.name} not ready within 60 s (${last}); log: ${lastLines(log, 5)}`);
  }

  /**
   * Records the node's agent as the chart's DaemonSet would have it: a running
   * hostNetwork pod in the agent namespace with the health port, so `kubectl palisade`
   * finds it by label and reaches it through pods/proxy (the lab API server relays that
   * port to the agent's unix socket).
   */
  private async registerAgentPod(n: NodeInfo): Promise<void> {
    const ref = { apiVersion: 'v1', kind: 'Pod', namespace: DEFAULT_AGENT_NAMESPACE, name: `palisade-agent-${n.name}` };
    await this.kube.create({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: ref.name, namespace: ref.namespace, labels: { ...AGENT_POD_LABELS, 'app.kubernetes.io/instance': 'palisade' } },
      spec: {
        nodeName: n.name, hostNetwork: true,
        containers: [{ name: 'agent', image: 'palisade-lab/agent', ports: [{ name: 'health', containerPort: DEFAULT_AGENT_PORT, protocol: 'TCP' }] }],
      },
    });
    const cur = await this.kube.get(ref);
    const now = new Date().toISOString();
    await this.kube.replaceStatus(ref, {
      ...cur,
      status: {
        phase: 'Running', hostIP: n.ip, podIP: n.ip, podIPs: [{ ip: n.ip }], startTime: now,
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
      },
    });
  }

  private saveState(): void {
    const state: LabStateFile = {
      name: this.name, nodes: this.nodes.length, cni: this.cni, ownerPid: process.pid,
      kept: this.kept, apiPid: this.apiPid, kubeletPid: this.kubeletPid, pods: [...this.pods.values()],
    };
    writeFileSync(join(this.dir, 'state.json'), JSON.stringify(state));
  }

  /** Marks the lab as kept: `down NAME` (not this process's exit) removes it. */
  keep(): void {
    this.kept = true;
    this.saveState();
  }

  /**
   * Starts the kubelet loop of a kept lab (kubelet.ts) and hands the pods over to it:
   * from here on the loop is the only writer of the state file, and this object must not
   * create or delete pods any more. Throws when the loop does not come up (the caller
   * then removes the lab).
   */
  async startKubelet(): Promise<void> {
    this.saveState();
    this.kubeletPid = await startKubelet(this.name);
  }

  async destroy(): Promise<void> {
    await destroyLab(this.name, this.log);
  }

  nodeIndexByName(nodeName: string): number {
    const n = this.nodes.find((x) => x.name === nodeName);
    if (!n) throw new Error(`no node "${nodeName}" in this lab (nodes: ${this.nodes.map((x) => x.name).join(', ')})`);
    return n.index;
  }

  /** The next node in round-robin order. */
  roundRobinNode(): number {
    return this.nextNode++ % this.nodes.length;
  }

  /** Creates the namespace, or replaces its labels when it exists. */
  async ensureNamespace(name: string, labels: Record<string, string>): Promise<void> {
    const all = { ...labels, 'kubernetes.io/metadata.name': name };
    const ref = { apiVersion: 'v1', kind: 'Namespace', name };
    const cur = await this.kube.find(ref);
    if (!cur) {
      await this.kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: all } });
      return;
    }
    await this.kube.replace(ref, { ...cur, metadata: { ...(cur.metadata as Json), labels: all } });
  }

  /** Replaces a pod's labels. */
  async relabelPod(key: string, labels: Record<string, string>): Promise<void> {
    const p = this.pods.get(key);
    if (!p) throw new Error(`no pod ${key}`);
    const ref = { apiVersion: 'v1', kind: 'Pod', name: p.name, namespace: p.namespace };
    const cur = await this.kube.get(ref);
    await this.kube.replace(ref, { ...cur, metadata: { ...(cur.metadata as Json), labels } });
    p.labels = labels;
    this.saveState();
  }

  /**
   * Creates a pod as kubelet + a container runtime would: the Pod object (bound to its
   * node), a network namespace, CNI ADD, the probe server, then the pod's status (IP).
   * On failure everything done so far is undone.
   */
  async createPod(spec: { namespace: string; name: string; labels: Record<string, string>; ports: ContainerPort[]; node: number }): Promise<PodState> {
    const key = `${spec.namespace}/${spec.name}`;
    if (this.pods.has(key)) throw new Error(`pod ${key} exists`);
    const node = this.nodes[spec.node];
    if (!node) throw new Error(`pod ${key}: no node ${spec.node}`);
    const containerId = `lab${randomBytes(12).toString('hex')}`;
    const netns = podNetns(this.name, spec.namespace, spec.name);
    const podRef = { apiVersion: 'v1', kind: 'Pod', name: spec.name, namespace: spec.namespace };
    const partial: PodState = { ...spec, netns, containerId, uid: '', ip: '', serverPid: 0 };
    const undo: (() => Promise<unknown>)[] = [];
    try {
      const created = await this.kube.create({
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name: spec.name, namespace: spec.namespace, labels: spec.labels },
        spec: {
          nodeName: node.name,
          containers: [{
            name: 'server', image: 'palisade-lab/podserver',
            ports: spec.ports.map((p) => ({ ...p })),
          }],
        },
      });
      undo.push(() => this.kube.delete(podRef));
      partial.uid = String((created.metadata as Json).uid ?? randomBytes(16).toString('hex'));
      await addNetns(netns);
      undo.push(() => delNetns(netns));
      partial.serverPid = startPodServer(this.name, partial);
      undo.push(() => killAll([partial.serverPid]));
      const res = await invokeCni(cniCall(this.name, this.cni, 'ADD', partial));
      undo.push(() => invokeCni(cniCall(this.name, this.cni, 'DEL', partial)));
      partial.ip = res.ip!;
      const cur = await this.kube.get(podRef);
      await this.kube.replaceStatus(podRef, { ...cur, status: runningPodStatus(node, partial.ip, ['server']) });
      await waitPodServer(this.name, partial);
      this.pods.set(key, partial);
      this.saveState();
      return partial;
    } catch (err) {
      for (const u of undo.reverse()) await u().catch(() => undefined);
      throw new Error(`creating pod ${key}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Deletes a pod as the kubelet would: CNI DEL, stop its processes, remove it. */
  async deletePod(key: string): Promise<void> {
    const p = this.pods.get(key);
    if (!p) throw new Error(`no pod ${key}`);
    await teardownPod(this.name, this.cni, p);
    await this.kube.delete({ apiVersion: 'v1', kind: 'Pod', name: p.name, namespace: p.namespace });
    this.pods.delete(key);
    this.saveState();
  }

  /** Deletes a namespace with its pods (CNI DEL each) and namespaced objects. */
  async deleteNamespace(name: string): Promise<void> {
    for (const key of [...this.pods.keys()].filter((k) => k.startsWith(`${name}/`))) await this.deletePod(key);
    for (const [apiVersion, kind] of [['networking.k8s.io/v1', 'NetworkPolicy'], ['palisade.dev/v1alpha1', 'PalisadeNetworkPolicy'], ['v1', 'Service']] as const) {
      let items: Json[] = [];
      try {
        items = ((await this.kube.list(apiVersion, kind, name)).items ?? []) as Json[];
      } catch { /* kind not served */ }
      for (const it of items) {
        await this.kube.delete({ apiVersion, kind, namespace: name, name: String((it.metadata as Json).name) });
      }
    }
    await this.kube.delete({ apiVersion: 'v1', kind: 'Namespace', name });
  }

  /**
   * Starts the probe server of the outside host (`outside/host`, OUTSIDE_IP in the
   * outside namespace): TCP and UDP ports 80 and 81, as the model's pods.
   */
  async startOutsideHost(): Promise<void> {
    if (this.outsideHost) return;
    const sock = join(this.dir, 'pods', 'outside.sock');
    const pid = startDetached('ip', ['netns', 'exec', outsideNetns(this.name), process.execPath,
      join(repoRoot(), 'dist/pkg/lab/podserver.js'), '--control', sock, '--tcp', '80,81', '--udp', '80,81',
    ], join(this.dir, 'pods', 'outside.log'));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (!pidAlive(pid)) throw new Error(`outside host probe server exited: ${lastLines(join(this.dir, 'pods', 'outside.log'), 3)}`);
      try {
        if ((await unixRequest(sock, 'GET', '/ready', undefined, 1000)).status === 200) {
          this.outsideHost = { ip: OUTSIDE_IP, sock };
          return;
        }
      } catch { /* not listening yet */ }
      await sleep(30);
    }
    throw new Error('outside host probe server not ready within 15 s');
  }

  /**
   * The ClusterIP of the Service `s-<ns>-<pod>` in front of a pod. When the scenario did
   * not define it, creates it as the upstream e2e suite does: selector `pod: <name>`,
   * one port per container port (`port` = the container port, `targetPort` = its name,
   * or its number when unnamed).
   */
  async serviceIP(key: string): Promise<string> {
    const p = this.pods.get(key);
    if (!p) throw new Error(`no pod ${key}`);
    const ref = { apiVersion: 'v1', kind: 'Service', namespace: p.namespace, name: serviceNameOf(key) };
    let svc = await this.kube.find(ref);
    if (!svc) {
      svc = await this.kube.create({
        apiVersion: 'v1', kind: 'Service',
        metadata: { name: ref.name, namespace: p.namespace },
        spec: {
          type: 'ClusterIP',
          selector: { pod: p.name },
          ports: p.ports.map((cp) => ({
            name: `${cp.containerPort}-${cp.protocol.toLowerCase()}`, port: cp.containerPort, protocol: cp.protocol,
            targetPort: cp.name ?? cp.containerPort,
          })),
        },
      });
    }
    const ip = (svc.spec as Json | undefined)?.clusterIP;
    if (typeof ip !== 'string' || ip === '' || ip === 'None') throw new Error(`service ${p.namespace}/${ref.name} has no ClusterIP`);
    return ip;
  }

  /**
   * The revision barrier: waits until every agent has realized the API state as of the
   * server's current resourceVersion. Returns the wait in ms; throws past 30 s.
   */
  async barrier(): Promise<number> {
    const rv = await this.kube.currentRV();
    const t0 = Date.now();
    if (this.cni !== 'palisade') return 0;
    await Promise.all(this.nodes.map(async (n) => {
      let r: { status: number; json: Json };
      try {
        r = await unixRequest(this.agentSock(n), 'GET', `/v1/wait?resourceVersion=${rv}&timeoutMs=${BARRIER_TIMEOUT_MS}`, undefined, BARRIER_TIMEOUT_MS + 5000);
      } catch (err) {
        throw new Error(`revision barrier: agent on ${n.name}: ${(err as Error).message}`, { cause: err });
      }
      if (r.status !== 200) {
        const why = typeof r.json.message === 'string' ? r.json.message : JSON.stringify(r.json);
        throw new Error(`revision barrier: ${n.name} did not realize resourceVersion ${rv} within ${BARRIER_TIMEOUT_MS / 1000} s (${r.status} ${why})`);
      }
    }));
    return Date.now() - t0;
  }

  /**
   * Probes every ordered pair of distinct pods in `keys` for each probe. Sources run in
   * parallel, and each source runs all its cells in parallel.
   * Returns results[probeIndex][from][to].
   */
  async probeAll(probes: readonly ProbeSpec[], keys: readonly string[], target: 'pod' | 'service' = 'pod'): Promise<Record<string, Record<string, ProbeValue>>[]> {
    const address = new Map<string, string>();
    for (const k of keys) {
      if (k === OUTSIDE_KEY) address.set(k, this.outsideHost!.ip);
      else address.set(k, target === 'service' ? await this.serviceIP(k) : this.pods.get(k)!.ip);
    }
    const out = probes.map(() => Object.fromEntries(keys.map((k) => [k, {} as Record<string, ProbeValue>])));
    await Promise.all(keys.map(async (from) => {
      const cells: { i: number; to: string; req: ProbeRequest }[] = [];
      probes.forEach((p, i) => {
        for (const to of keys) {
          if (to === from) continue;
          const req: ProbeRequest = { to: address.get(to)!, port: p.port, protocol: p.protocol };
          if (p.http) req.http = p.http;
          cells.push({ i, to, req });
        }
      });
      const src = this.pods.get(from);
      const sock = src ? join(this.dir, 'pods', `${src.namespace}.${src.name}.sock`) : this.outsideHost!.sock;
      const r = await unixRequest(sock, 'POST', '/probe', { probes: cells.map((c) => c.req) }, 60_000);
      const results = r.json.results as ProbeValue[] | undefined;
      if (r.status !== 200 || !results) throw new Error(`probing from ${from}: ${JSON.stringify(r.json)}`);
      cells.forEach((c, j) => { out[c.i]![from]![c.to] = results[j]!; });
    }));
    return out;
  }
}

/** The matrix name of the outside host (a host outside the cluster, on the lab bridge). */
export const OUTSIDE_KEY = 'outside/host';

/** The upstream name of the Service in front of pod `<ns>/<pod>`. */
export function serviceNameOf(key: string): string {
  const [ns, pod] = key.split('/');
  return `s-${ns}-${pod}`;
}

/**
 * Starts the lab API server process and waits for its readiness file. The pods/proxy
 * subresource reaches the agent of each of the first `agents` nodes on its unix socket
 * (as the agent's health port; see registerAgentPod).
 */
async function startApiServer(dir: string, agents: number): Promise<number> {
  const root = repoRoot();
  const crdDir = join(root, 'charts/palisade/crds');
  const crds = readdirSyncSafe(crdDir).filter((f) => f.endsWith('.yaml')).flatMap((f) => ['--crd', join(crdDir, f)]);
  const sockets = Array.from({ length: agents }, (_, i) =>
    ['--agent-socket', `lab-node-${i}:${DEFAULT_AGENT_PORT}=${join(dir, `n${i}`, 'agent.sock')}`]).flat();
  const log = join(dir, 'apiserver.log');
  const pid = startDetached(process.execPath, [join(root, 'dist/pkg/lab/apiserver-main.js'), '--dir', dir,
    '--node-server', `http://${GATEWAY_IP}:${API_PORT}`, ...crds, ...sockets], log);
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (existsSync(join(dir, 'api.json'))) return pid;
    if (!pidAlive(pid)) throw new Error(`lab API server exited: ${lastLines(log, 5)}`);
    await sleep(25);
  }
  throw new Error(`lab API server not ready within 20 s: ${lastLines(log, 5)}`);
}

/**
 * (Re)starts the kubelet loop of a kept lab: stops the one recorded (if it runs), starts
 * kubelet-main.js detached in the root namespace, records its pid in the state file (the
 * loop waits for that before it touches the state) and waits until it has synced (60 s).
 * Returns its pid; throws with the end of its log when it does not come up.
 */
export async function startKubelet(name: string): Promise<number> {
  const dir = labDir(name);
  const state = readState(name);
  if (!state) throw new LabPrerequisiteError(`no lab "${name}" on this host`);
  if (!state.kept) throw new LabPrerequisiteError(`lab "${name}" is not kept: its runner plays the pods`);
  const old = state.kubeletPid ?? 0;
  if (isKubeletOf(old, dir)) await killAll([old], 5000);
  const ready = join(dir, KUBELET_READY_FILE);
  const log = join(dir, 'kubelet.log');
  rmSync(ready, { force: true });
  const pid = startDetached(process.execPath, [join(repoRoot(), 'dist/pkg/lab/kubelet-main.js'), '--lab', name, '--dir', dir], log);
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ ...state, kubeletPid: pid }));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) throw new Error(`lab kubelet exited: ${lastLines(log, 5)}`);
    if (existsSync(ready)) return pid;
    await sleep(50);
  }
  await killAll([pid]);
  throw new Error(`lab kubelet not ready within 60 s: ${lastLines(log, 5)}`);
}

/** Used by `status`: what a lab's state file and agents say. */
export async function describeLab(name: string): Promise<Json> {
  const state = readState(name);
  const dir = labDir(name);
  const out: Json = { name, dir, up: false, netns: labNetnses(name) };
  if (!state) return out;
  out.nodes = state.nodes;
  out.kept = state.kept;
  out.cni = state.cni;
  out.apiServer = pidUsesDir(state.apiPid, dir) ? 'running' : 'not running';
  out.kubelet = isKubeletOf(state.kubeletPid ?? 0, dir) ? 'running' : 'not running';
  out.up = out.apiServer === 'running';
  out.kubeconfig = join(dir, 'kubeconfig');
  out.pods = state.pods.map((p) => ({ pod: `${p.namespace}/${p.name}`, ip: p.ip, node: `lab-node-${p.node}` }));
  if (state.cni === 'palisade') {
    out.agents = await Promise.all(Array.from({ length: state.nodes }, async (_, i) => {
      try {
        const r = await unixRequest(join(dir, `n${i}`, 'agent.sock'), 'GET', '/v1/status', undefined, 2000);
        return r.json;
      } catch (err) {
        return { node: `lab-node-${i}`, error: (err as Error).message };
      }
    }));
  }
  return out;
}

