/**
 * Fan-out of the kernel's event queue: one poller drains `pal_events` and every
 * subscribed iterator gets every record read after it subscribed. The queue is consumed
 * destructively, so there must be one hub per queue (one agent per bpffs root).
 */
import { Fanout } from '../fanout.ts';
import type { FlowEvent } from '../types.ts';

export interface EventSource {
  /** Pops one record, or undefined when the queue is empty. */
  pop(): FlowEvent | undefined;
}

/** Records an iterator holds before it drops new ones (a consumer that stopped reading). */
const MAX_BUFFERED = 65536;
/** Records drained per poll: bounds one tick's work; the rest waits for the next tick. */
const MAX_PER_POLL = 4096;

export class EventHub {
  private readonly fanout = new Fanout<FlowEvent>(MAX_BUFFERED);
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
    const it = this.fanout.subscribe(() => { if (this.fanout.size === 0) this.stop(); });
    void this.ready().then((src) => this.start(src), (err: unknown) => {
      this.onError(err as Error);
      this.fanout.end();
    });
    return it;
  }

  /** Ends every iterator and stops polling. */
  close(): void {
    this.closed = true;
    this.stop();
    this.fanout.end(true);
  }

  private start(src: EventSource): void {
    if (this.poller || this.closed || this.fanout.size === 0) return;
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
      this.fanout.publish(e);
    }
  }
}
