/**
 * Which policy entries own which LPM keys of the policy map. Pure.
 *
 * A port range becomes several aligned prefixes, and two different entries can produce
 * the same prefix (e.g. [80-95] and [80-100] both contain 80/12). The map holds one value
 * per key, so deleting one of them must rewrite the key with the other's value rather
 * than delete it. This index answers that: it turns "upsert entry" and "delete entry"
 * into the map writes and deletes that keep every remaining entry fully covered.
 */
import { entryKey } from '../diff.ts';
import { encodePolicyKeys, encodePolicyValue } from '../codec.ts';
import type { PolicyEntry } from '../types.ts';

export interface MapWrites {
  set: [Buffer, Buffer][];
  delete: Buffer[];
}

export class PolicyKeyIndex {
  private readonly entries = new Map<string, PolicyEntry>();
  /** hex(key) -> entry keys (diff.ts entryKey.policy) that produce it, oldest first. */
  private readonly owners = new Map<string, Set<string>>();

  get size(): number {
    return this.entries.size;
  }

  has(e: PolicyEntry): boolean {
    return this.entries.has(entryKey.policy(e));
  }

  /** Records `e` (replacing an entry with the same key) and returns the writes. */
  upsert(e: PolicyEntry, out: MapWrites = { set: [], delete: [] }): MapWrites {
    const id = entryKey.policy(e);
    const value = encodePolicyValue(e);
    for (const key of encodePolicyKeys(e)) {
      const hex = key.toString('hex');
      let set = this.owners.get(hex);
      if (!set) this.owners.set(hex, (set = new Set()));
      set.add(id);
      out.set.push([key, value]);
    }
    this.entries.set(id, { ...e });
    return out;
  }

  /** Forgets `e` and returns the writes: keys nobody else owns go, shared ones are
   * rewritten with a remaining owner's value. */
  remove(e: PolicyEntry, out: MapWrites = { set: [], delete: [] }): MapWrites {
    const id = entryKey.policy(e);
    this.entries.delete(id);
    for (const key of encodePolicyKeys(e)) {
      const hex = key.toString('hex');
      const set = this.owners.get(hex);
      set?.delete(id);
      const next = set && [...set].map((o) => this.entries.get(o)).find((x) => x !== undefined);
      if (next) {
        out.set.push([key, encodePolicyValue(next)]);
      } else {
        this.owners.delete(hex);
        out.delete.push(key);
      }
    }
    return out;
  }

  values(): PolicyEntry[] {
    return [...this.entries.values()].map((e) => ({ ...e }));
  }
}
