/**
 * Process helpers for the lab: run a command to completion, or start a detached child
 * (its own session, logs to a file) that outlives the lab's CLI process.
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  env?: Record<string, string>;
  /** Kill the command after this many ms (default 60 s). */
  timeoutMs?: number;
}

/** Runs a command and collects its output; never throws for a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => { /* the command may exit without reading stdin */ });
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs a command; throws `<what>: <stderr>` when it fails. Returns stdout. */
export async function must(cmd: string, args: readonly string[], what?: string, opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const msg = (r.stderr || r.stdout).trim().split('\n').slice(-3).join('; ');
    throw new Error(`${what ?? `${cmd} ${args.join(' ')}`}: ${msg || `exit ${r.code}`}`);
  }
  return r.stdout;
}

/** `ip` inside a named network namespace (or the current one when ns is undefined). */
export function ip(ns: string | undefined, args: readonly string[]): Promise<string> {
  const full = ns ? ['-n', ns, ...args] : [...args];
  return must('ip', full, `ip ${full.join(' ')}`);
}

/**
 * Starts a detached child (own process group, stdin closed, stdout+stderr appended to
 * `logFile`) and returns its pid. The child keeps running if the lab CLI dies; cleanup
 * finds it through the network namespace it runs in or the lab's state file.
 */
export function startDetached(cmd: string, args: readonly string[], logFile: string, env?: Record<string, string>): number {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(cmd, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: env ?? process.env,
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`starting ${cmd}: no pid`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** Whether a pid is alive and its command line contains `marker`. */
export function pidMatches(pid: number, marker: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return false;
  }
}

/**
 * Whether `pid` runs with `dir` as a whole argument or as the directory of an argument, so
 * that lab `a`'s directory never matches a process of lab `ab`.
 */
export function pidUsesDir(pid: number, dir: string): boolean {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return args.some((a) => a === dir || a.startsWith(`${dir}/`));
  } catch {
    return false;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs` for whatever is still alive. */
export async function killAll(pids: readonly number[], graceMs = 2000): Promise<void> {
  const live = pids.filter((p) => p > 1 && pidAlive(p));
  for (const p of live) {
    try { process.kill(p, 'SIGTERM'); } catch { /* already gone */ }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && live.some(pidAlive)) await sleep(50);
  for (const p of live) {
    if (pidAlive(p)) {
      try { process.kill(p, 'SIGKILL'); } catch { /* already gone */ }
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
