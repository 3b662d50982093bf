/**
 * LinuxRouting: cross-node routes and pod masquerading in the kernel, with `ip` and
 * `iptables` (the Routing interface of pkg/controlplane/routes.ts).
 *
 * Ownership: it touches only what it created.
 * - Routes carry the route protocol `ROUTE_PROTO` (155, unassigned in
 *   /etc/iproute2/rt_protos and the kernel's RTPROT_* list); listing and deleting filter
 *   on it, so routes of other owners to the same prefixes are never read or removed.
 * - Masquerading lives in its own nat chain (`PALISADE-MASQ`), reached by one commented
 *   jump from POSTROUTING. The chain is rewritten atomically with
 *   `iptables-restore --noflush` (declaring a user chain in noflush mode flushes just that
 *   chain; the rest of the table is kept).
 *
 * `netns` runs everything inside a named network namespace (tests; the lab runs the
 * agent inside its node namespace already).
 */
import { execFile, spawn } from 'node:child_process';
import type { Masquerade, NodeRoute, Routing, RoutingState } from '../../controlplane/routes.ts';

export const ROUTE_PROTO = 155;
export const MASQ_CHAIN = 'PALISADE-MASQ';
const JUMP_COMMENT = 'palisade: masquerade pod traffic leaving the cluster';

export interface LinuxRoutingOptions {
  /** Named network namespace to act in (default: the current one). */
  netns?: string;
  /** Route protocol number that marks our routes (default ROUTE_PROTO). */
  proto?: number;
  /** nat chain holding the masquerade rules (default MASQ_CHAIN). */
  chain?: string;
}

export class RoutingError extends Error {
  readonly code = 'PAL_ROUTING';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RoutingError';
  }
}

interface ExecResult {
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input?: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    if (input === undefined) {
      execFile(cmd, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        if (err) reject(new RoutingError(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`, { cause: err }));
        else resolve({ stdout, stderr });
      });
      return;
    }
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', (err) => reject(new RoutingError(`${cmd}: ${err.message}`, { cause: err })));
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new RoutingError(`${cmd} ${args.join(' ')}: ${stderr.trim() || `exit ${code}`}`));
    });
    child.stdin.end(input);
  });
}

const CIDR_RE = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;
const IP_RE = /^\d{1,3}(\.\d{1,3}){3}$/;

export class LinuxRouting implements Routing {
  readonly proto: number;
  readonly chain: string;
  readonly #netns: string | undefined;

  constructor(opts: LinuxRoutingOptions = {}) {
    this.proto = opts.proto ?? ROUTE_PROTO;
    if (!Number.isInteger(this.proto) || this.proto < 5 || this.proto > 255) {
      throw new RangeError(`route protocol must be 5..255, got ${String(opts.proto)}`);
    }
    this.chain = opts.chain ?? MASQ_CHAIN;
    if (!/^[A-Z][A-Z0-9-]{0,27}$/.test(this.chain)) {
      throw new RangeError(`invalid chain name ${JSON.stringify(this.chain)}`);
    }
    this.#netns = opts.netns;
  }

  async apply(desired: RoutingState): Promise<void> {
    validate(desired);
    const errors: string[] = [];
    const current = await this.#routes();
    const have = new Map(current.map((r) => [r.dst, r.via]));
    const want = new Set(desired.routes.map((r) => r.dst));
    // Add (or repoint) before deleting, as everywhere in Palisade.
    for (const r of desired.routes) {
      if (have.get(r.dst) === r.via) continue;
      try {
        await this.#ip(['route', 'replace', r.dst, 'via', r.via, 'proto', String(this.proto)]);
      } catch (err) {
        errors.push(`route ${r.dst} via ${r.via} (${r.node}): ${(err as Error).message}`);
      }
    }
    for (const r of current) {
      if (want.has(r.dst)) continue;
      try {
        await this.#ip(['route', 'del', r.dst, 'proto', String(this.proto)]);
      } catch (err) {
        errors.push(`deleting route ${r.dst}: ${(err as Error).message}`);
      }
    }
    try {
      await this.#applyMasquerade(desired.masquerade);
    } catch (err) {
      errors.push(`masquerade: ${(err as Error).message}`);
    }
    if (errors.length) throw new RoutingError(`applying routing: ${errors.join('; ')}`);
  }

  async dump(): Promise<RoutingState> {
    return { routes: await this.#routes(), masquerade: await this.#readMasquerade() };
  }

  async clear(): Promise<void> {
    for (const r of await this.#routes()) {
      await this.#ip(['route', 'del', r.dst, 'proto', String(this.proto)]);
    }
    await this.#applyMasquerade(undefined);
  }

  /** Our routes in the main table. */
  async #routes(): Promise<NodeRoute[]> {
    const { stdout } = await this.#ip(['-j', 'route', 'show', 'table', 'main', 'proto', String(this.proto)]);
    const list = JSON.parse(stdout.trim() || '[]') as { dst?: string; gateway?: string }[];
    return list.filter((r) => r.dst && r.gateway)
      .map((r) => ({ dst: r.dst!.includes('/') ? r.dst! : `${r.dst}/32`, via: r.gateway!, node: '' }))
      .sort((a, b) => a.dst.localeCompare(b.dst));
  }

  async #applyMasquerade(m: Masquerade | undefined): Promise<void> {
    const current = await this.#readMasquerade();
    if (!m) {
      if (current === undefined && !(await this.#chainExists())) return;
      await this.#deleteJump();
      if (await this.#chainExists()) {
        await this.#iptables(['-t', 'nat', '-F', this.chain]);
        await this.#iptables(['-t', 'nat', '-X', this.chain]);
      }
      return;
    }
    const same = current
      && JSON.stringify(current.podCIDRs) === JSON.stringify([...m.podCIDRs].sort())
      && JSON.stringify(current.clusterCIDRs) === JSON.stringify([...m.clusterCIDRs].sort());
    if (!same) {
      const lines = ['*nat', `:${this.chain} - [0:0]`];
      for (const src of m.podCIDRs) {
        for (const dst of m.clusterCIDRs) lines.push(`-A ${this.chain} -s ${src} -d ${dst} -j RETURN`);
        lines.push(`-A ${this.chain} -s ${src} -j MASQUERADE`);
      }
      lines.push('COMMIT', '');
      await this.#iptablesRestore(lines.join('\n'));
    }
    await this.#ensureJump();
  }

  async #readMasquerade(): Promise<Masquerade | undefined> {
    if (!(await this.#chainExists())) return undefined;
    const { stdout } = await this.#iptables(['-t', 'nat', '-S', this.chain]);
    const pod = new Set<string>();
    const cluster = new Set<string>();
    for (const line of stdout.split('\n')) {
      const src = /-s (\S+)/.exec(line)?.[1];
      const dst = /-d (\S+)/.exec(line)?.[1];
      if (line.includes('-j MASQUERADE') && src) pod.add(src);
      if (line.includes('-j RETURN') && dst) cluster.add(dst);
    }
    if (pod.size === 0) return undefined;
    return { podCIDRs: [...pod].sort(), clusterCIDRs: [...cluster].sort() };
  }

  async #chainExists(): Promise<boolean> {
    try {
      await this.#iptables(['-t', 'nat', '-S', this.chain]);
      return true;
    } catch {
      return false;
    }
  }

  #jumpArgs(op: '-C' | '-A' | '-D'): string[] {
    return ['-t', 'nat', op, 'POSTROUTING', '-m', 'comment', '--comment', JUMP_COMMENT, '-j', this.chain];
  }

  async #ensureJump(): Promise<void> {
    try {
      await this.#iptables(this.#jumpArgs('-C'));
    } catch {
      await this.#iptables(this.#jumpArgs('-A'));
    }
  }

  async #deleteJump(): Promise<void> {
    for (;;) {
      try {
        await this.#iptables(this.#jumpArgs('-D'));
      } catch {
        return; // no (more) jump
      }
    }
  }

  #ip(args: string[]): Promise<ExecResult> {
    return run('ip', this.#netns ? ['-n', this.#netns, ...args] : args);
  }

  #iptables(args: string[]): Promise<ExecResult> {
    // -w: wait for the xtables lock instead of failing when another writer holds it.
    return this.#inNetns('iptables', ['-w', '5', ...args]);
  }

  #iptablesRestore(input: string): Promise<ExecResult> {
    return this.#inNetns('iptables-restore', ['-w', '5', '--noflush'], input);
  }

  #inNetns(cmd: string, args: string[], input?: string): Promise<ExecResult> {
    if (!this.#netns) return run(cmd, args, input);
    return run('ip', ['netns', 'exec', this.#netns, cmd, ...args], input);
  }
}

function validate(s: RoutingState): void {
  for (const r of s.routes) {
    if (!CIDR_RE.test(r.dst)) throw new RoutingError(`invalid route destination ${JSON.stringify(r.dst)}`);
    if (!IP_RE.test(r.via)) throw new RoutingError(`invalid gateway ${JSON.stringify(r.via)}`);
  }
  for (const c of [...(s.masquerade?.podCIDRs ?? []), ...(s.masquerade?.clusterCIDRs ?? [])]) {
    if (!CIDR_RE.test(c)) throw new RoutingError(`invalid masquerade CIDR ${JSON.stringify(c)}`);
  }
}
