/**
 * Running the datapath's external tools (bin/palisade-bpf, tc, mount). Arguments are
 * passed as an array, never through a shell.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this module's location (source or dist/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bpf'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

/** bin/palisade-bpf of this checkout or install. */
export function defaultHelperPath(): string {
  return join(repoRoot(), 'bin', 'palisade-bpf');
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit status; 0 on success. */
  code: number;
}

/** Runs `file args`; resolves with the exit status instead of rejecting on failure. */
export function run(file: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
        // Could not start it at all (ENOENT, EACCES): not an exit status.
        reject(new Error(`running ${file}: ${err.message}`, { cause: err }));
        return;
      }
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ stdout: String(stdout), stderr: String(stderr), code });
    });
  });
}

/** Runs and rejects with `step: <last stderr line>` on a non-zero exit. */
export async function runOk(step: string, file: string, args: string[]): Promise<string> {
  const r = await run(file, args);
  if (r.code !== 0) {
    const why = r.stderr.trim().split('\n').pop() || `exit status ${r.code}`;
    throw new Error(`${step}: ${why}`);
  }
  return r.stdout;
}
