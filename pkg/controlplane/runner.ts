/**
 * CoalescingRunner: runs one async function at a time, coalescing the triggers that
 * arrive while it waits or runs into a single next run.
 *
 * - A trigger schedules a run `minIntervalMs` later; each further trigger pushes that
 *   back by `minIntervalMs` again (so a burst becomes one run), but never beyond
 *   `maxDelayMs` after the first pending trigger (so a steady stream cannot starve it).
 * - Triggers during a run mark it dirty; one more run follows as soon as it ends (still
 *   respecting `minIntervalMs` since that trigger).
 * - A run that throws is retried after a bounded, jittered backoff unless a trigger comes
 *   first; `onError` sees the error.
 */
import { Backoff, type BackoffOptions } from '../k8s/backoff.ts';
import type { Clock } from '../k8s/clock.ts';

export interface CoalescingRunnerOptions {
  run: () => Promise<void>;
  clock: Clock;
  /** Quiet time that ends a burst; 0 runs on the next timer tick. Default 2 ms. */
  minIntervalMs?: number;
  /** Upper bound from the first pending trigger to the start of its run. Default 20 ms. */
  maxDelayMs?: number;
  retry?: BackoffOptions;
  onError?: (err: unknown) => void;
}

export class CoalescingRunner {
  readonly minIntervalMs: number;
  readonly maxDelayMs: number;
  readonly #run: () => Promise<void>;
  readonly #clock: Clock;
  readonly #retry: Backoff;
  readonly #onError: (err: unknown) => void;
  /** Clock time of the first trigger not yet picked up by a run. */
  #pendingSince: number | undefined;
  #cancelTimer: (() => void) | undefined;
  #timerAt = Infinity;
  #running: Promise<void> | undefined;
  #stopped = false;
  #runs = 0;

  constructor(opts: CoalescingRunnerOptions) {
    this.minIntervalMs = opts.minIntervalMs ?? 2;
    this.maxDelayMs = opts.maxDelayMs ?? 20;
    if (!(this.minIntervalMs >= 0) || !(this.maxDelayMs >= this.minIntervalMs)) {
      throw new RangeError('coalescing runner: need 0 <= minIntervalMs <= maxDelayMs');
    }
    this.#run = opts.run;
    this.#clock = opts.clock;
    this.#retry = new Backoff({ baseMs: 100, maxMs: 10_000, ...opts.retry });
    this.#onError = opts.onError ?? (() => {});
  }

  /** Number of runs started so far. */
  get runs(): number {
    return this.#runs;
  }

  /** Requests a run (see the class comment for when it happens). */
  trigger(): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    this.#pendingSince ??= now;
    if (this.#running) return; // picked up when the current run ends
    this.#schedule(Math.min(now + this.minIntervalMs, this.#pendingSince + this.maxDelayMs));
  }

  /** Stops scheduling; resolves when a run in progress has ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancel();
    await this.#running;
  }

  #schedule(at: number): void {
    if (this.#cancelTimer && at >= this.#timerAt - 0.001 && at <= this.#timerAt + 0.001) return;
    this.#cancel();
    this.#timerAt = at;
    this.#cancelTimer = this.#clock.setTimer(() => {
      this.#cancelTimer = undefined;
      this.#timerAt = Infinity;
      this.#start();
    }, at - this.#clock.now());
  }

  #cancel(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#timerAt = Infinity;
  }

  #start(): void {
    if (this.#stopped || this.#running) return;
    this.#pendingSince = undefined;
    this.#runs++;
    this.#running = (async () => {
      let failed = false;
      try {
        await this.#run();
        this.#retry.reset();
      } catch (err) {
        failed = true;
        this.#onError(err);
      }
      this.#running = undefined;
      if (this.#stopped) return;
      if (this.#pendingSince !== undefined) {
        // Triggered while running: go again, `minIntervalMs` after the latest trigger at most.
        const now = this.#clock.now();
        this.#schedule(Math.min(now + this.minIntervalMs, this.#pendingSince + this.maxDelayMs));
      } else if (failed) {
        this.#pendingSince = this.#clock.now();
        this.#schedule(this.#clock.now() + this.#retry.next());
      }
    })();
  }
}
