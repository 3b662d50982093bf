/**
 * The conformance suite: every scenario under test/conformance/scenarios/ (generated from
 * cases.ts, the upstream e2e NetworkPolicy tests) played by the real `palisade-lab`
 * (lab API server, one palisade-agent per node, palisade-cni), one lab per file. Each
 * step is a test; a step passes when every cell of its expected matrices held.
 * Needs root and a build (`make build`). Prints one summary line at the end.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privileged.ts';
import { parseScenario } from '../../pkg/lab/scenario.ts';
import type { ScenarioResult } from '../../pkg/lab/runner.ts';

const root = new URL('../..', import.meta.url).pathname;
const dir = join(root, 'test/conformance/scenarios');
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

function runLab(file: string, name: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(join(root, 'bin/palisade-lab'), ['run', file, '--json', '--name', name], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.on('error', (err) => resolve({ code: 2, stdout, stderr: String(err) }));
  });
}

const totals = { scenarios: 0, scenariosPassed: 0, cells: 0, cellsCorrect: 0, worstMs: 0 };

describePrivileged('NetworkPolicy conformance (lab)', () => {
  afterAll(() => {
    console.log(`conformance: ${totals.scenariosPassed}/${totals.scenarios} scenarios passed, ` +
      `${totals.cellsCorrect}/${totals.cells} cells correct, worst convergence ${totals.worstMs} ms`);
  });

  for (const file of files) {
    const path = join(dir, file);
    const scenario = parseScenario(readFileSync(path, 'utf8'));
    describe(file, () => {
      let result: ScenarioResult | undefined;
      let failure = '';

      beforeAll(async () => {
        const r = await runLab(path, `conf-${file.replace(/\.yaml$/, '')}`.slice(0, 32));
        try {
          result = JSON.parse(r.stdout) as ScenarioResult;
        } catch {
          failure = `palisade-lab exited ${r.code} without a result: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`;
        }
        totals.scenarios++;
        if (r.code === 0) totals.scenariosPassed++;
        for (const [i, s] of (result?.steps ?? []).entries()) {
          totals.worstMs = Math.max(totals.worstMs, s.convergedMs ?? 0);
          if (s.error) continue;
          let cells = 0;
          for (const e of scenario.steps[i]!.expect) {
            for (const f of e.matrix.froms) for (const t of e.matrix.tos) if (f !== t) cells++;
          }
          totals.cells += cells;
          totals.cellsCorrect += cells - s.mismatches.length;
        }
      }, 900_000);

      it('sets up the lab', () => {
        expect(failure, failure).toBe('');
        expect(result!.error, result!.error).toBeUndefined();
      });

      scenario.steps.forEach((step, i) => {
        it(step.name, () => {
          const s = result?.steps[i];
          expect(s, `step not played (${failure || result?.error || 'an earlier step failed'})`).toBeDefined();
          expect(s!.error, s!.error).toBeUndefined();
          const lines = s!.mismatches.map((m) => `${m.from} -> ${m.to} ${m.port}/${m.protocol}: expected ${String(m.expected)}, observed ${String(m.observed)}`);
          expect(lines, `cells differ from the expected matrix:\n${lines.join('\n')}`).toEqual([]);
        });
      });
    });
  }
});
