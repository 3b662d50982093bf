/**
 * Shared setup of the datapath system tests: a private bpffs mount, freshly built
 * programs, and cleanup helpers. Everything is named with a unique prefix and removed
 * in afterAll, also when a test fails.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export const repo = new URL('../../../', import.meta.url).pathname;
export const helper = join(repo, 'bin', 'palisade-bpf');

/** Builds the BPF objects and the helper (cheap when up to date). */
export function buildBpf(): void {
  execFileSync('make', ['-s', 'build-bpf'], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** Runs and ignores failure (cleanup paths). */
export function shQuiet(cmd: string, args: string[]): void {
  spawnSync(cmd, args, { stdio: 'ignore' });
}

export function ifindexOf(name: string, netns?: string): number {
  if (!netns) return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'));
  const out = sh('ip', ['-n', netns, '-o', 'link', 'show', 'dev', name]);
  return Number(out.split(':')[0]);
}

/** A directory for a private bpffs mount; unmount with `dropBpffs`. */
export function bpffsDir(prefix: string): string {
  const d = join('/tmp', `${prefix}-bpffs`);
  mkdirSync(d, { recursive: true });
  return d;
}

export function dropBpffs(dir: string): void {
  shQuiet('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
}
