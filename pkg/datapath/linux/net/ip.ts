/**
 * Runs iproute2 in batch mode: one child process per namespace per operation, however
 * many commands. `ip -n` only takes names under /var/run/netns, while CNI_NETNS is any
 * path (/proc/PID/ns/net too), so a pod namespace is entered with `nsenter --net=PATH`.
 */
import { spawn } from 'node:child_process';

export interface IpRun {
  stdout: string;
  stderr: string;
  code: number;
}

export interface IpBatchOptions {
  /** Path of the network namespace to run in; the caller's namespace when absent. */
  netns?: string;
  /** `-j`: show commands print JSON, one array per command and line. */
  json?: boolean;
  /** `-force`: keep going after a failed command (the exit status still reports it). */
  force?: boolean;
  /**
   * Files under /proc/sys to write, in order, before ip runs, in the same namespace (a
   * `sh` that then execs ip: no extra process). A file that does not exist is skipped (a
   * kernel without that feature); a failed write fails the run, and ip does not run.
   */
  sysctls?: readonly { file: string; value: string }[];
}

// Positional arguments only, so no value is ever parsed as shell: FILE VALUE ... -- ARGV.
const SYSCTL_SH = 'while [ "$1" != -- ]; do '
  + 'if [ -e "$1" ] && ! printf %s "$2" > "$1"; then echo "writing $1 failed" >&2; exit 1; fi; '
  + 'shift 2; done; shift; exec "$@"';

export const IP_BIN = process.env.PALISADE_IP_BIN ?? 'ip';
export const NSENTER_BIN = process.env.PALISADE_NSENTER_BIN ?? 'nsenter';

/** Runs the commands (one per line, without the leading `ip`) and resolves with the outcome. */
export function ipBatch(commands: string[], opts: IpBatchOptions = {}): Promise<IpRun> {
  const ipArgs = [...(opts.json ? ['-j'] : []), ...(opts.force ? ['-force'] : []), '-batch', '-'];
  let ipArgv = [IP_BIN, ...ipArgs];
  if (opts.sysctls?.length) {
    for (const s of opts.sysctls) {
      if (!s.file.startsWith('/proc/sys/') || s.file.includes('..')) {
        return Promise.reject(new Error(`sysctl file ${s.file}: not under /proc/sys`));
      }
    }
    ipArgv = ['sh', '-c', SYSCTL_SH, 'sh', ...opts.sysctls.flatMap((s) => [s.file, s.value]), '--', ...ipArgv];
  }
  const [bin, args] = opts.netns
    ? [NSENTER_BIN, [`--net=${opts.netns}`, ...ipArgv]]
    : [ipArgv[0]!, ipArgv.slice(1)];
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(new Error(`running ${bin}: ${e.message}`, { cause: e })));
    child.on('close', (code) => resolve({
      stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(err).toString('utf8').trim(),
      code: code ?? -1,
    }));
    child.stdin.on('error', () => { /* the child exited early; its status says why */ });
    child.stdin.end(`${commands.join('\n')}\n`);
  });
}

/** Splits `ip -j -batch` output into one parsed array per show command. */
export function parseJsonLines(stdout: string): unknown[][] {
  return stdout.split('\n').filter((l) => l.trim().startsWith('[')).map((l) => JSON.parse(l) as unknown[]);
}

/** True when iproute2 said the device does not exist. */
export function isNoDevice(stderr: string): boolean {
  return /Cannot find device|does not exist|No such device/.test(stderr);
}
