/**
 * The agent's L7 part: the HTTP proxy (pkg/l7/proxy.ts) fed by the policy decider
 * (pkg/l7/decider.ts), with transparent sockets and the datapath redirect
 * (pkg/datapath/linux/l7sock.ts, l7redirect.ts). Order at start: proxy listening and
 * transparent, then the redirect's config, so no connection is redirected to a proxy
 * that cannot take it; at stop, the reverse. docs/l7.md.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FlowRecord } from '../flow/types.ts';
import { pauseL7Redirect, setupL7Redirect } from '../datapath/linux/l7redirect.ts';
import { TransparentSockets } from '../datapath/linux/l7sock.ts';
import type { LogFn } from '../endpoint/manager.ts';
import { PolicyDecider } from '../l7/decider.ts';
import { startL7Proxy } from '../l7/proxy.ts';
import type { L7Limits, L7Proxy } from '../l7/types.ts';
import type { CompileResult } from '../policy/types.ts';

export interface L7Options {
  /** Port of the proxy on 127.0.0.1 (the compiler's l7ProxyPort). */
  port: number;
  node: string;
  /** The latest compile result, read per request. */
  compileResult: () => CompileResult | undefined;
  onRecord(r: FlowRecord): void;
  /** `<bpffs-root>/palisade`, the Linux datapath's pin directory. */
  bpfDir: string;
  /** The agent's state directory. */
  stateDir: string;
  log: LogFn;
  limits?: Partial<L7Limits>;
}

export interface L7Handle {
  proxy: L7Proxy;
  decider: PolicyDecider;
  /** Stops redirecting new connections, then closes the proxy. */
  stop(): Promise<void>;
}

/** The repository root, found from this module's location (source or dist/). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bpf'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

export async function startL7(o: L7Options): Promise<L7Handle> {
  const root = repoRoot();
  const sockets = new TransparentSockets(join(root, 'bin', 'palisade-l7sock'));
  await sockets.start();
  const decider = new PolicyDecider(o.compileResult);
  let proxy: L7Proxy | undefined;
  try {
    proxy = await startL7Proxy({
      host: '127.0.0.1', port: o.port, node: o.node, decider, onRecord: o.onRecord, limits: o.limits,
      connectUpstream: (c) => sockets.connect(c.srcIp, c.dstIp, c.dstPort),
    });
    const fd = TransparentSockets.listenerFd(proxy.port);
    if (fd === undefined) throw new Error(`l7 proxy listener on port ${proxy.port} not found in /proc/self`);
    await sockets.makeTransparent(fd);
    await setupL7Redirect({
      proxyPort: proxy.port, dir: o.bpfDir, helper: join(root, 'bin', 'palisade-bpf'),
      object: join(root, 'bpf', 'out', 'l7_device.o'), stateDir: o.stateDir,
    });
  } catch (e) {
    await proxy?.close();
    sockets.close();
    throw e;
  }
  o.log('info', 'l7 proxy ready', { port: proxy.port });
  const p = proxy;
  return {
    proxy: p,
    decider,
    async stop() {
      // New connections are dropped (clients retry their SYN) until the next start.
      try {
        pauseL7Redirect(o.bpfDir);
      } catch (e) {
        o.log('warn', 'pausing the l7 redirect', { error: (e as Error).message });
      }
      await p.close();
      sockets.close();
    },
  };
}
