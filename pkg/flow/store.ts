/**
 * The agent's flow store: a ring of the newest flow records (datapath verdict/drop events
 * enriched by pkg/flow/enrich.ts, and the L7 proxy's HTTP request records), queried by
 * `GET /v1/flows`, followed by subscribers, and counted for `/v1/status` and `/metrics`.
 *
 * Memory is bounded: `capacity` records (default 8192) and a 60-slot drop counter; the
 * oldest record is overwritten. Subscribers are called synchronously from `record` and
 * must not block (the API's follow stream queues and cuts slow clients itself).
 */
import type { Direction } from '../datapath/types.ts';
import type { FlowFilter, FlowRecord, FlowVerdict } from './types.ts';

export const DEFAULT_FLOW_CAPACITY = 8192;
export const DEFAULT_FLOW_LIMIT = 100;

const VERDICTS: readonly FlowVerdict[] = ['allowed', 'dropped', 'redirected', 'denied'];
const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

export interface FlowStoreOptions {
  /** Records kept (the newest); default 8192. */
  capacity?: number;
  /** Milliseconds since the epoch; the drop counter's clock. Default Date.now. */
  now?: () => number;
}

export type FlowListener = (r: FlowRecord) => void;

/** Per-(verdict, direction) totals since start, for counters. */
export type FlowTotals = Record<FlowVerdict, Record<Direction, number>>;

/** Whether a record passes a filter (an absent field passes everything). */
export function matchesFilter(r: FlowRecord, f: FlowFilter): boolean {
  if (f.verdict !== undefined && r.verdict !== f.verdict) return false;
  if (f.since !== undefined && !(r.time > f.since)) return false;
  if (f.pod !== undefined) {
    const slash = f.pod.indexOf('/');
    const ns = f.pod.slice(0, slash);
    const name = f.pod.slice(slash + 1);
    const is = (p: FlowRecord['src']) => p.namespace === ns && p.pod === name;
    if (!is(r.src) && !is(r.dst)) return false;
  }
  return true;
}

function zeroTotals(): FlowTotals {
  const t = {} as FlowTotals;
  for (const v of VERDICTS) t[v] = { ingress: 0, egress: 0 };
  return t;
}

/** A record the store accepts: the shape checks a caller outside the agent (the L7 proxy) can get wrong. */
function checkRecord(r: FlowRecord): void {
  if (!r || typeof r !== 'object') throw new TypeError('flow record: not an object');
  if (!Number.isFinite(r.time)) throw new TypeError('flow record: time must be a number (ms since the epoch)');
  if (!VERDICTS.includes(r.verdict)) throw new TypeError(`flow record: unknown verdict ${String(r.verdict)}`);
  if (!DIRECTIONS.includes(r.direction)) throw new TypeError(`flow record: unknown direction ${String(r.direction)}`);
  if (!r.src || !r.dst || typeof r.src.ip !== 'string' || typeof r.dst.ip !== 'string') {
    throw new TypeError('flow record: src and dst need an ip');
  }
}

export class FlowStore {
  readonly capacity: number;
  readonly #ring: (FlowRecord | undefined)[];
  /** Index the next record goes to. */
  #next = 0;
  #size = 0;
  readonly #now: () => number;
  readonly #listeners = new Set<FlowListener>();
  readonly #totals = zeroTotals();
  readonly #l7 = zeroTotals();
  #drops = 0;
  /** Drops per second of the last minute: slot = second % 60, stamped with its second. */
  readonly #dropSlots = new Array<number>(60).fill(0);
  readonly #dropStamps = new Array<number>(60).fill(-1);

  constructor(opts: FlowStoreOptions = {}) {
    const capacity = opts.capacity ?? DEFAULT_FLOW_CAPACITY;
    if (!Number.isInteger(capacity) || capacity < 1) throw new TypeError(`flow store: capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    this.#ring = new Array<FlowRecord | undefined>(capacity);
    this.#now = opts.now ?? Date.now;
  }

  /** Records kept right now (at most `capacity`). */
  get size(): number {
    return this.#size;
  }

  /**
   * Keeps a record, counts it and hands it to every subscriber. The L7 proxy calls this
   * for each HTTP request (a record with `http`; counted as an L7 request too).
   * Throws TypeError (nothing stored) for a record without time, verdict, direction or IPs.
   */
  record(r: FlowRecord): void {
    checkRecord(r);
    this.#ring[this.#next] = r;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
    this.#totals[r.verdict][r.direction]++;
    if (r.http) this.#l7[r.verdict][r.direction]++;
    if (r.verdict === 'dropped' || r.verdict === 'denied') this.#countDrop();
    for (const l of [...this.#listeners]) l(r);
  }

  /**
   * The newest `limit` (default 100) records passing the filter, oldest first.
   * Assumes a validated filter (see parseFlowQuery).
   */
  query(f: FlowFilter = {}): FlowRecord[] {
    const limit = f.limit ?? DEFAULT_FLOW_LIMIT;
    const out: FlowRecord[] = [];
    for (let i = 1; i <= this.#size && out.length < limit; i++) {
      const r = this.#ring[(this.#next - i + this.capacity) % this.capacity]!;
      if (matchesFilter(r, f)) out.push(r);
    }
    return out.reverse();
  }

  /** Calls `listener` with every record from now on; returns the unsubscribe function. */
  subscribe(listener: FlowListener): () => void {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  }

  get subscribers(): number {
    return this.#listeners.size;
  }

  /** Dropped and denied records in the last 60 seconds. */
  dropsLastMinute(): number {
    const sec = Math.floor(this.#now() / 1000);
    let n = 0;
    for (let i = 0; i < 60; i++) if (this.#dropStamps[i]! > sec - 60) n += this.#dropSlots[i]!;
    return n;
  }

  /** Dropped and denied records since start. */
  get dropsTotal(): number {
    return this.#drops;
  }

  /** Records per verdict and direction since start (copies). */
  totals(): FlowTotals {
    return structuredClone(this.#totals);
  }

  /** L7 (HTTP) records per verdict and direction since start (copies). */
  l7Totals(): FlowTotals {
    return structuredClone(this.#l7);
  }

  #countDrop(): void {
    this.#drops++;
    const sec = Math.floor(this.#now() / 1000);
    const slot = ((sec % 60) + 60) % 60;
    if (this.#dropStamps[slot] !== sec) {
      this.#dropStamps[slot] = sec;
      this.#dropSlots[slot] = 0;
    }
    this.#dropSlots[slot]!++;
  }
}
