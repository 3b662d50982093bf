/** Shared helpers for the lab API server tests: a server per suite, kubectl and HTTP calls. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApiServer, type ApiServer, type ApiServerOptions } from '../../../pkg/apiserver/index.ts';

export const FIXTURE_CRDS = new URL('./fixtures/widgets.yaml', import.meta.url).pathname;

export interface Lab {
  server: ApiServer;
  dir: string;
  kubeconfig: string;
  /** Runs kubectl against the server; resolves with stdout, rejects with stderr on failure. */
  kubectl(args: string[], stdin?: string): Promise<string>;
  /** Runs kubectl and resolves with its exit code and output, whatever the code. */
  kubectlResult(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Starts a long-running kubectl (e.g. `get -w`); the caller kills it. */
  kubectlSpawn(args: string[]): ChildProcess;
  /** fetch() against the server with a path. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- free-form JSON read by assertions
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startLab(opts: ApiServerOptions = {}): Promise<Lab> {
  const dir = await mkdtemp(join(tmpdir(), 'pal-apiserver-'));
  const server = await startApiServer({ crdFiles: [FIXTURE_CRDS], ...opts });
  const kubeconfig = join(dir, 'kubeconfig');
  await server.writeKubeconfig(kubeconfig);
  const env = { ...process.env, KUBECONFIG: kubeconfig, HOME: dir };
  const base = ['--cache-dir', join(dir, 'cache'), '--request-timeout=15s'];
  const kubectlResult = (args: string[], stdin?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile('kubectl', [...base, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout, stderr: stderr || (err ? err.message : '') });
      });
      if (stdin !== undefined) child.stdin?.end(stdin);
    });
  return {
    server,
    dir,
    kubeconfig,
    kubectlResult,
    async kubectl(args, stdin) {
      const r = await kubectlResult(args, stdin);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    },
    kubectlSpawn: (args) => spawn('kubectl', [...base, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
    async call(method, path, body, headers = {}) {
      const h: Record<string, string> = { ...headers };
      if (body !== undefined && !h['content-type']) h['content-type'] = 'application/json';
      const res = await fetch(server.url + path, {
        method,
        headers: h,
        ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: keep text
      }
      return { status: res.status, body: parsed };
    },
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once `pred` holds, polling every 20 ms; rejects with `what` after `ms`. */
export async function waitFor(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface WatchStream {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- free-form JSON read by assertions
  events: { type: string; object: any }[];
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** Opens a raw watch (`path` must carry `watch=1`) and collects its newline-delimited events. */
export async function openWatch(baseUrl: string, path: string, headers: Record<string, string> = {}): Promise<WatchStream> {
  const ctl = new AbortController();
  const res = await fetch(baseUrl + path, { headers, signal: ctl.signal });
  if (res.status !== 200 || !res.body) throw new Error(`watch ${path}: HTTP ${res.status}`);
  const events: WatchStream['events'] = [];
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  const ended = (async () => {
    let buf = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim()) events.push(JSON.parse(line));
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return { events, ended, close: () => ctl.abort() };
}
