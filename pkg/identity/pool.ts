/**
 * A pool of numeric identities in [first, last], keyed by strings. The compiler calls
 * `sync` once per compile with every key in use: keys that stay keep their number, keys
 * that went away release it, new keys get one (in sorted key order, so the outcome
 * depends only on the inputs and the pool's state, never on iteration order).
 *
 * Reuse is delayed: a released number goes to the back of a quarantine and is handed out
 * again only after `reuseDelay` further syncs, and only once the fresh numbers are used
 * up. So a number never names two different label sets within one compile, nor in two
 * compiles close enough for a half-applied datapath update to mix them up.
 */

export interface IdentityPoolJSON {
  version: 1;
  first: number;
  last: number;
  /** Next never-used number. */
  next: number;
  /** Number of syncs done. */
  generation: number;
  inUse: [key: string, id: number][];
  /** Released numbers, oldest first, with the generation that released them. */
  released: [id: number, generation: number][];
}

export class IdentityPoolError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export class IdentityPool {
  readonly first: number;
  readonly last: number;
  readonly reuseDelay: number;
  #next: number;
  #generation = 0;
  readonly #byKey = new Map<string, number>();
  readonly #byId = new Map<number, string>();
  #released: [number, number][] = [];

  constructor(first: number, last: number, reuseDelay = 3) {
    if (!Number.isInteger(first) || !Number.isInteger(last) || first > last || first < 1) {
      throw new IdentityPoolError('PAL_IDENTITY_RANGE', `invalid identity range ${first}..${last}`);
    }
    this.first = first;
    this.last = last;
    this.reuseDelay = reuseDelay;
    this.#next = first;
  }

  get generation(): number {
    return this.#generation;
  }

  get size(): number {
    return this.#byKey.size;
  }

  idOf(key: string): number | undefined {
    return this.#byKey.get(key);
  }

  keyOf(id: number): string | undefined {
    return this.#byId.get(id);
  }

  entries(): IterableIterator<[string, number]> {
    return this.#byKey.entries();
  }

  /**
   * Makes exactly `keys` allocated and returns key -> number. Throws (changing nothing)
   * when the pool cannot hold them all.
   */
  sync(keys: Iterable<string>): ReadonlyMap<string, number> {
    const want = new Set(keys);
    const fresh = [...want].filter((k) => !this.#byKey.has(k)).sort();
    const gone = [...this.#byKey.keys()].filter((k) => !want.has(k));
    const gen = this.#generation + 1;
    const reusable = this.#released.filter(([, g]) => g + this.reuseDelay <= gen).length;
    const freshRoom = this.last - this.#next + 1;
    if (fresh.length > freshRoom + reusable) {
      throw new IdentityPoolError('PAL_IDENTITY_EXHAUSTED',
        `allocating ${fresh.length} identities: range ${this.first}..${this.last} exhausted`);
    }
    this.#generation = gen;
    for (const k of gone) {
      const id = this.#byKey.get(k)!;
      this.#byKey.delete(k);
      this.#byId.delete(id);
      this.#released.push([id, gen]);
    }
    let reused = 0;
    for (const k of fresh) {
      let id: number;
      if (this.#next <= this.last) {
        id = this.#next++;
      } else {
        id = this.#released[reused++]![0];
      }
      this.#byKey.set(k, id);
      this.#byId.set(id, k);
    }
    if (reused > 0) this.#released = this.#released.slice(reused);
    return this.#byKey;
  }

  toJSON(): IdentityPoolJSON {
    return {
      version: 1,
      first: this.first,
      last: this.last,
      next: this.#next,
      generation: this.#generation,
      inUse: [...this.#byKey.entries()].sort((a, b) => a[1] - b[1]),
      released: this.#released.map(([id, g]) => [id, g]),
    };
  }

  /** Restores a pool saved by `toJSON`; throws on anything inconsistent. */
  static fromJSON(j: unknown, reuseDelay = 3): IdentityPool {
    const bad = (why: string) =>
      new IdentityPoolError('PAL_IDENTITY_STATE', `restoring identity pool: ${why}`);
    if (typeof j !== 'object' || j === null) throw bad('not an object');
    const o = j as Partial<IdentityPoolJSON>;
    if (o.version !== 1) throw bad(`unsupported version ${String(o.version)}`);
    const ints = [o.first, o.last, o.next, o.generation];
    if (!ints.every((n) => Number.isInteger(n))) throw bad('missing counters');
    const pool = new IdentityPool(o.first!, o.last!, reuseDelay);
    if (o.next! < pool.first || o.next! > pool.last + 1) throw bad(`next ${o.next} out of range`);
    pool.#next = o.next!;
    pool.#generation = o.generation!;
    if (!Array.isArray(o.inUse) || !Array.isArray(o.released)) throw bad('missing tables');
    const inRange = (id: unknown): id is number =>
      Number.isInteger(id) && (id as number) >= pool.first && (id as number) < pool.#next;
    for (const pair of o.inUse) {
      if (!Array.isArray(pair) || typeof pair[0] !== 'string' || !inRange(pair[1])) {
        throw bad(`invalid entry ${JSON.stringify(pair)}`);
      }
      if (pool.#byKey.has(pair[0]) || pool.#byId.has(pair[1])) {
        throw bad(`duplicate entry ${JSON.stringify(pair)}`);
      }
      pool.#byKey.set(pair[0], pair[1]);
      pool.#byId.set(pair[1], pair[0]);
    }
    for (const pair of o.released) {
      if (!Array.isArray(pair) || !inRange(pair[0]) || !Number.isInteger(pair[1])
        || pool.#byId.has(pair[0])) {
        throw bad(`invalid released entry ${JSON.stringify(pair)}`);
      }
      pool.#released.push([pair[0], pair[1]]);
    }
    return pool;
  }
}
