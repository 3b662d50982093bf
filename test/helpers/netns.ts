/**
 * Pod network namespaces around a private "node" namespace, as the CNI lays them out:
 * each pod's eth0 is a veth whose node end carries the gateway /32 and a route to the
 * pod's /32, and the pod routes everything through the gateway. Used by the socket tests
 * (test/system) and the benchmarks (test/bench), so it imports Node modules only and
 * resolves no path of the repository. Every namespace is named by the caller (with a
 * unique prefix) and removed with `removeNetns`, also on failure.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A pod namespace: its name, address, node-side interface, and that interface's ifindex. */
export interface NetnsPod {
  ns: string;
  ip: string;
  hostIf: string;
  /** Set by `wirePods`. */
  ifindex: number;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/**
 * Creates the node namespace (forwarding on) and one namespace per pod wired to it
 * through `gw`; fills in each pod's ifindex (node side).
 */
export function wirePods(node: string, gw: string, pods: Iterable<NetnsPod>): void {
  sh('ip', ['netns', 'add', node]);
  sh('ip', ['-n', node, 'link', 'set', 'lo', 'up']);
  sh('ip', ['netns', 'exec', node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  for (const p of pods) {
    sh('ip', ['netns', 'add', p.ns]);
    sh('ip', ['-n', node, 'link', 'add', p.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p.ns]);
    sh('ip', ['-n', node, 'addr', 'add', `${gw}/32`, 'dev', p.hostIf]);
    sh('ip', ['-n', node, 'link', 'set', p.hostIf, 'up']);
    sh('ip', ['-n', node, 'route', 'add', `${p.ip}/32`, 'dev', p.hostIf]);
    sh('ip', ['-n', p.ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', p.ns, 'addr', 'add', `${p.ip}/32`, 'dev', 'eth0']);
    sh('ip', ['-n', p.ns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', p.ns, 'route', 'add', gw, 'dev', 'eth0', 'scope', 'link']);
    sh('ip', ['-n', p.ns, 'route', 'add', 'default', 'via', gw, 'dev', 'eth0']);
    p.ifindex = Number(sh('ip', ['-n', node, '-o', 'link', 'show', 'dev', p.hostIf]).split(':')[0]);
  }
}

/** Deletes the pods' namespaces and the node's; ignores the ones already gone. */
export function removeNetns(node: string, pods: Iterable<NetnsPod>): void {
  for (const p of pods) spawnSync('ip', ['netns', 'del', p.ns], { stdio: 'ignore' });
  spawnSync('ip', ['netns', 'del', node], { stdio: 'ignore' });
}

/**
 * Starts `cmd args` inside namespace `ns` and resolves once it printed its first line
 * (its "ready"); after `timeoutMs` without one, kills it and rejects. stderr goes to
 * ours when `stderr` is 'inherit'.
 */
export function startInNetns(ns: string, cmd: string, args: string[],
  opts: { what: string; timeoutMs: number; stderr: 'inherit' | 'ignore' }): Promise<ChildProcess> {
  const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', opts.stderr] });
  return new Promise((res, rej) => {
    const t = setTimeout(() => { p.kill('SIGKILL'); rej(new Error(`${opts.what} did not start`)); }, opts.timeoutMs);
    createInterface({ input: p.stdout! }).once('line', () => { clearTimeout(t); res(p); });
  });
}

/**
 * The lines a child prints, one at a time: `next(ms)` resolves with the next line, or
 * with "no output" when none comes within `ms`.
 */
export function lineReader(p: ChildProcess): (ms: number) => Promise<string> {
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  createInterface({ input: p.stdout! }).on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l); else lines.push(l);
  });
  return (ms: number) => new Promise<string>((res) => {
    const l = lines.shift();
    if (l !== undefined) return res(l);
    const t = setTimeout(() => res('no output'), ms);
    waiters.push((x) => { clearTimeout(t); res(x); });
  });
}

/** A pod of the socket tests: its namespace and, for the datapath, endpoint id and identity. */
export interface TestPod extends NetnsPod {
  name: string;
  id: number;
  identity: number;
}

/**
 * Pods a, b and c: namespaces `${prefix}a`..`${prefix}c`, addresses `${net}.10`, `.20`,
 * `.30`, node-side interfaces hosta..hostc, endpoint ids 1..3, identities 1001..1003.
 */
export function threePods(prefix: string, net: string): Record<'a' | 'b' | 'c', TestPod> {
  const pod = (name: string, n: number): TestPod =>
    ({ name, ns: `${prefix}${name}`, ip: `${net}.${n * 10}`, hostIf: `host${name}`, ifindex: 0, id: n, identity: 1000 + n });
  return { a: pod('a', 1), b: pod('b', 2), c: pod('c', 3) };
}
