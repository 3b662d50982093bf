/**
 * Transparent sockets for the L7 proxy, from Node.js, which cannot set IP_TRANSPARENT.
 *
 * A long-lived child (bin/palisade-l7sock) takes a descriptor number of this process per
 * request, duplicates it with pidfd_getfd(2) and sets IP_TRANSPARENT on the shared socket.
 * The proxy needs it on its listener (the SYN-ACK of a connection assigned with
 * bpf_sk_assign leaves from the original destination, a pod address the node does not
 * own) and on every upstream socket (which connects from the client pod's address).
 * See docs/l7.md, "The redirect".
 *
 * Upstream sockets are prepared in the gap Node leaves between creating a socket handle
 * and connecting it: `net.connect` with a non-IP host calls our `lookup`, where the handle
 * exists but has no descriptor yet. There we bind it to the client's address (which
 * creates the descriptor; `net.ipv4.ip_nonlocal_bind=1` in the node's namespace allows the
 * foreign address, see l7redirect.ts), make it transparent, and only then answer the
 * lookup with the real destination, so connect() runs on a transparent socket.
 * `socket._handle.bind`/`.fd` are Node internals (stable since Node 0.x, used widely);
 * a missing one fails the connection with a clear error instead of connecting untransparent.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';

export class L7SocketError extends Error {
  readonly code = 'PAL_L7_SOCKET';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'L7SocketError';
  }
}

interface TcpHandle {
  bind(ip: string, port: number): number;
  fd: number;
}

/** The placeholder host that makes net.connect call our lookup. */
const UPSTREAM_HOST = 'palisade-l7-upstream.invalid';

export class TransparentSockets {
  readonly #helper: string;
  #child?: ChildProcessWithoutNullStreams;
  readonly #waiting: { fd: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  #closed = false;

  constructor(helperPath: string) {
    this.#helper = helperPath;
  }

  /** Starts the helper; rejects with a clear error when it is missing or dies at once. */
  async start(): Promise<void> {
    if (this.#child) return;
    if (!existsSync(this.#helper)) throw new L7SocketError(`helper ${this.#helper} not found (run 'make build')`);
    const child = spawn(this.#helper, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const w = this.#waiting.shift();
      if (!w) return;
      if (line.startsWith('ok ')) w.resolve();
      else w.reject(new L7SocketError(`making fd ${w.fd} transparent: ${line.replace(/^err \S+ /, '')}`));
    });
    child.on('exit', (code) => {
      this.#child = undefined;
      const err = new L7SocketError(`palisade-l7sock exited (${code ?? 'signal'}): ${stderr.trim()}`);
      for (const w of this.#waiting.splice(0)) w.reject(err);
    });
    child.on('error', () => { /* 'exit' reports it */ });
    // Its stdin keeps the event loop alive only while requests are pending.
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
  }

  /** Sets IP_TRANSPARENT on descriptor `fd` of this process. */
  makeTransparent(fd: number): Promise<void> {
    const child = this.#child;
    if (!child || this.#closed) return Promise.reject(new L7SocketError('transparent sockets helper is not running'));
    return new Promise((resolve, reject) => {
      this.#waiting.push({ fd, resolve, reject });
      child.stdin.write(`${fd}\n`);
    });
  }

  /**
   * A socket connecting from `srcIp` (port chosen by the kernel) to `dstIp:dstPort`,
   * transparent before it connects. Returned at once, like net.connect; failures are
   * 'error' events.
   */
  connect(srcIp: string, dstIp: string, dstPort: number): net.Socket {
    const socket = new net.Socket();
    socket.connect({
      host: UPSTREAM_HOST,
      port: dstPort,
      family: 4,
      lookup: (_host, _opts, cb) => {
        this.#prepare(socket, srcIp).then(
          () => (cb as (e: Error | null, a: string, f: number) => void)(null, dstIp, 4),
          (e: Error) => (cb as (e: Error | null) => void)(e),
        );
      },
    });
    return socket;
  }

  async #prepare(socket: net.Socket, srcIp: string): Promise<void> {
    const handle = (socket as unknown as { _handle?: TcpHandle })._handle;
    if (!handle || typeof handle.bind !== 'function') throw new L7SocketError('upstream socket has no handle to bind');
    const rc = handle.bind(srcIp, 0);
    if (rc !== 0) throw new L7SocketError(`binding upstream socket to ${srcIp}: error ${rc}`);
    if (!(handle.fd >= 0)) throw new L7SocketError('upstream socket has no descriptor');
    await this.makeTransparent(handle.fd);
  }

  /** The descriptor of this process's listening TCP socket on `port` (IPv4), or undefined. */
  static listenerFd(port: number): number | undefined {
    const inodes = new Set<string>();
    for (const line of readFileSync('/proc/self/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A = LISTEN; inode is column 10.
      if (f.length < 10 || f[3] !== '0A') continue;
      if (Number.parseInt(f[1]!.split(':')[1]!, 16) === port) inodes.add(f[9]!);
    }
    for (const name of readdirSync('/proc/self/fd')) {
      let target: string;
      try {
        target = readlinkSync(`/proc/self/fd/${name}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1]!)) return Number(name);
    }
    return undefined;
  }

  close(): void {
    this.#closed = true;
    const child = this.#child;
    this.#child = undefined;
    if (child) child.stdin.end();
    for (const w of this.#waiting.splice(0)) w.reject(new L7SocketError('transparent sockets helper closed'));
  }
}
