/**
 * Fan-out of a stream to async iterators: every iterator gets every item published after
 * it subscribed, until it returns or the fan-out ends. Shared by the Linux event hub and
 * the in-memory datapath.
 */
type Subscriber<T> = (item: T | null) => void;

export class Fanout<T> {
  private readonly subscribers = new Set<Subscriber<T>>();
  private readonly maxBuffered: number;
  private ended = false;

  /** `maxBuffered`: items an iterator holds before it drops new ones (a stalled reader). */
  constructor(maxBuffered = Number.POSITIVE_INFINITY) {
    this.maxBuffered = maxBuffered;
  }

  get size(): number {
    return this.subscribers.size;
  }

  /** A new iterator; `onFinish` runs after it leaves (returned, or ended). */
  subscribe(onFinish?: () => void): AsyncIterator<T> {
    const buffered: T[] = [];
    let wake: (() => void) | undefined;
    let done = this.ended;
    const sub: Subscriber<T> = (item) => {
      if (item === null) done = true;
      else if (buffered.length < this.maxBuffered) buffered.push(item);
      wake?.();
    };
    if (!done) this.subscribers.add(sub);
    const finish = (): IteratorResult<T> => {
      const wasSubscribed = this.subscribers.delete(sub);
      done = true;
      if (wasSubscribed) onFinish?.();
      return { value: undefined, done: true };
    };
    return {
      next: async () => {
        for (;;) {
          const item = buffered.shift();
          if (item !== undefined) return { value: item, done: false };
          if (done) return finish();
          await new Promise<void>((r) => { wake = r; });
          wake = undefined;
        }
      },
      return: async () => finish(),
    };
  }

  publish(item: T): void {
    for (const s of this.subscribers) s(item);
  }

  /** Ends every current iterator; with `final`, later subscribers end at once too. */
  end(final = false): void {
    if (final) this.ended = true;
    const subs = [...this.subscribers];
    this.subscribers.clear();
    for (const s of subs) s(null);
  }
}
