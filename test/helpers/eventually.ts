/**
 * Polling for a state that settles asynchronously (flows, status written by an agent).
 */

/**
 * Reads until `ok` accepts the value, at most `tries` times `intervalMs` apart; returns
 * the accepted value, or throws naming `what` and the last value read.
 */
export async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string,
  opts: { tries: number; intervalMs: number }): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < opts.tries; i++) {
    last = await read();
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, opts.intervalMs));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}
