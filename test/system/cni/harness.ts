/**
 * A private node for CNI system tests: its own "node" network namespace running a real
 * palisade-agent process (dist/cmd/palisade-agent.js) with its own state dir, socket
 * and bpffs mount, plus pod namespaces, and a way to invoke the real shim the way a
 * container runtime does. Everything is named with a unique prefix and removed by
 * `destroy()`, also after failures.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { uniquePrefix } from '../../helpers/privileged.ts';

const pexec = promisify(execFile);
export const ROOT = new URL('../../../', import.meta.url).pathname;
export const AGENT_JS = join(ROOT, 'dist/cmd/palisade-agent.js');
/**
 * The shim as bin/palisade-cni runs it: the single-file bundle when it is at least as new
 * as the last tsc output, else the unbundled entry.
 */
export const CNI_JS = ((): string => {
  const entry = join(ROOT, 'dist/cmd/palisade-cni.js');
  const bundle = join(ROOT, 'dist/palisade-cni.mjs');
  try {
    return statSync(bundle).mtimeMs >= statSync(entry).mtimeMs ? bundle : entry;
  } catch {
    return entry;
  }
})();
export const NODE = process.execPath;

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export async function sh(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => resolve({ code: -1, stdout: '', stderr: e.message }));
    child.on('close', (code) => resolve({
      code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(),
    }));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Builds dist/ when it is missing (tests run the compiled binaries, as a runtime would). */
export async function ensureBuilt(): Promise<void> {
  if (existsSync(AGENT_JS) && existsSync(CNI_JS)) return;
  await pexec(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(ROOT, 'tsconfig.json')], { cwd: ROOT })
    .catch(() => undefined);
  if (!existsSync(AGENT_JS)) throw new Error('dist/cmd/palisade-agent.js missing: run make build');
  if (testDatapath() === 'linux') {
    for (const f of ['bpf/out/from_pod.o', 'bpf/out/to_pod.o', 'bin/palisade-bpf']) {
      if (!existsSync(join(ROOT, f))) {
        throw new Error(`${f} missing: run make build (or PALISADE_TEST_DATAPATH=none to test without eBPF)`);
      }
    }
  }
}

/**
 * The datapath the test agents use: the real one (`linux`) unless
 * PALISADE_TEST_DATAPATH says otherwise.
 */
export function testDatapath(): string {
  return process.env.PALISADE_TEST_DATAPATH ?? 'linux';
}

/** A one-connection TCP echo server (python3): `python3 -c ECHO_SERVER PORT`. */
export const ECHO_SERVER = `
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('0.0.0.0', int(sys.argv[1]))); l.listen(1)
print('listening', flush=True)
c, _ = l.accept()
while True:
    d = c.recv(64)
    if not d: break
    c.sendall(d)
`;

// Sends a line every 20 ms on ONE connection and waits for its echo; prints the count,
// or the error that broke the connection, when the duration is over.
export const ECHO_CLIENT = `
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
end = time.time() + float(sys.argv[3]); n = 0
try:
    while time.time() < end:
        s.sendall(b'ping\\n')
        d = s.recv(16)
        if not d: raise Exception('closed by peer')
        n += 1; time.sleep(0.02)
except Exception as e:
    print('error', n, e, flush=True); sys.exit(1)
print('ok', n, flush=True)
`;

export interface CniCall {
  containerId: string;
  netns?: string;
  ifName?: string;
  args?: string;
  config?: Record<string, unknown>;
  /** Raw stdin instead of the config. */
  stdin?: string;
  /** Environment overrides; a value of '' removes the variable. */
  env?: Record<string, string>;
}

export interface CniAnswer extends Run {
  json: Record<string, unknown> | undefined;
}

export class Node {
  readonly prefix: string;
  readonly dir: string;
  readonly nodeNs: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly bpffs: string;
  readonly cidr: string;
  /** An address on the node's loopback, so node-to-pod traffic has a source. */
  readonly nodeIp = '10.250.0.1';
  private agent: ChildProcess | undefined;
  agentLog = '';
  private readonly pods: string[] = [];
  private bpffsMounted = false;

  constructor(tag: string, cidr: string) {
    this.prefix = uniquePrefix(tag);
    this.dir = mkdtempSync(join(tmpdir(), `${this.prefix}-`));
    this.nodeNs = `${this.prefix}n`;
    this.socket = join(this.dir, 'run', 'cni.sock');
    this.stateDir = join(this.dir, 'state');
    this.bpffs = join(this.dir, 'bpffs');
    this.cidr = cidr;
  }

  get pendingDelDir(): string {
    return join(this.dir, 'run', 'pending-del');
  }

  async init(): Promise<void> {
    await ensureBuilt();
    mkdirSync(this.bpffs, { recursive: true });
    const m = await sh('mount', ['-t', 'bpf', 'bpf', this.bpffs]);
    if (m.code !== 0) throw new Error(`mounting bpffs: ${m.stderr}`);
    this.bpffsMounted = true;
    await this.must('ip', ['netns', 'add', this.nodeNs]);
    await this.must('ip', ['-n', this.nodeNs, 'link', 'set', 'lo', 'up']);
    await this.must('ip', ['-n', this.nodeNs, 'addr', 'add', `${this.nodeIp}/32`, 'dev', 'lo']);
  }

  async must(cmd: string, args: string[], input?: string): Promise<Run> {
    const r = await sh(cmd, args, { input });
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
    return r;
  }

  /** Runs a command inside the node namespace. */
  inNode(cmd: string, args: string[]): Promise<Run> {
    return sh('ip', ['netns', 'exec', this.nodeNs, cmd, ...args]);
  }

  async addPod(name: string): Promise<string> {
    const ns = `${this.prefix}${name}`;
    await this.must('ip', ['netns', 'add', ns]);
    this.pods.push(ns);
    return `/var/run/netns/${ns}`;
  }

  async removePod(path: string): Promise<void> {
    const ns = path.split('/').pop()!;
    await sh('ip', ['netns', 'del', ns]);
  }

  inPod(path: string, cmd: string, args: string[]): Promise<Run> {
    return sh('nsenter', [`--net=${path}`, cmd, ...args]);
  }

  /** When set, the agent runs in Kubernetes mode with this kubeconfig (pod CIDR from the Node). */
  kubeconfig: string | undefined;

  get nodeName(): string {
    return `${this.prefix}-node`;
  }

  agentArgs(extra: string[] = []): string[] {
    const mode = this.kubeconfig ? ['--kubeconfig', this.kubeconfig] : ['--standalone', '--pod-cidr', this.cidr];
    return [...mode, '--node-name', this.nodeName,
      '--state-dir', this.stateDir, '--api-socket', this.socket, '--bpffs-root', this.bpffs,
      '--datapath', testDatapath(), ...extra];
  }

  /** Starts the agent inside the node namespace and waits until /readyz answers. */
  async startAgent(extra: string[] = []): Promise<void> {
    if (this.agent) throw new Error('agent already running');
    const child = spawn('nsenter', [`--net=/var/run/netns/${this.nodeNs}`, NODE, '--enable-source-maps',
      AGENT_JS, ...this.agentArgs(extra)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.agent = child;
    child.stdout!.on('data', (c: Buffer) => { this.agentLog += c.toString(); });
    child.stderr!.on('data', (c: Buffer) => { this.agentLog += c.toString(); });
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const r = await Promise.race([
        this.get('/readyz').catch(() => undefined),
        exited.then((code) => ({ exited: code })),
      ]);
      if (r && 'exited' in r) {
        this.agent = undefined;
        throw new Error(`agent exited with ${r.exited}:\n${this.agentLog}`);
      }
      if (r && r.status === 200) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`agent not ready within 30 s:\n${this.agentLog}`);
  }

  /** Stops the agent (SIGTERM by default) and waits for it to exit. */
  async stopAgent(signal: NodeJS.Signals = 'SIGTERM'): Promise<number> {
    const child = this.agent;
    if (!child) return 0;
    this.agent = undefined;
    if (child.exitCode !== null) return child.exitCode;
    const exited = new Promise<number>((resolve) => child.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : -1))));
    child.kill(signal);
    return exited;
  }

  get(path: string): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve, reject) => {
      const r = request({ socketPath: this.socket, path, method: 'GET', timeout: 5000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let body: unknown = text;
          try { body = JSON.parse(text); } catch { /* text */ }
          resolve({ status: res.statusCode ?? 0, body });
        });
      });
      r.on('error', reject);
      r.on('timeout', () => r.destroy(new Error('timeout')));
      r.end();
    });
  }

  netConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion: '1.1.0', name: `${this.prefix}net`, type: 'palisade', agentSocket: this.socket, ...extra };
  }

  /** Invokes the real shim (node dist/cmd/palisade-cni.js) as a runtime does. */
  async cni(command: string, call: CniCall): Promise<CniAnswer> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: call.containerId,
      CNI_NETNS: call.netns ?? '',
      CNI_IFNAME: call.ifName ?? 'eth0',
      CNI_PATH: '/opt/cni/bin',
      CNI_ARGS: call.args ?? `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${call.containerId}`,
    };
    for (const [k, v] of Object.entries(call.env ?? {})) {
      if (v === '') delete env[k];
      else env[k] = v;
    }
    const r = await sh(NODE, [CNI_JS], { env, input: call.stdin ?? JSON.stringify(call.config ?? this.netConfig()) });
    let json: Record<string, unknown> | undefined;
    try { json = r.stdout.trim() ? JSON.parse(r.stdout) as Record<string, unknown> : undefined; } catch { json = undefined; }
    return { ...r, json };
  }

  /** Host-side veths in the node namespace. */
  /** Pod veths (host side, `pal` prefix) in the node namespace; the agent's own devices (L7) are not pods'. */
  async hostLinks(): Promise<string[]> {
    const r = await this.must('ip', ['-n', this.nodeNs, '-j', 'link', 'show', 'type', 'veth']);
    return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith('pal'));
  }

  /** Lease count in the agent's persisted IPAM state. */
  leases(): { ip: string; containerId: string }[] {
    const file = join(this.stateDir, 'ipam.json');
    if (!existsSync(file)) return [];
    return (JSON.parse(readFileSync(file, 'utf8')) as { leases: { ip: string; containerId: string }[] }).leases;
  }

  endpointFiles(): string[] {
    const d = join(this.stateDir, 'endpoints');
    return existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.json')) : [];
  }

  /** Pinned tcx links of the programs on a host veth (LinuxDatapath pins them per ifindex). */
  pinnedLinks(ifindex: number): string[] {
    const d = join(this.bpffs, 'palisade', 'links');
    return existsSync(d) ? readdirSync(d).filter((f) => f.startsWith(`${ifindex}-`)) : [];
  }

  /** Programs attached with clsact to a host veth's hook (names from `tc filter show`). */
  async clsactPrograms(hostIf: string, hook: 'ingress' | 'egress'): Promise<string[]> {
    const r = await sh('tc', ['-n', this.nodeNs, '-j', 'filter', 'show', 'dev', hostIf, hook]);
    if (r.code !== 0) return [];
    return (JSON.parse(r.stdout || '[]') as { options?: { bpf_name?: string; prog?: { name?: string } } }[])
      .map((f) => f.options?.prog?.name ?? f.options?.bpf_name?.split(':')[0])
      .filter((n): n is string => typeof n === 'string');
  }

  /** Keys (host-veth ifindexes) of the pinned endpoints map, read with bpftool. */
  async endpointMapKeys(): Promise<number[]> {
    const r = await this.must('bpftool', ['-j', 'map', 'dump', 'pinned', join(this.bpffs, 'palisade', 'maps', 'pal_endpoints')]);
    const entries = JSON.parse(r.stdout || '[]') as { key: unknown; formatted?: { key: unknown } }[];
    return entries.map((e) => {
      const k = e.formatted?.key ?? e.key;
      if (typeof k === 'number') return k;
      if (Array.isArray(k)) return Buffer.from(k.slice(0, 4).map((b) => Number(b))).readUInt32LE(0);
      if (k && typeof k === 'object' && 'ifindex' in k) return Number((k as { ifindex: unknown }).ifindex);
      throw new Error(`unexpected map key ${JSON.stringify(k)}`);
    });
  }

  /**
   * Whether the pinned endpoints map holds `ifindex`, by a single-key lookup (a dump
   * that runs while entries are updated may skip keys).
   */
  async endpointMapHas(ifindex: number): Promise<boolean> {
    const key = [...Buffer.from(new Uint32Array([ifindex]).buffer)].map((b) => String(b));
    const r = await sh('bpftool', ['map', 'lookup', 'pinned', join(this.bpffs, 'palisade', 'maps', 'pal_endpoints'),
      'key', ...key]);
    if (r.code === 0) return true;
    // bpftool prints "Not found" on stdout and exits non-zero for a missing key.
    if (/not found/i.test(r.stdout + r.stderr)) return false;
    throw new Error(`bpftool map lookup: ${r.stderr.trim()}`);
  }

  async destroy(): Promise<void> {
    await this.stopAgent('SIGKILL').catch(() => undefined);
    for (const ns of this.pods) await sh('ip', ['netns', 'del', ns]);
    await sh('ip', ['netns', 'del', this.nodeNs]);
    if (this.bpffsMounted) await sh('umount', [this.bpffs]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Runs an echo server in `serverNs` and a client in `clientNs` on one TCP connection for
 * 6 s, restarting the agent (SIGTERM, start) in the middle. Resolves with the client's
 * exit status and output, and whether the client was still running when the new agent
 * was ready (the restart happened while the connection was in use).
 */
export async function echoAcrossRestart(node: Node, serverNs: string, clientNs: string, serverIp: string,
  port: number): Promise<{ code: number; out: string; aliveAtRestart: boolean }> {
  const server = spawn('nsenter', [`--net=${serverNs}`, 'python3', '-c', ECHO_SERVER, String(port)],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (c) => reject(new Error(`echo server exited ${c}`)));
    });
    const client = spawn('nsenter', [`--net=${clientNs}`, 'python3', '-c', ECHO_CLIENT, serverIp, String(port), '6'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    client.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
    client.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
    const done = new Promise<number>((resolve) => client.once('exit', (c) => resolve(c ?? -1)));
    await new Promise((r) => setTimeout(r, 1000));
    const stopped = await node.stopAgent();
    if (stopped !== 0) throw new Error(`agent exited with ${stopped} on SIGTERM`);
    await new Promise((r) => setTimeout(r, 500));
    await node.startAgent();
    const aliveAtRestart = client.exitCode === null;
    return { code: await done, out, aliveAtRestart };
  } finally {
    server.kill('SIGKILL');
  }
}

/**
 * Polls the pinned endpoints map (single-key lookups) every 20 ms until `stop()`;
 * `stop()` resolves with every observation of a missing entry.
 */
export function watchEndpointEntries(node: Node, ifindexes: number[]): { stop: () => Promise<string[]> } {
  const missing: string[] = [];
  let watching = true;
  const loop = (async () => {
    while (watching) {
      for (const i of ifindexes) if (!(await node.endpointMapHas(i))) missing.push(`ifindex ${i}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  })();
  return { stop: async () => { watching = false; await loop; return missing; } };
}
