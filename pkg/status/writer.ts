/**
 * The status writer: keeps status objects in the API server equal to what the agent
 * wants, without ever loading the API server (per-endpoint status is a known way to
 * overload it):
 * - coalesced per object: `set` only records the wanted content; one worker writes the
 *   latest content of each dirty object, so 50 changes to one object before its turn
 *   are one write;
 * - written only on change: content is compared by fingerprint (the caller leaves out
 *   what must not cause a write on its own, e.g. a revision or a timestamp);
 * - rate-limited: every API call takes a token from one bucket (N writes/s per agent);
 * - failures retry with backoff, per object; an object deleted behind our back (404 on
 *   the status patch) is created again.
 */
import {
  StatusApiError, type ObjectRef, type StatusApi, type StatusKind, type StatusMeta,
} from './api.ts';
import type { TokenBucket } from './bucket.ts';

export interface DesiredObject {
  meta: StatusMeta;
  status: Record<string, unknown>;
  /** Equal fingerprints = nothing to write. */
  fingerprint: string;
}

export type WriteOperation = 'create' | 'update' | 'delete';

export interface StatusWriterOptions {
  api: StatusApi;
  bucket: TokenBucket;
  /** Added to the status at write time (not part of the fingerprint). */
  stamp?: (kind: StatusKind) => Record<string, unknown>;
  onWrite?: (kind: StatusKind, op: WriteOperation, outcome: 'ok' | 'error') => void;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
  /** First retry delay after a failed write, doubled up to 60 s. Default 1000 ms. */
  retryMs?: number;
  /** Deletes only objects still carrying this label (see StatusApi.delete). */
  ownerLabel?: { key: string; value: string };
}

interface Entry {
  kind: StatusKind;
  ref: ObjectRef;
  /** undefined = the object must not exist. */
  desired: DesiredObject | undefined;
  /** Whether the object exists in the API server; undefined = unknown. */
  exists: boolean | undefined;
  /** Fingerprint of the status last written (or found). */
  written: string | undefined;
  /** Metadata last written (JSON), to know when labels/owners need an update. */
  writtenMeta: string | undefined;
  failures: number;
  retryAt: number;
}

const keyOf = (kind: StatusKind, ref: ObjectRef) => `${kind}/${ref.namespace ?? ''}/${ref.name}`;

export class StatusWriter {
  readonly #o: StatusWriterOptions;
  readonly #entries = new Map<string, Entry>();
  /** Keys with work to do, in the order they became dirty. */
  readonly #dirty = new Set<string>();
  #wake: (() => void) | undefined;
  #idle: (() => void)[] = [];
  #running: Promise<void> | undefined;
  #stopped = false;
  #writes = 0;

  constructor(o: StatusWriterOptions) {
    this.#o = o;
  }

  /** API calls made so far (each took a token). */
  get writes(): number {
    return this.#writes;
  }

  /** Objects with pending work. */
  get pending(): number {
    return this.#dirty.size;
  }

  /**
   * Records an object found in the API server (at start): its status fingerprint as
   * computed by the caller, so an unchanged object is not written again.
   */
  adopt(kind: StatusKind, ref: ObjectRef, fingerprint: string | undefined, meta: StatusMeta): void {
    const k = keyOf(kind, ref);
    if (this.#entries.has(k)) return;
    this.#entries.set(k, {
      kind, ref, desired: undefined, exists: true, written: fingerprint,
      writtenMeta: JSON.stringify(meta), failures: 0, retryAt: 0,
    });
  }

  /** Wants the object to have this content, or (undefined) not to exist. */
  set(kind: StatusKind, ref: ObjectRef, desired: DesiredObject | undefined): void {
    const k = keyOf(kind, ref);
    let e = this.#entries.get(k);
    if (!e) {
      if (!desired) return;
      e = { kind, ref, desired, exists: undefined, written: undefined, writtenMeta: undefined, failures: 0, retryAt: 0 };
      this.#entries.set(k, e);
    }
    e.desired = desired;
    if (this.#needsWork(e)) this.#markDirty(k);
  }

  /** The refs of a kind the writer knows exist or wants. */
  known(kind: StatusKind): ObjectRef[] {
    return [...this.#entries.values()].filter((e) => e.kind === kind).map((e) => e.ref);
  }

  /** Resolves when no work is pending (for tests and shutdown). */
  idle(): Promise<void> {
    if (this.#dirty.size === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /**
   * Stops: pending work is dropped; the write in progress is waited for at most
   * `graceMs` (an unreachable API server must not hold up the agent's shutdown).
   */
  async stop(graceMs = 2000): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#running, new Promise<void>((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
    for (const r of this.#idle.splice(0)) r();
  }

  #needsWork(e: Entry): boolean {
    if (!e.desired) return e.exists !== false;
    return e.exists !== true || e.written !== e.desired.fingerprint || e.writtenMeta !== JSON.stringify(e.desired.meta);
  }

  #markDirty(k: string): void {
    if (this.#stopped) return;
    this.#dirty.add(k);
    this.#wake?.();
    this.#kick();
  }

  #kick(): void {
    if (this.#running || this.#stopped) return;
    this.#running = this.#run().catch((err: Error) => {
      this.#o.log?.('error', 'status writer failed', { error: err.message });
    }).finally(() => {
      this.#running = undefined;
      // Work that arrived between the loop's last check and here.
      if (this.#dirty.size > 0) this.#kick();
    });
  }

  async #run(): Promise<void> {
    while (!this.#stopped && this.#dirty.size > 0) {
      const now = Date.now();
      let next: string | undefined;
      let soonest = Infinity;
      for (const k of this.#dirty) {
        const e = this.#entries.get(k);
        if (!e) {
          this.#dirty.delete(k);
          continue;
        }
        if (e.retryAt <= now) {
          next = k;
          break;
        }
        soonest = Math.min(soonest, e.retryAt);
      }
      if (next === undefined) {
        // Every dirty object waits for its retry: sleep until the first, or a new set().
        await new Promise<void>((r) => {
          const t = setTimeout(r, soonest - now);
          this.#wake = () => { clearTimeout(t); r(); };
        });
        this.#wake = undefined;
        continue;
      }
      this.#dirty.delete(next);
      const e = this.#entries.get(next)!;
      try {
        await this.#write(e);
        e.failures = 0;
        e.retryAt = 0;
      } catch (err) {
        e.failures++;
        const delay = Math.min(60_000, (this.#o.retryMs ?? 1000) * 2 ** (e.failures - 1));
        e.retryAt = Date.now() + delay;
        // The first failure and every tenth: an API server without the CRDs must not
        // turn every endpoint into a log line a minute.
        if (e.failures === 1 || e.failures % 10 === 0) this.#o.log?.('warn', 'status write failed; will retry', {
          kind: e.kind, object: e.ref.namespace ? `${e.ref.namespace}/${e.ref.name}` : e.ref.name,
          error: (err as Error).message, retryInMs: delay, failures: e.failures,
        });
      }
      if (!e.desired && e.exists === false) {
        // Gone and not wanted: forget it (a set() during the write may have re-queued it).
        this.#entries.delete(next);
        this.#dirty.delete(next);
      } else if (this.#needsWork(e)) {
        this.#dirty.add(next);
      } else {
        this.#dirty.delete(next);
      }
    }
    if (this.#dirty.size === 0) for (const r of this.#idle.splice(0)) r();
  }

  async #call(kind: StatusKind, op: WriteOperation, fn: () => Promise<void>): Promise<void> {
    await this.#o.bucket.take();
    if (this.#stopped) throw new Error('status writer stopped');
    this.#writes++;
    try {
      await fn();
      this.#o.onWrite?.(kind, op, 'ok');
    } catch (err) {
      this.#o.onWrite?.(kind, op, 'error');
      throw err;
    }
  }

  async #write(e: Entry): Promise<void> {
    const { kind, ref } = e;
    const desired = e.desired;
    if (!desired) {
      await this.#call(kind, 'delete', () => this.#o.api.delete(kind, ref, this.#o.ownerLabel));
      e.exists = false;
      e.written = undefined;
      e.writtenMeta = undefined;
      return;
    }
    const meta = JSON.stringify(desired.meta);
    if (e.exists !== true) {
      try {
        await this.#call(kind, 'create', () => this.#o.api.create(kind, ref, desired.meta));
        e.writtenMeta = meta;
      } catch (err) {
        if (!(err instanceof StatusApiError && err.status === 409)) throw err;
        // Left by an earlier run or another node (a pod name reused): make it ours.
        e.writtenMeta = undefined;
      }
      e.exists = true;
      e.written = undefined;
    }
    if (e.writtenMeta !== meta) {
      await this.#call(kind, 'update', () => this.#o.api.patchMeta(kind, ref, desired.meta));
      e.writtenMeta = meta;
    }
    if (e.written === desired.fingerprint) return;
    try {
      await this.#call(kind, 'update', () => this.#o.api.patchStatus(kind, ref, { ...desired.status, ...this.#o.stamp?.(kind) }));
      e.written = desired.fingerprint;
    } catch (err) {
      if (err instanceof StatusApiError && err.status === 404) {
        // Deleted by someone else (or the pod's garbage collection): create it again next turn.
        e.exists = false;
        e.written = undefined;
        e.writtenMeta = undefined;
        return;
      }
      throw err;
    }
  }
}
