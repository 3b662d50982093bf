/**
 * Test doubles for the control-plane tests: a manual clock, a map-backed datapath with
 * fault injection (failed and slow applies, which MemoryDatapath does not offer; the
 * integration test uses MemoryDatapath), and a log that records.
 */
import { entryKey } from '../../../pkg/datapath/diff.ts';
import type {
  Datapath, DatapathChange, DatapathCounters, DatapathState, FlowEvent,
} from '../../../pkg/datapath/types.ts';
import type { Clock, LogFields, Logger } from '../../../pkg/k8s/clock.ts';

type Kind = keyof DatapathState;
const kinds: Kind[] = ['endpoints', 'ipcache', 'policy', 'cidrs'];

/** Map-backed Datapath: apply = upserts then deletes by map key; records every change. */
export class MapDatapath implements Datapath {
  readonly maps: Record<Kind, Map<string, object>> = {
    endpoints: new Map(), ipcache: new Map(), policy: new Map(), cidrs: new Map(),
  };
  readonly changes: DatapathChange[] = [];
  /** When set, the next apply applies half of the upserts, then rejects. */
  failNext: Error | undefined;
  /** Delay of each apply, ms (lets tests overlap changes with a running reconcile). */
  applyDelayMs = 0;

  async init(): Promise<void> {}

  async apply(change: DatapathChange): Promise<void> {
    if (this.applyDelayMs) await new Promise((r) => setTimeout(r, this.applyDelayMs));
    const fail = this.failNext;
    this.failNext = undefined;
    for (const k of kinds) {
      const list = change.upsert[k] as object[];
      const n = fail ? Math.floor(list.length / 2) : list.length;
      for (const e of list.slice(0, n)) {
        this.maps[k].set((entryKey[k] as (e: object) => string)(e), structuredClone(e));
      }
    }
    if (fail) throw fail;
    for (const k of kinds) {
      for (const e of change.delete[k] as object[]) {
        this.maps[k].delete((entryKey[k] as (e: object) => string)(e));
      }
    }
    this.changes.push(structuredClone(change));
  }

  async dump(): Promise<DatapathState> {
    const out = { endpoints: [], ipcache: [], policy: [], cidrs: [] } as DatapathState;
    for (const k of kinds) {
      (out[k] as object[]) = [...this.maps[k].entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => structuredClone(v));
    }
    return out;
  }

  async attach(): Promise<void> {}
  async detach(): Promise<void> {}
  async *events(): AsyncIterable<FlowEvent> {}
  async counters(): Promise<DatapathCounters> {
    return { allowed: { ingress: 0, egress: 0 }, dropped: { ingress: {}, egress: {} } };
  }
  async close(): Promise<void> {}
}

/** A datapath state in canonical form (sorted by map key) for comparisons. */
export function canonical(s: DatapathState): DatapathState {
  const out = {} as DatapathState;
  for (const k of kinds) {
    const key = entryKey[k] as (e: object) => string;
    (out[k] as object[]) = [...(s[k] as object[])].sort((a, b) => {
      const ka = key(a);
      const kb = key(b);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  }
  return out;
}

/** Manual clock: time moves only with `advance`, which runs the timers that fall due. */
export class ManualClock implements Clock {
  #now = 0;
  #timers: { at: number; fn: () => void; id: number }[] = [];
  #id = 0;

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const t = { at: this.#now + Math.max(0, ms), fn, id: this.#id++ };
    this.#timers.push(t);
    return () => {
      this.#timers = this.#timers.filter((x) => x !== t);
    };
  }

  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, running due timers in order and letting promises settle. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      await flush();
      const due = this.#timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = Math.max(this.#now, due.at);
      due.fn();
    }
    this.#now = end;
    await flush();
  }
}

/** Lets pending promise callbacks and immediate macrotasks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

export interface LogRecord {
  level: string;
  msg: string;
  fields?: LogFields;
}

export class RecordingLogger implements Logger {
  readonly records: LogRecord[] = [];
  debug(msg: string, fields?: LogFields): void { this.records.push({ level: 'debug', msg, fields }); }
  info(msg: string, fields?: LogFields): void { this.records.push({ level: 'info', msg, fields }); }
  warn(msg: string, fields?: LogFields): void { this.records.push({ level: 'warn', msg, fields }); }
  error(msg: string, fields?: LogFields): void { this.records.push({ level: 'error', msg, fields }); }
  count(msg: string): number {
    return this.records.filter((r) => r.msg === msg).length;
  }
}

/** Polls `cond` on real time until it holds (or fails after `ms`). */
export async function eventually(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
