/**
 * Fan-out of the kernel's event queue: one poller drains `pal_events` and every
 * subscribed iterator gets every record read after it subscribed. The queue is consumed
 * destructively, so there must be one hub per queue (one agent per bpffs root).
 */
import type { FlowEvent } from '../types.ts';

type Subscriber = (e: FlowEvent | null) => void;

export interface EventSource {
  /** Pops one record, or undefined when the queue is empty. */
  pop(): FlowEvent | undefined;
}

/** Records an iterator holds before it drops new ones (a consumer that stopped reading). */
const MAX_BUFFERED = 65536;
/** Records drained per poll: bounds one tick's work; the rest waits for the next tick. */
const MAX_PER_POLL = 4096;

export class EventHub {
  private readonly subscribers = new Set<Subscriber>();
  private readonly ready: () => Promise<EventSource>;
  private readonly pollMs: number;
  private readonly onError: (err: Error) => void;
  private poller?: NodeJS.Timeout;
  private closed = false;

  /**
   * `ready` resolves with the source once the datapath is initialized (or rejects, which
   * ends every iterator); `onError` reports read failures.
   */
  constructor(ready: () => Promise<EventSource>, pollMs: number, onError: (err: Error) => void) {
    this.ready = ready;
    this.pollMs = pollMs;
    this.onError = onError;
  }

  subscribe(): AsyncIterator<FlowEvent> {
    const buffered: FlowEvent[] = [];
    let wake: (() => void) | undefined;
    let done = this.closed;
    const sub: Subscriber = (e) => {
      if (e === null) done = true;
      else if (buffered.length < MAX_BUFFERED) buffered.push(e);
      wake?.();
    };
    this.subscribers.add(sub);
    void this.ready().then((src) => this.start(src), (err: unknown) => {
      this.onError(err as Error);
      sub(null);
    });
    const finish = (): IteratorResult<FlowEvent> => {
      this.subscribers.delete(sub);
      if (this.subscribers.size === 0) this.stop();
      done = true;
      return { value: undefined, done: true };
    };
    return {
      next: async () => {
        for (;;) {
          const e = buffered.shift();
          if (e) return { value: e, done: false };
          if (done) return finish();
          await new Promise<void>((r) => { wake = r; });
          wake = undefined;
        }
      },
      return: async () => finish(),
    };
  }

  /** Ends every iterator and stops polling. */
  close(): void {
    this.closed = true;
    this.stop();
    for (const s of [...this.subscribers]) s(null);
    this.subscribers.clear();
  }

  private start(src: EventSource): void {
    if (this.poller || this.closed || this.subscribers.size === 0) return;
    this.poller = setInterval(() => this.drain(src), this.pollMs);
  }

  private stop(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
  }

  private drain(src: EventSource): void {
    for (let i = 0; i < MAX_PER_POLL; i++) {
      let e: FlowEvent | undefined;
      try {
        e = src.pop();
      } catch (err) {
        this.onError(err as Error);
        return;
      }
      if (!e) return;
      for (const s of this.subscribers) s(e);
    }
  }
}
