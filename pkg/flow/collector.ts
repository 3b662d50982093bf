/**
 * Feeds the flow store from the datapath's event stream: each FlowEvent is enriched
 * (pkg/flow/enrich.ts) and recorded. The agent runs exactly one collector: the Linux
 * datapath's kernel queue is read destructively (docs/datapath.md, limits).
 */
import type { Datapath } from '../datapath/types.ts';
import { enrichEvent, type FlowSources } from './enrich.ts';
import type { FlowStore } from './store.ts';

export interface FlowCollector {
  /** Resolves when the event stream ended (datapath closed) or `stop` was called. */
  readonly done: Promise<void>;
  /** Stops reading; records already stored stay. */
  stop(): void;
}

export function collectFlows(
  datapath: Pick<Datapath, 'events'>,
  store: FlowStore,
  sources: FlowSources,
  onError: (err: Error) => void = () => {},
): FlowCollector {
  const it = datapath.events()[Symbol.asyncIterator]();
  let stopped = false;
  let finish!: () => void;
  const stoppedSignal = new Promise<void>((r) => { finish = r; });
  const loop = (async () => {
    while (!stopped) {
      const next = await Promise.race([it.next(), stoppedSignal.then(() => undefined)]);
      if (!next || next.done) return;
      try {
        store.record(enrichEvent(next.value, sources));
      } catch (err) {
        // One bad event (a lookup that threw) must not end flow visibility.
        onError(err as Error);
      }
    }
  })().catch((err: Error) => onError(new Error(`reading datapath events: ${err.message}`, { cause: err })));
  return {
    done: loop,
    stop() {
      if (stopped) return;
      stopped = true;
      finish();
      // Returning unsubscribes the iterator (a pending next() may never settle).
      void it.return?.();
    },
  };
}
