/**
 * Rule ids: a stable, non-zero 32-bit FNV-1a hash of `policyKey/direction/ruleIndex`, so
 * a rule keeps its id across compiles and agent restarts and every node agrees on it.
 * 0 is reserved for "no rule" (default deny, replies, node traffic).
 */
import type { Direction } from '../datapath/types.ts';

export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  const bytes = new TextEncoder().encode(s);
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function ruleIdOf(policyKey: string, direction: Direction, ruleIndex: number): number {
  const h = fnv1a32(`${policyKey}/${direction}/${ruleIndex}`);
  return h === 0 ? 1 : h;
}
