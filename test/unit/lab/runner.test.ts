import { describe, expect, it } from 'vitest';
import { exitCodeOf, formatStep, stepProbes, summarize, type ScenarioResult, type StepResult } from '../../../pkg/lab/runner.ts';
import { parseScenario } from '../../../pkg/lab/scenario.ts';

const scenario = parseScenario(`
steps:
  - name: s1
    expect:
      - port: 81
        protocol: UDP
        matrix: |
          -   x/a x/b
          x/a -   X
          x/b .   -
  - name: s2
    probes: [{port: 80, protocol: TCP}]
`);

function step(over: Partial<StepResult> = {}): StepResult {
  return {
    name: 's1', convergedMs: 12, pods: { 'x/a': { ip: '10.244.0.2', node: 'lab-node-0' }, 'x/b': { ip: '10.244.1.2', node: 'lab-node-1' } },
    probes: [{ port: 81, protocol: 'UDP', target: 'pod', results: { 'x/a': { 'x/b': true }, 'x/b': { 'x/a': true } } }],
    mismatches: [], ...over,
  };
}

describe('scenario runner', () => {
  it('probes every served TCP/UDP port by default, skipping SCTP, plus expected probes', () => {
    const probes = stepProbes(scenario.steps[0]!, [
      { containerPort: 80, protocol: 'TCP' }, { containerPort: 80, protocol: 'UDP' },
      { containerPort: 80, protocol: 'TCP' }, { containerPort: 82, protocol: 'SCTP' },
    ]);
    expect(probes).toEqual([{ port: 80, protocol: 'TCP' }, { port: 80, protocol: 'UDP' }, { port: 81, protocol: 'UDP' }]);
    expect(stepProbes(scenario.steps[1]!, [{ containerPort: 9, protocol: 'UDP' }])).toEqual([{ port: 80, protocol: 'TCP' }]);
  });

  it('exit status: 0 all held, 1 a mismatch, 2 a step or setup error', () => {
    const base: ScenarioResult = { scenario: 't', nodes: 2, pods: {}, steps: [step()] };
    expect(exitCodeOf(base)).toBe(0);
    const mis = { port: 81, protocol: 'UDP', from: 'x/a', to: 'x/b', expected: false, observed: true };
    expect(exitCodeOf({ ...base, steps: [step({ mismatches: [mis] })] })).toBe(1);
    expect(exitCodeOf({ ...base, steps: [step({ mismatches: [mis] }), step({ error: 'barrier' })] })).toBe(2);
    expect(exitCodeOf({ ...base, steps: [], error: 'setting up: x' })).toBe(2);
  });

  it('summarizes cells and convergence', () => {
    const mis = { port: 81, protocol: 'UDP', from: 'x/a', to: 'x/b', expected: false, observed: true };
    const r: ScenarioResult = { scenario: 't', nodes: 2, pods: {}, steps: [step({ mismatches: [mis] }), step({ name: 's2', convergedMs: 40 })] };
    expect(summarize(scenario, r)).toEqual({ steps: 2, cellsChecked: 2, cellsCorrect: 1, worstConvergedMs: 40 });
  });

  it('formats a step with its matrix and marks mismatches', () => {
    const mis = { port: 81, protocol: 'UDP', from: 'x/a', to: 'x/b', expected: false, observed: true };
    const text = formatStep(0, 2, step({ mismatches: [mis] }));
    expect(text).toContain('== step 1/2: s1');
    expect(text).toContain('agents converged in 12 ms');
    expect(text).toMatch(/x\/a\s+-\s+\.!/);
    expect(text).toContain('x/a -> x/b 81/UDP: expected blocked, observed connected');
    expect(formatStep(0, 1, step())).toContain('as expected');
  });
});
