/**
 * The byte layouts of bpf/lib/maps.h and pkg/datapath/codec.ts must agree. This test
 * generates a small C program from the codec's declared layouts, compiles it on the host
 * against the real header and compares what the compiler says (sizes, offsets, field
 * widths, constants). A renamed, moved, resized or added field fails here.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { cConstants, layouts } from '../../../pkg/datapath/codec.ts';

const repo = new URL('../../../', import.meta.url).pathname;

function cProgram(): string {
  const lines: string[] = [];
  lines.push('#include <stdio.h>', '#include <stddef.h>', '#include "lib/maps.h"', 'int main(void) {');
  lines.push('printf("{\\"structs\\":{");');
  Object.entries(layouts).forEach(([name, l], i) => {
    const fields = Object.keys(l.fields).map((f, j) =>
      `printf("%s\\"${f}\\":[%zu,%zu]", ${j ? '","' : '""'}, offsetof(struct ${name}, ${f}), ` +
      `sizeof(((struct ${name} *)0)->${f}));`);
    lines.push(`printf("%s\\"${name}\\":{\\"size\\":%zu,\\"fields\\":{", ${i ? '","' : '""'}, sizeof(struct ${name}));`);
    lines.push(...fields, 'printf("}}");');
  });
  lines.push('printf("},\\"constants\\":{");');
  Object.keys(cConstants).forEach((c, i) => {
    lines.push(`printf("%s\\"${c}\\":%lld", ${i ? '","' : '""'}, (long long)(${c}));`);
  });
  lines.push('printf("}}\\n");', 'return 0; }');
  return lines.join('\n');
}

interface CView {
  structs: Record<string, { size: number; fields: Record<string, [number, number]> }>;
  constants: Record<string, number>;
}

function compileAndRun(): CView {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-drift-'));
  try {
    writeFileSync(join(dir, 'layout.c'), cProgram());
    execFileSync('cc', ['-Wall', '-Werror', '-I', join(repo, 'bpf'), '-o', join(dir, 'layout'), join(dir, 'layout.c')],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    return JSON.parse(execFileSync(join(dir, 'layout')).toString()) as CView;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('codec layouts match bpf/lib/maps.h', () => {
  const c = compileAndRun();

  test.each(Object.keys(layouts))('struct %s: size, and offset and width of every field', (name) => {
    const l = layouts[name as keyof typeof layouts];
    const fields = Object.fromEntries(Object.entries(l.fields).map(([f, v]) => [f, [...v]]));
    expect(c.structs[name]).toEqual({ size: l.size, fields });
  });

  test('declared fields tile each struct exactly (a field added in C shows as a gap)', () => {
    for (const [name, l] of Object.entries(layouts)) {
      const spans = Object.values(l.fields).map(([o, s]) => [o, s] as const).sort((a, b) => a[0] - b[0]);
      let at = 0;
      for (const [o, s] of spans) {
        expect(o, `${name}: gap or overlap before offset ${o}`).toBe(at);
        at = o + s;
      }
      expect(at, `${name}: fields end before the struct does`).toBe(l.size);
    }
  });

  test('constants: directions, prefix lengths, verdicts, drop reasons, protocols', () => {
    expect(c.constants).toEqual(cConstants);
  });
});
