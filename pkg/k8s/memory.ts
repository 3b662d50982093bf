/**
 * MemoryCluster: a `Cluster` fed directly by the caller (tests, benchmarks, standalone
 * tools). It behaves like one well-ordered watch stream: every write gets the next
 * integer resourceVersion, objects are slimmed exactly as the informers slim them, and
 * namespaces get the immutable `kubernetes.io/metadata.name` label the API server adds.
 */
import type { Cluster, Coverage } from './cluster.ts';
import { keyOf, RESOURCES, type AnyResource, type ResourceInfo, type ResourceKind } from './resources.ts';
import { ClusterStore } from './store.ts';

const byObjectKind: Record<string, ResourceInfo> = Object.fromEntries(
  Object.values(RESOURCES).map((r) => [r.objectKind, r]));

export interface MemoryClusterOptions {
  /** Synced from `start()` on (default true); otherwise call `markSynced()`. */
  syncOnStart?: boolean;
}

export class MemoryCluster implements Cluster {
  readonly store = new ClusterStore();
  readonly #listeners = new Set<() => void>();
  readonly #syncWaiters: (() => void)[] = [];
  readonly #syncOnStart: boolean;
  #rv = 0n;
  #synced = false;

  constructor(opts: MemoryClusterOptions = {}) {
    this.#syncOnStart = opts.syncOnStart ?? true;
  }

  get synced(): boolean {
    return this.#synced;
  }

  /** The resourceVersion of the last write. */
  get resourceVersion(): string {
    return this.#rv.toString();
  }

  start(): void {
    if (this.#syncOnStart) this.markSynced();
  }

  async stop(): Promise<void> {}

  markSynced(): void {
    if (this.#synced) return;
    this.#synced = true;
    for (const w of this.#syncWaiters.splice(0)) w();
    this.#progress();
  }

  whenSynced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  onProgress(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  coverage(rv: bigint): Coverage {
    const seen = this.store.resourceVersionNumber;
    return this.#synced && seen !== undefined && seen >= rv
      ? { covered: true, exact: true }
      : { covered: false };
  }

  /**
   * Creates or replaces an object by its `kind` (Pod, Namespace, Node, NetworkPolicy,
   * PalisadeNetworkPolicy). Returns the write's resourceVersion.
   */
  apply(obj: { kind?: string; metadata: { name: string; namespace?: string } } & object): string {
    const res = byObjectKind[obj.kind ?? ''];
    if (!res) throw new Error(`memory cluster: unsupported kind ${String(obj.kind)}`);
    const rv = this.#next();
    const raw = structuredClone(obj) as { metadata: Record<string, unknown> };
    raw.metadata.resourceVersion = rv;
    if (res.kind === 'namespaces') {
      raw.metadata.labels = {
        ...(raw.metadata.labels as Record<string, string> | undefined),
        'kubernetes.io/metadata.name': raw.metadata.name as string,
      };
    }
    this.store.upsert(res.kind, res.slim(raw) as never);
    this.#progress();
    return rv;
  }

  /** Deletes an object; `key` as in the store (`ns/name`, `name`, `Kind:ns/name`). */
  delete(kind: ResourceKind, key: string): string {
    const rv = this.#next();
    this.store.remove(kind, key, rv);
    this.#progress();
    return rv;
  }

  /** Advances the resourceVersion without a change (a bookmark). */
  bookmark(): string {
    const rv = this.#next();
    this.store.observeResourceVersion(rv);
    this.#progress();
    return rv;
  }

  /** Store key of an object, as `delete` expects it. */
  static keyOf(kind: ResourceKind, obj: AnyResource): string {
    return keyOf(kind, obj);
  }

  #next(): string {
    this.#rv++;
    return this.#rv.toString();
  }

  #progress(): void {
    for (const l of [...this.#listeners]) l();
  }
}
