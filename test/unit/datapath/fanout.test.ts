import { describe, expect, it } from 'vitest';
import { Fanout } from '../../../pkg/datapath/fanout.ts';

async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

describe('Fanout', () => {
  it('gives every iterator every item published after it subscribed', async () => {
    const f = new Fanout<number>();
    f.publish(0);
    const a = f.subscribe();
    const b = f.subscribe();
    f.publish(1);
    f.publish(2);
    expect(await take(a, 2)).toEqual([1, 2]);
    expect(await take(b, 2)).toEqual([1, 2]);
  });

  it('wakes a waiting reader and ends it on end()', async () => {
    const f = new Fanout<string>();
    const a = f.subscribe();
    const pending = a.next();
    f.publish('x');
    expect(await pending).toEqual({ value: 'x', done: false });
    const waiting = a.next();
    f.end();
    expect((await waiting).done).toBe(true);
    expect(f.size).toBe(0);
  });

  it('after a final end, new iterators end at once', async () => {
    const f = new Fanout<number>();
    f.end(true);
    const a = f.subscribe();
    expect((await a.next()).done).toBe(true);
    expect(f.size).toBe(0);
  });

  it('drops items beyond maxBuffered for a reader that stopped reading', async () => {
    const f = new Fanout<number>(2);
    const a = f.subscribe();
    for (let i = 0; i < 5; i++) f.publish(i);
    f.end();
    expect(await take(a, 10)).toEqual([0, 1]);
  });

  it('runs onFinish once when the iterator returns', async () => {
    const f = new Fanout<number>();
    let finished = 0;
    const a = f.subscribe(() => { finished++; });
    await a.return?.();
    await a.return?.();
    expect(finished).toBe(1);
    expect(f.size).toBe(0);
  });
});
