/**
 * The agent's status publishing loop: a StatusReporter over a StatusWriter with one token
 * bucket, refreshed when the agent asks (after each realized reconcile, after CNI ADD and
 * DEL) and every `refreshMs`. Refreshes are coalesced: one runs at a time, and requests
 * during it cause exactly one more.
 */
import { NODE_LABEL, type StatusApi, type StatusKind } from './api.ts';
import { TokenBucket } from './bucket.ts';
import { StatusReporter, type ReporterSources } from './reporter.ts';
import { StatusWriter, type WriteOperation } from './writer.ts';

export interface StatusPublisherOptions {
  api: StatusApi;
  sources: ReporterSources;
  /** API writes per second per agent (default 10) and the burst (default 20). */
  writesPerSecond?: number;
  burst?: number;
  /** Periodic refresh (default 5 s); the node object's heartbeat (default 60 s). */
  refreshMs?: number;
  heartbeatMs?: number;
  retryMs?: number;
  onWrite?: (kind: StatusKind, op: WriteOperation, outcome: 'ok' | 'error') => void;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

export interface StatusPublisher {
  readonly writer: StatusWriter;
  /** Asks for a refresh (coalesced); never throws. */
  refresh(): void;
  /** Resolves once a refresh requested before the call ran and its writes are done (tests). */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

export async function startStatusPublisher(o: StatusPublisherOptions): Promise<StatusPublisher> {
  const writer = new StatusWriter({
    api: o.api,
    bucket: new TokenBucket(o.writesPerSecond ?? 10, o.burst ?? 20),
    stamp: (kind) => (kind === 'PalisadeNode'
      ? { lastHeartbeat: new Date().toISOString() }
      : { lastUpdated: new Date().toISOString() }),
    onWrite: o.onWrite,
    log: o.log,
    retryMs: o.retryMs,
    ownerLabel: { key: NODE_LABEL, value: o.sources.node },
  });
  const reporter = new StatusReporter({ sources: o.sources, writer, api: o.api, heartbeatMs: o.heartbeatMs });
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  const run = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await reporter.refresh();
        } catch (err) {
          o.log?.('warn', 'status refresh failed', { error: (err as Error).message });
        }
      } while (again && !stopped);
    })().finally(() => { running = undefined; });
    return running;
  };
  try {
    await reporter.start();
  } catch (err) {
    // The API may be briefly unreachable: publish anyway (objects are created as needed),
    // only stale objects of an earlier run stay until the next start.
    o.log?.('warn', 'status: listing existing objects failed; stale ones are not removed', { error: (err as Error).message });
    await run();
  }
  const timer = setInterval(() => { void run(); }, o.refreshMs ?? 5_000);
  timer.unref();
  return {
    writer,
    refresh: () => { if (!stopped) void run(); },
    async settled() {
      await run();
      while (running) await running;
      await writer.idle();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
      await writer.stop();
    },
  };
}
