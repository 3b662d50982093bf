/**
 * A persistent `palisade-bpf serve` process: the agent's attach, detach, ifname,
 * gc-links and info requests go to it as lines on its stdin instead of one process
 * start each (docs/datapath.md, docs/cni.md).
 *
 * Contract:
 * - `call(args)` resolves with what `palisade-bpf ...args` would have given: exit
 *   status, its output (stdout) or its error line (stderr). Requests run concurrently
 *   in the helper; answers are matched by id.
 * - The process starts on the first call. When it dies, the requests in flight resolve
 *   with status -1 and the next call starts a new one.
 * - It holds the event loop open only while requests are in flight, and `close()` ends
 *   it (closing stdin; it answers what is in flight, then exits).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { RunResult } from './exec.ts';

interface Pending {
  resolve: (r: RunResult) => void;
  timer: NodeJS.Timeout;
}

export class HelperServer {
  private readonly file: string;
  private readonly prefix: string[];
  private readonly timeoutMs: number;
  private child?: ChildProcess;
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private stderrTail = '';

  /**
   * `file` is the helper binary; `prefix` a command line that runs it (e.g. nsenter into
   * a namespace), so the server runs `[...prefix, file, 'serve']`.
   */
  constructor(file: string, prefix: string[] = [], timeoutMs = 30_000) {
    this.file = file;
    this.prefix = prefix;
    this.timeoutMs = timeoutMs;
  }

  /** Runs one request; arguments must not contain whitespace (rejected, nothing sent). */
  call(args: string[]): Promise<RunResult> {
    const bad = args.find((a) => a === '' || /\s/.test(a));
    if (bad !== undefined) {
      return Promise.reject(new Error(`palisade-bpf serve: bad argument ${JSON.stringify(bad)}`));
    }
    let child: ChildProcess;
    try {
      child = this.start();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const id = this.nextId++;
    return new Promise<RunResult>((resolve) => {
      const timer = setTimeout(() => this.settle(id, {
        code: -1, stdout: '', stderr: `palisade-bpf serve: no answer within ${this.timeoutMs} ms`,
      }), this.timeoutMs);
      this.pending.set(id, { resolve, timer });
      this.refresh();
      child.stdin!.write(`${id} ${args.join(' ')}\n`);
    });
  }

  private start(): ChildProcess {
    if (this.child) return this.child;
    const [bin, ...rest] = [...this.prefix, this.file, 'serve'];
    const child = spawn(bin!, rest, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.buf = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (c: string) => this.onData(c));
    // libbpf warnings; kept for the error of requests a crash leaves unanswered.
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (c: string) => { this.stderrTail = (this.stderrTail + c).slice(-2000); });
    child.stdin!.on('error', () => { /* it died; 'close' fails what is in flight */ });
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      for (const id of [...this.pending.keys()]) {
        this.settle(id, { code: -1, stdout: '', stderr: `palisade-bpf serve: ${why}${this.stderrTail ? `: ${this.stderrTail.trim()}` : ''}` });
      }
    };
    child.on('error', (e) => gone(`could not run ${bin}: ${e.message}`));
    child.on('close', (code, signal) => gone(`exited (${signal ?? code})`));
    return child;
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const m = /^(\d+) (-?\d+) ?(.*)$/.exec(line);
      if (!m) continue;
      const code = Number(m[2]);
      const text = m[3]!.trim();
      this.settle(Number(m[1]), code === 0
        ? { code, stdout: text, stderr: '' }
        : { code, stdout: '', stderr: text });
    }
  }

  private settle(id: number, r: RunResult): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    this.refresh();
    p.resolve(r);
  }

  /** The child keeps the process alive only while it owes answers. */
  private refresh(): void {
    const c = this.child;
    if (!c) return;
    const busy = this.pending.size > 0;
    for (const s of [c.stdout, c.stderr, c.stdin] as ({ ref(): void; unref(): void } | null)[]) {
      if (busy) s?.ref(); else s?.unref();
    }
    if (busy) c.ref(); else c.unref();
  }

  /** Ends the helper: in-flight requests are answered first. Resolves when it exited. */
  async close(): Promise<void> {
    const c = this.child;
    if (!c) return;
    const exited = new Promise<void>((r) => c.once('close', () => r()));
    c.stdin!.end();
    const t = setTimeout(() => c.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  }
}
