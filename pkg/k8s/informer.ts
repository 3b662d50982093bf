/**
 * One informer: list, then watch from the list's resourceVersion, feeding a ClusterStore.
 *
 * - Watches ask for bookmarks (allowWatchBookmarks), so an idle resource still advances
 *   its resourceVersion; bookmarks and events both count as "seen".
 * - 410 Gone (the watch's resourceVersion was compacted away, as an ERROR event or as the
 *   HTTP status) -> relist; the relist replays everything through the store's idempotent
 *   `replace`, which also removes objects deleted while we were not watching.
 * - A watch the server closes normally (its timeoutSeconds) reconnects at once from the
 *   last resourceVersion; errors reconnect after a bounded, jittered backoff.
 * - `optional` resources (a CRD) answering 404 are "not installed": logged once, counted
 *   as synced with no objects, and looked for again every `absentRetryMs`.
 *
 * The transport is a `ListWatchSource`, so the loop is tested without an API server.
 */
import { Backoff, type BackoffOptions } from './backoff.ts';
import { errorMessage, sleep, systemClock, type Clock, type Logger } from './clock.ts';
import {
  keyOf, parseResourceVersion, ResourceError, type AnyResource, type ResourceInfo,
} from './resources.ts';
import type { ClusterStore } from './store.ts';

export interface ListResult {
  items: unknown[];
  resourceVersion: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** Transport of list and watch calls (real: client-node; tests: a fake). */
export interface ListWatchSource {
  /** A complete (paginated) list. Rejects with an error carrying `statusCode` or `code`. */
  list(res: ResourceInfo, signal: AbortSignal): Promise<ListResult>;
  /**
   * Starts a watch from `resourceVersion` with bookmarks. Calls `onEvent` per event and
   * `onDone` exactly once when the watch ends (null = closed normally). Returns a
   * function that aborts it.
   */
  watch(
    res: ResourceInfo,
    resourceVersion: string,
    onEvent: (type: string, obj: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<() => void>;
}

/** HTTP status of a list/watch failure (client-node uses `statusCode` or `code`). */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { statusCode?: unknown; code?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number') return e.code;
  return undefined;
}

export interface InformerOptions {
  resource: ResourceInfo;
  source: ListWatchSource;
  store: ClusterStore;
  clock?: Clock;
  log: Logger;
  backoff?: BackoffOptions;
  /** How often an absent optional resource is looked for again (default 30 s). */
  absentRetryMs?: number;
  /** Called whenever sync state, the resourceVersion or the watch connection changes. */
  onProgress?: () => void;
}

type WatchEnd = { kind: 'closed' } | { kind: 'gone' } | { kind: 'error'; err: unknown };

export class Informer {
  readonly resource: ResourceInfo;
  readonly #source: ListWatchSource;
  readonly #store: ClusterStore;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  readonly #absentRetryMs: number;
  readonly #onProgress: () => void;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #stopWatch: (() => void) | undefined;
  #synced = false;
  #syncWaiters: (() => void)[] = [];
  #rv: bigint | undefined;
  /** The resourceVersion to watch from, as the server spelled it. */
  #rvText = '';
  #watching = false;
  #absent = false;
  #lastEventAt = 0;
  /** Events and bookmarks received, for telling healthy watches from failing ones. */
  #events = 0;
  #loggedAbsent = false;

  constructor(opts: InformerOptions) {
    this.resource = opts.resource;
    this.#source = opts.source;
    this.#store = opts.store;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log;
    this.#backoff = new Backoff(opts.backoff);
    this.#absentRetryMs = opts.absentRetryMs ?? 30_000;
    this.#onProgress = opts.onProgress ?? (() => {});
  }

  /** True once the first list completed (or an optional resource was found absent). */
  get synced(): boolean {
    return this.#synced;
  }

  /** The resourceVersion this informer has seen up to (list, events, bookmarks). */
  get resourceVersion(): bigint | undefined {
    return this.#rv;
  }

  /** A watch is connected and delivering. */
  get watching(): boolean {
    return this.#watching;
  }

  /** An optional resource that the server does not serve (CRD not installed). */
  get absent(): boolean {
    return this.#absent;
  }

  /** Clock time of the last event, bookmark, list or watch (re)connection. */
  get lastEventAt(): number {
    return this.#lastEventAt;
  }

  whenSynced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  start(): void {
    if (this.#loop) return;
    this.#abort = new AbortController();
    this.#loop = this.#run(this.#abort.signal).catch((err: unknown) => {
      this.#log.error('informer stopped on an unexpected error', {
        resource: this.resource.name, error: errorMessage(err),
      });
    });
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.#stopWatch?.();
    await this.#loop;
    this.#loop = undefined;
    this.#watching = false;
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const listed = await this.#list(signal);
      if (signal.aborted) return;
      if (listed === 'absent') {
        await sleep(this.#clock, this.#absentRetryMs, signal);
        continue;
      }
      if (listed === 'failed') {
        await sleep(this.#clock, this.#backoff.next(), signal);
        continue;
      }
      // Watch until the server says our resourceVersion is gone; then relist.
      for (;;) {
        if (signal.aborted) return;
        const before = this.#events;
        const startedAt = this.#clock.now();
        const end = await this.#watchOnce(signal);
        if (signal.aborted) return;
        const delivered = this.#events !== before;
        // A watch that lived a while and closed normally is healthy; one closed at once
        // with nothing delivered is not, and must not become a reconnect loop.
        const healthy = delivered || (end.kind === 'closed' && this.#clock.now() - startedAt >= 1000);
        if (healthy) this.#backoff.reset();
        if (end.kind === 'closed' && !healthy) {
          await sleep(this.#clock, this.#backoff.next(), signal);
          continue;
        }
        if (end.kind === 'gone') {
          this.#log.info('watch ended with 410 Gone (or 404), relisting', {
            resource: this.resource.name,
          });
          if (!delivered) await sleep(this.#clock, this.#backoff.next(), signal);
          break;
        }
        if (end.kind === 'error') {
          const delay = this.#backoff.next();
          this.#log.warn('watch failed, reconnecting', {
            resource: this.resource.name, error: errorMessage(end.err), delayMs: Math.round(delay),
          });
          await sleep(this.#clock, delay, signal);
        }
      }
    }
  }

  async #list(signal: AbortSignal): Promise<'ok' | 'absent' | 'failed'> {
    let result: ListResult;
    try {
      result = await this.#source.list(this.resource, signal);
    } catch (err) {
      if (signal.aborted) return 'failed';
      if (this.resource.optional && httpStatusOf(err) === 404) {
        if (!this.#loggedAbsent) {
          this.#log.info('resource not served (CRD not installed); continuing without it', {
            resource: this.resource.name, path: this.resource.path,
          });
          this.#loggedAbsent = true;
        }
        // It may have been installed and removed again: drop what we had.
        this.#store.replace(this.resource.kind, [], undefined, (o) => this.#owns(o));
        this.#absent = true;
        this.#markSynced();
        return 'absent';
      }
      this.#log.warn('list failed', { resource: this.resource.name, error: errorMessage(err) });
      return 'failed';
    }
    if (this.#absent) {
      this.#log.info('resource is now served', { resource: this.resource.name });
      this.#absent = false;
      this.#loggedAbsent = false;
    }
    const objs: AnyResource[] = [];
    for (const item of result.items) {
      const o = this.#slim(item);
      if (o) objs.push(o);
    }
    this.#store.replace(this.resource.kind, objs as never[], result.resourceVersion,
      (o) => this.#owns(o));
    this.#rv = parseResourceVersion(result.resourceVersion) ?? this.#rv;
    this.#rvText = result.resourceVersion;
    this.#lastEventAt = this.#clock.now();
    this.#markSynced();
    return 'ok';
  }

  #watchOnce(signal: AbortSignal): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve) => {
      let ended = false;
      const onAbort = () => finish({ kind: 'closed' });
      const finish = (end: WatchEnd) => {
        if (ended) return;
        ended = true;
        signal.removeEventListener('abort', onAbort);
        const abort = this.#stopWatch;
        this.#stopWatch = undefined;
        abort?.();
        this.#watching = false;
        this.#onProgress();
        resolve(end);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const onEvent = (type: string, obj: unknown) => {
        if (ended || signal.aborted) return;
        if (type === 'ERROR') {
          // A Status object; 410 = our resourceVersion is too old: relist.
          if (httpStatusOf(obj) === 410) return finish({ kind: 'gone' });
          this.#log.warn('watch error event', { resource: this.resource.name, status: obj });
          return;
        }
        this.#event(type, obj);
      };
      const onDone = (err: unknown) => {
        // 410: our resourceVersion is too old. 404: the resource went away (a CRD was
        // deleted); the relist finds out whether it is absent.
        const status = httpStatusOf(err);
        if (status === 410 || status === 404) return finish({ kind: 'gone' });
        if (err && (err as { name?: string }).name === 'TimeoutError') {
          // client-node's inactivity timeout: the connection was idle, not broken.
          return finish({ kind: 'closed' });
        }
        if (err) return finish({ kind: 'error', err });
        finish({ kind: 'closed' });
      };
      this.#source.watch(this.resource, this.#rvText, onEvent, onDone).then((abort) => {
        if (ended) return abort();
        this.#stopWatch = abort;
        // Connected: from here on, silence means nothing is pending (see Cluster.coverage).
        this.#watching = true;
        this.#lastEventAt = Math.max(this.#lastEventAt, this.#clock.now());
        this.#onProgress();
      }, (err: unknown) => onDone(err ?? new Error('watch failed')));
    });
  }

  #event(type: string, obj: unknown): void {
    const rvText = (obj as { metadata?: { resourceVersion?: unknown } } | null)
      ?.metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      this.#store.observeResourceVersion(typeof rvText === 'string' ? rvText : undefined);
    } else if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') {
      const o = this.#slim(obj);
      if (o) {
        if (type === 'DELETED') {
          this.#store.remove(this.resource.kind, keyOf(this.resource.kind, o),
            o.metadata.resourceVersion);
        } else {
          this.#store.upsert(this.resource.kind, o as never);
        }
      }
    } else {
      this.#log.warn('unknown watch event type', { resource: this.resource.name, type });
      return;
    }
    if (typeof rvText === 'string' && rvText !== '') {
      this.#rvText = rvText;
      const n = parseResourceVersion(rvText);
      if (n !== undefined && (this.#rv === undefined || n > this.#rv)) this.#rv = n;
    }
    this.#lastEventAt = this.#clock.now();
    this.#events++;
    this.#onProgress();
  }

  #slim(item: unknown): AnyResource | undefined {
    try {
      return this.resource.slim(item);
    } catch (err) {
      if (!(err instanceof ResourceError)) throw err;
      this.#log.warn('ignoring malformed object', {
        resource: this.resource.name, error: err.message,
      });
      return undefined;
    }
  }

  #owns(o: AnyResource): boolean {
    return this.resource.kind !== 'policies' || o.kind === this.resource.objectKind;
  }

  #markSynced(): void {
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncWaiters.splice(0)) w();
    }
    this.#onProgress();
  }
}
