/**
 * Gate for tests that need root (kernel, network namespaces, the lab). They run in CI as
 * root; elsewhere they are skipped with a reason printed once per file.
 */
import { describe } from 'vitest';

export const isRoot = process.getuid?.() === 0;

/** `describe` that runs only as root, and says why it was skipped otherwise. */
export function describePrivileged(name: string, fn: () => void): void {
  if (!isRoot) {
    console.warn(`SKIP "${name}": needs root (kernel, netns); run 'make test' as root`);
  }
  describe.skipIf(!isRoot)(name, fn);
}

/** A short unique prefix for kernel objects a test creates (netns, links, pins). */
export function uniquePrefix(tag: string): string {
  const rand = Math.random().toString(36).slice(2, 6);
  return `pt${tag.slice(0, 3)}${process.pid % 1000}${rand}`;
}
