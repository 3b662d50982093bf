import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderAll } from '../../conformance/gen.ts';
import { Reach } from '../../conformance/cases.ts';
import { parseScenario } from '../../../pkg/lab/scenario.ts';

const dir = new URL('../../conformance/scenarios/', import.meta.url).pathname;

describe('conformance scenarios', () => {
  it('are up to date with cases.ts (run: node test/conformance/gen.ts)', () => {
    for (const [name, text] of Object.entries(renderAll())) {
      expect(readFileSync(join(dir, name), 'utf8'), name).toBe(text);
    }
  });

  it('are valid scenarios with an expect for every probe', () => {
    for (const [name, text] of Object.entries(renderAll())) {
      const s = parseScenario(text);
      if (name !== 'service-ports.yaml') expect(s.pods, name).toHaveLength(9);
      for (const step of s.steps) {
        expect(step.expect.length, `${name}: ${step.name}`).toBe(step.probes!.length);
      }
    }
  });

  it('reachability rules: later rules override earlier ones', () => {
    const r = new Reach().peer({}, 'x', false).allIngress('x/a', true).peer('y/b', 'x/a', false);
    expect(r.allowed('y/a', 'x/b')).toBe(false);
    expect(r.allowed('y/a', 'x/a')).toBe(true);
    expect(r.allowed('y/b', 'x/a')).toBe(false);
    expect(r.allowed('x/b', 'y/a')).toBe(true);
  });
});
