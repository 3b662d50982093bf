import { describe, expect, it } from 'vitest';
import { KeyedMutex } from '../../../pkg/ipam/mutex.ts';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('KeyedMutex', () => {
  it('runs operations of one key in order and of different keys side by side', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const op = (name: string) => async () => { log.push(`${name}+`); await tick(); log.push(`${name}-`); };
    await Promise.all([m.run('a', op('a1')), m.run('a', op('a2')), m.run('b', op('b1'))]);
    expect(log.indexOf('a1-')).toBeLessThan(log.indexOf('a2+'));
    expect(log.indexOf('b1+')).toBeLessThan(log.indexOf('a1-'));
  });

  it('a failed operation does not block the next one of its key', async () => {
    const m = new KeyedMutex();
    await expect(m.run('a', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await m.run('a', () => Promise.resolve(7))).toBe(7);
  });

  it('settled() waits for everything queued, and keys are forgotten once idle', async () => {
    const m = new KeyedMutex();
    let done = 0;
    void m.run('a', async () => { await tick(); done++; });
    void m.run('b', async () => { await tick(); await tick(); done++; }).catch(() => undefined);
    expect(m.busy()).toEqual(new Set(['a', 'b']));
    await m.settled();
    expect(done).toBe(2);
    await tick();
    expect(m.busy().size).toBe(0);
  });
});
