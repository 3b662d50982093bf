import { describe, expect, it } from 'vitest';
import { computeMismatches, formatMatrix, formatMatrixCells, parseMatrix } from '../../../pkg/lab/matrix.ts';

describe('truth-table matrices', () => {
  it('parses tab-separated upstream output and aligned text alike', () => {
    const tabs = parseMatrix('-\tx/a\tx/b\nx/a\t-\tX\nx/b\t.\t-\n');
    const spaces = parseMatrix(`
      -    x/a  x/b
      x/a  -    X
      x/b  .    -
    `);
    expect(tabs).toEqual(spaces);
    expect(tabs.cells['x/a']!['x/b']).toBe('X');
    expect(tabs.cells['x/b']!['x/a']).toBe('.');
  });

  it('round-trips through formatting', () => {
    const text = '-    x/a  x/b  y/c\nx/a  -    .    D\nx/b  X    -    404\ny/c  .    .    -';
    const m = parseMatrix(text);
    expect(formatMatrixCells(m)).toBe(text);
    expect(parseMatrix(formatMatrixCells(m))).toEqual(m);
  });

  it('rejects malformed tables', () => {
    expect(() => parseMatrix('x/a x/b\n')).toThrow(/header/);
    expect(() => parseMatrix('- x/a x/b\nx/a - \n')).toThrow(/row 1.*1 cells, header has 2/);
    expect(() => parseMatrix('- x/a\nx/a ?\n')).toThrow(/"\?"/);
    expect(() => parseMatrix('- a\na -\n')).toThrow(/namespace/);
    expect(() => parseMatrix('- x/a\n')).toThrow(/no rows/);
  });

  it('computes mismatches for plain probes', () => {
    const m = parseMatrix('- x/a x/b x/c\nx/a - . X\nx/b X - -\nx/c . . -');
    const results = {
      'x/a': { 'x/b': true, 'x/c': true },
      'x/b': { 'x/a': false, 'x/c': true },
      'x/c': { 'x/a': true, 'x/b': false },
    };
    expect(computeMismatches({ port: 80, protocol: 'TCP' }, m, results)).toEqual([
      { port: 80, protocol: 'TCP', from: 'x/a', to: 'x/c', expected: false, observed: true },
      { port: 80, protocol: 'TCP', from: 'x/c', to: 'x/b', expected: true, observed: false },
    ]);
  });

  it('computes mismatches for HTTP probes and missing pods', () => {
    const m = parseMatrix('- x/a x/b x/z\nx/a - D .\nx/b . - X\nx/z . . -');
    const results = { 'x/a': { 'x/b': 200 }, 'x/b': { 'x/a': 250 } };
    const out = computeMismatches({ port: 80, protocol: 'TCP', http: {} }, m, results);
    expect(out).toContainEqual({ port: 80, protocol: 'TCP', http: {}, from: 'x/a', to: 'x/b', expected: 403, observed: 200 });
    expect(out).toContainEqual({ port: 80, protocol: 'TCP', http: {}, from: 'x/a', to: 'x/z', expected: '2xx', observed: null });
    expect(out.find((x) => x.from === 'x/b' && x.to === 'x/a')).toBeUndefined();
    expect(out).toHaveLength(5);
  });

  it('marks highlighted cells when formatting observations', () => {
    const text = formatMatrix(['x/a', 'x/b'], () => '.', (f) => f === 'x/b');
    expect(text.split('\n')[2]).toMatch(/^x\/b\s+\.!\s+-$/);
  });
});
