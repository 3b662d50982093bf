/**
 * Time and logging at the edge (STYLE principle 2): the informers and the control plane
 * take a `Clock` and a `Logger` so that tests can run them on a fake clock and capture
 * what they log.
 */

export interface Clock {
  /** Monotonic milliseconds (performance.now() in the real clock). */
  now(): number;
  /** Runs `fn` after `ms`; returns a function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(t);
  },
};

/** Resolves after `ms` on `clock`, or early (without error) when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const cancel = clock.setTimer(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export type LogFields = Record<string, unknown>;

/** Structured logger; any object with these four methods fits (e.g. the agent's). */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export const silentLogger: Logger = {
  debug() {}, info() {}, warn() {}, error() {},
};

/** JSON lines on stderr (never stdout), at `level` and above. */
export function stderrLogger(component: string, level: 'debug' | 'info' | 'warn' | 'error' = 'info'): Logger {
  const order = ['debug', 'info', 'warn', 'error'];
  const min = order.indexOf(level);
  const at = (lvl: string) => (msg: string, fields?: LogFields) => {
    if (order.indexOf(lvl) < min) return;
    process.stderr.write(`${JSON.stringify({
      time: new Date().toISOString(), level: lvl, component, msg, ...fields,
    })}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** The message of an unknown thrown value. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
