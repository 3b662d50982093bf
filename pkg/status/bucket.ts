/**
 * A token bucket: `rate` tokens per second, at most `burst` stored. `take()` resolves when
 * a token is available, in FIFO order, so a burst of work drains at the rate and never
 * faster. The clock is injectable for tests.
 */
export interface BucketClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: BucketClock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  readonly #clock: BucketClock;
  #tokens: number;
  #last: number;
  #queue: Promise<void> = Promise.resolve();

  constructor(rate: number, burst: number, clock: BucketClock = realClock) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new TypeError(`token bucket: rate must be a positive number, got ${rate}`);
    if (!Number.isInteger(burst) || burst < 1) throw new TypeError(`token bucket: burst must be a positive integer, got ${burst}`);
    this.rate = rate;
    this.burst = burst;
    this.#clock = clock;
    this.#tokens = burst;
    this.#last = clock.now();
  }

  #refill(): void {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.rate);
    this.#last = now;
  }

  /** Takes one token, waiting for it when none is left. */
  take(): Promise<void> {
    const turn = this.#queue.then(async () => {
      for (;;) {
        this.#refill();
        if (this.#tokens >= 1) {
          this.#tokens -= 1;
          return;
        }
        await this.#clock.sleep(Math.ceil(((1 - this.#tokens) / this.rate) * 1000));
      }
    });
    this.#queue = turn;
    return turn;
  }
}
