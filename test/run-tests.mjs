// `make test`: lint, then every vitest project, then one plain summary line
// ("N passed, N failed, N skipped") that CI reads. Exit status is vitest's (or lint's).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const lint = spawnSync('eslint', ['-c', '.ci/eslint.config.mjs', '.'], { stdio: 'inherit' });
if (lint.status !== 0) {
  console.error('make test: lint failed');
  process.exit(lint.status ?? 1);
}

if (process.getuid?.() !== 0) {
  console.error('make test: not root: privileged tests (kernel, netns, lab) will be SKIPPED');
}

const dir = mkdtempSync(join(tmpdir(), 'palisade-test-'));
const out = join(dir, 'vitest.json');
const args = ['run', '--config', 'test/vitest.config.ts', '--reporter=default',
  '--reporter=json', `--outputFile.json=${out}`, ...process.argv.slice(2)];
const run = spawnSync('vitest', args, { stdio: 'inherit' });

let summary = 'summary unavailable';
try {
  const r = JSON.parse(readFileSync(out, 'utf8'));
  const skipped = r.numPendingTests + r.numTodoTests;
  summary = `${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`;
  if (r.numTotalTests === 0) summary = '0 passed, 0 failed';
} catch (err) {
  console.error(`make test: could not read vitest results: ${err.message}`);
}
rmSync(dir, { recursive: true, force: true });
console.log(`\ntests: ${summary}`);
process.exit(run.status ?? 1);
