/**
 * Small pieces shared by the benchmark programs (test/bench/*.ts): the median, shell
 * helpers, and the one crafted TCP frame they feed to BPF_PROG_TEST_RUN. The pod
 * namespaces themselves come from test/helpers/netns.ts, shared with the tests.
 */
import { execFileSync, spawnSync } from 'node:child_process';

/** The median; of an even count, the mean of the two middle values. */
export function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/**
 * A whole number >= 1 from the environment, else `fallback`. Anything else stops the bench
 * with a clear message: iperf3's `-t` takes whole seconds, and 0.3 used to hang a round.
 */
export function envCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`${name} must be a whole number >= 1, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return n;
}

/** Runs a command; its stdout. Throws on a non-zero exit. */
export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** Runs and ignores failure (cleanup paths). */
export function quiet(cmd: string, args: string[]): void {
  spawnSync(cmd, args, { stdio: 'ignore' });
}

/** `sh` inside network namespace `ns`. */
export function inNs(ns: string, cmd: string, args: string[]): string {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
}

/** An Ethernet + IPv4 + TCP frame (no payload, checksums zero) with the given TCP flags. */
export function tcpFrame(src: string, dst: string, sport: number, dport: number, flags: number): Buffer {
  const b = Buffer.alloc(14 + 20 + 20);
  b.writeUInt16BE(0x0800, 12);
  Buffer.from([0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0]).copy(b, 14);
  Buffer.from(src.split('.').map(Number)).copy(b, 26);
  Buffer.from(dst.split('.').map(Number)).copy(b, 30);
  b.writeUInt16BE(sport, 34);
  b.writeUInt16BE(dport, 36);
  b[46] = 0x50;
  b[47] = flags;
  return b;
}
