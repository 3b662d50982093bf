import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { pidUsesDir } from '../../../pkg/lab/exec.ts';

describe('pidUsesDir', () => {
  // A process whose arguments name lab "ab"'s directory, as the lab's servers do.
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', '--', '--dir', '/run/palisade-lab/ab', '--control', '/run/palisade-lab/ab/pods/x.sock'], { stdio: 'ignore' });
  afterAll(() => { child.kill('SIGKILL'); });

  it('matches its own directory, as an argument or as a path prefix', async () => {
    await new Promise((r) => setTimeout(r, 50));
    expect(pidUsesDir(child.pid!, '/run/palisade-lab/ab')).toBe(true);
    expect(pidUsesDir(child.pid!, '/run/palisade-lab/ab/pods')).toBe(true);
  });

  it('never matches a lab whose name is a prefix of another', () => {
    expect(pidUsesDir(child.pid!, '/run/palisade-lab/a')).toBe(false);
  });

  it('is false for a process that does not exist', () => {
    expect(pidUsesDir(2 ** 22 + 7, '/run/palisade-lab/ab')).toBe(false);
  });
});
