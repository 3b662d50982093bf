import { describe, expect, it } from 'vitest';
import { CoalescingRunner } from '../../../pkg/controlplane/runner.ts';
import { ManualClock } from './fakes.ts';

function setup(opts: { min?: number; max?: number; work?: () => Promise<void> } = {}) {
  const clock = new ManualClock();
  const starts: number[] = [];
  const errors: unknown[] = [];
  const runner = new CoalescingRunner({
    clock, minIntervalMs: opts.min ?? 2, maxDelayMs: opts.max ?? 20,
    retry: { baseMs: 100, maxMs: 100, random: () => 0.999999 },
    run: async () => {
      starts.push(clock.now());
      await opts.work?.();
    },
    onError: (e) => errors.push(e),
  });
  return { clock, runner, starts, errors };
}

describe('CoalescingRunner', () => {
  it('turns a burst of 100 triggers into one run after the quiet interval', async () => {
    const { clock, runner, starts } = setup();
    for (let i = 0; i < 100; i++) runner.trigger();
    await clock.advance(1);
    expect(starts).toEqual([]);
    await clock.advance(5);
    expect(starts).toEqual([2]);
  });

  it('extends the quiet interval with each trigger, but never past maxDelay', async () => {
    const { clock, runner, starts } = setup({ min: 2, max: 10 });
    for (let t = 0; t < 30; t++) {
      runner.trigger();
      await clock.advance(1);
    }
    // Triggers every 1 ms never leave 2 ms of quiet: runs are forced every ~10 ms.
    expect(starts.length).toBeGreaterThanOrEqual(2);
    expect(starts[0]).toBe(10);
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeLessThanOrEqual(11);
  });

  it('runs once more after a run during which triggers arrived, never two at once', async () => {
    let release!: () => void;
    let concurrent = 0;
    let maxConcurrent = 0;
    const { clock, runner, starts } = setup({
      work: async () => {
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        if (starts.length === 1) await new Promise<void>((r) => { release = r; });
        concurrent--;
      },
    });
    runner.trigger();
    await clock.advance(2);
    expect(starts).toEqual([2]);
    for (let i = 0; i < 10; i++) runner.trigger();
    await clock.advance(50);
    expect(starts).toEqual([2]);
    release();
    await clock.advance(5);
    expect(starts.length).toBe(2);
    expect(maxConcurrent).toBe(1);
  });

  it('retries a failed run after the backoff, sooner when triggered', async () => {
    let fail = true;
    const { clock, runner, starts, errors } = setup({
      work: async () => {
        if (fail) throw new Error('boom');
      },
    });
    runner.trigger();
    await clock.advance(2);
    expect(errors).toHaveLength(1);
    await clock.advance(50);
    expect(starts).toHaveLength(1);
    fail = false;
    await clock.advance(60);
    expect(starts).toHaveLength(2);
    expect(errors).toHaveLength(1);
  });

  it('does nothing after stop', async () => {
    const { clock, runner, starts } = setup();
    runner.trigger();
    await runner.stop();
    runner.trigger();
    await clock.advance(100);
    expect(starts).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  it('rejects bad intervals', () => {
    const clock = new ManualClock();
    expect(() => new CoalescingRunner({ clock, run: async () => {}, minIntervalMs: 5, maxDelayMs: 1 }))
      .toThrow(/minIntervalMs/);
  });
});
