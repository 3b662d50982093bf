/**
 * The `Cluster` seam (STYLE principle 2): where the control plane gets cluster state.
 * `KubernetesCluster` runs one informer per watched resource against an API server;
 * `MemoryCluster` (memory.ts) is fed by tests. Both fill a `ClusterStore`.
 */
import type { BackoffOptions } from './backoff.ts';
import { silentLogger, systemClock, type Clock, type Logger } from './clock.ts';
import { Informer, type ListWatchSource } from './informer.ts';
import { RESOURCES, type ResourceInfo } from './resources.ts';
import { ClusterStore } from './store.ts';

/**
 * Whether the state held covers the API state as of a resourceVersion. `exact: false`
 * means the answer relies on quiet watches (see KubernetesCluster.coverage): the caller
 * must confirm it after pending I/O has been read (see ControlPlane's waiters).
 */
export type Coverage =
  | { covered: true; exact: boolean }
  | { covered: false; recheckInMs?: number };

export interface Cluster {
  readonly store: ClusterStore;
  /** Starts watching. Idempotent. */
  start(): void;
  /** Stops every watch; the store keeps its contents. */
  stop(): Promise<void>;
  /** True once every resource completed its initial list (never false again). */
  readonly synced: boolean;
  whenSynced(): Promise<void>;
  /**
   * Called when the sync state, a seen resourceVersion or a watch connection changes
   * (store changes also go to `store.subscribe`). Returns the unsubscribe function.
   */
  onProgress(listener: () => void): () => void;
  /**
   * Whether the store holds everything the API had at resourceVersion `rv`. When not
   * covered, `recheckInMs` says when the answer may change without further progress.
   */
  coverage(rv: bigint): Coverage;
}

export interface KubernetesClusterOptions {
  source: ListWatchSource;
  clock?: Clock;
  log?: Logger;
  backoff?: BackoffOptions;
  absentRetryMs?: number;
  /**
   * See `coverage`: how long a connected, idle watch must have been quiet after another
   * watch reached a resourceVersion before it is taken to have nothing older pending.
   * Default 20 ms.
   */
  quietMs?: number;
  /** Resources to watch (default: all of RESOURCES). */
  resources?: readonly ResourceInfo[];
}

/** History of "when did the seen RV reach x": how long and how many entries are kept. */
const SEEN_HISTORY_MS = 60_000;
const SEEN_HISTORY_MAX = 1024;

export class KubernetesCluster implements Cluster {
  readonly store = new ClusterStore();
  readonly informers: readonly Informer[];
  readonly #clock: Clock;
  readonly #quietMs: number;
  readonly #listeners = new Set<() => void>();
  /** (resourceVersion, clock time it was first seen), increasing in both. */
  readonly #seen: [bigint, number][] = [];
  #started = false;
  #synced = false;
  readonly #syncWaiters: (() => void)[] = [];

  constructor(opts: KubernetesClusterOptions) {
    this.#clock = opts.clock ?? systemClock;
    this.#quietMs = opts.quietMs ?? 20;
    const log = opts.log ?? silentLogger;
    const resources = opts.resources ?? Object.values(RESOURCES);
    this.informers = resources.map((resource) => new Informer({
      resource, source: opts.source, store: this.store, clock: this.#clock, log,
      backoff: opts.backoff, absentRetryMs: opts.absentRetryMs,
      onProgress: () => this.#progress(),
    }));
  }

  get synced(): boolean {
    return this.#synced;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    for (const inf of this.informers) inf.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
    this.#started = false;
  }

  whenSynced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  onProgress(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Covered when every informer has reached `rv` through its own events or bookmarks.
   * Watches of different resources are separate streams, so one can run ahead of another
   * (a pod event at RV 100 may arrive before a policy event at RV 95). An informer that
   * lags is still taken as covering `rv` once its watch is connected and has been quiet
   * for `quietMs` since some other stream reached `rv`: nothing older is in flight. With
   * servers that send bookmarks promptly, the first rule answers and no wait is needed.
   * Quiet is wall-clock time, and the event loop may have been busy during it with the
   * lagging stream's data already in its socket: so a quiet answer is `exact: false`, to
   * be confirmed after the loop has read pending I/O.
   */
  coverage(rv: bigint): Coverage {
    if (!this.#synced) return { covered: false };
    const max = this.store.resourceVersionNumber;
    if (max === undefined || max < rv) return { covered: false };
    const seenAt = this.#seenAt(rv);
    const now = this.#clock.now();
    let recheck = 0;
    let exact = true;
    for (const inf of this.informers) {
      if (inf.absent) continue;
      const irv = inf.resourceVersion;
      if (irv !== undefined && irv >= rv) continue;
      if (!inf.watching) return { covered: false };
      exact = false;
      const quietUntil = Math.max(inf.lastEventAt, seenAt) + this.#quietMs;
      if (quietUntil > now) recheck = Math.max(recheck, quietUntil - now);
    }
    return recheck > 0 ? { covered: false, recheckInMs: recheck } : { covered: true, exact };
  }

  /**
   * Clock time when the store's seen RV first reached `rv`; for an rv older than the
   * history, the oldest time kept (later than the truth: conservative).
   */
  #seenAt(rv: bigint): number {
    for (const [v, t] of this.#seen) if (v >= rv) return t;
    return -Infinity;
  }

  #progress(): void {
    const max = this.store.resourceVersionNumber;
    const now = this.#clock.now();
    const last = this.#seen.at(-1);
    if (max !== undefined && (!last || max > last[0])) this.#seen.push([max, now]);
    // Forgetting is conservative: an older rv then maps to a later "seen" time.
    let drop = 0;
    while (drop < this.#seen.length - 1
      && (this.#seen[drop]![1] < now - SEEN_HISTORY_MS || this.#seen.length - drop > SEEN_HISTORY_MAX)) drop++;
    if (drop) this.#seen.splice(0, drop);
    if (!this.#synced && this.informers.every((i) => i.synced)) {
      this.#synced = true;
      for (const w of this.#syncWaiters.splice(0)) w();
    }
    for (const l of [...this.#listeners]) l();
  }
}
