/**
 * Bounded, jittered exponential backoff for reconnecting watches and retrying lists.
 * Delay n (from 0) is drawn uniformly from [d/2, d] with d = min(base * 2^n, max), so
 * agents restarted together do not reconnect in lockstep, and no delay exceeds `maxMs`.
 */
export interface BackoffOptions {
  baseMs?: number;
  maxMs?: number;
  /** Uniform [0, 1) source; injectable for tests. */
  random?: () => number;
}

export class Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 250;
    this.maxMs = opts.maxMs ?? 30_000;
    if (!(this.baseMs > 0) || !(this.maxMs >= this.baseMs)) {
      throw new RangeError('backoff: need 0 < baseMs <= maxMs');
    }
    this.#random = opts.random ?? Math.random;
  }

  /** The next delay, in ms; each call doubles the ceiling up to maxMs. */
  next(): number {
    const ceiling = Math.min(this.baseMs * 2 ** Math.min(this.#attempt, 30), this.maxMs);
    this.#attempt++;
    return ceiling / 2 + this.#random() * (ceiling / 2);
  }

  /** After a success: the next delay starts from baseMs again. */
  reset(): void {
    this.#attempt = 0;
  }

  get attempts(): number {
    return this.#attempt;
  }
}
