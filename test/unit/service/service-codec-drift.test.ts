/**
 * The byte layouts and constants of bpf/lib/service.h and pkg/datapath/service-codec.ts
 * must agree: compiles a small C program against the real header on the host and
 * compares sizes, offsets, field widths and constants.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { serviceConstants, serviceLayouts } from '../../../pkg/datapath/service-codec.ts';

const repo = new URL('../../../', import.meta.url).pathname;

function compileAndRun(): { structs: Record<string, unknown>; constants: Record<string, number> } {
  const lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "lib/service.h"', 'int main(void) {',
    'printf("{\\"structs\\":{");'];
  Object.entries(serviceLayouts).forEach(([name, l], i) => {
    lines.push(`printf("%s\\"${name}\\":{\\"size\\":%zu,\\"fields\\":{", ${i ? '","' : '""'}, sizeof(struct ${name}));`);
    Object.keys(l.fields).forEach((f, j) => lines.push(
      `printf("%s\\"${f}\\":[%zu,%zu]", ${j ? '","' : '""'}, offsetof(struct ${name}, ${f}), sizeof(((struct ${name} *)0)->${f}));`));
    lines.push('printf("}}");');
  });
  lines.push('printf("},\\"constants\\":{");');
  Object.keys(serviceConstants).forEach((c, i) => lines.push(`printf("%s\\"${c}\\":%lld", ${i ? '","' : '""'}, (long long)(${c}));`));
  lines.push('printf("}}\\n");', 'return 0; }');
  const dir = mkdtempSync(join(tmpdir(), 'palisade-svc-drift-'));
  try {
    writeFileSync(join(dir, 'layout.c'), lines.join('\n'));
    execFileSync('cc', ['-Wall', '-Werror', '-I', join(repo, 'bpf'), '-o', join(dir, 'layout'), join(dir, 'layout.c')],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    return JSON.parse(execFileSync(join(dir, 'layout')).toString());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('service codec layouts match bpf/lib/service.h', () => {
  const c = compileAndRun();

  test.each(Object.keys(serviceLayouts))('struct %s: size, offset and width of every field', (name) => {
    const l = serviceLayouts[name as keyof typeof serviceLayouts];
    expect(c.structs[name]).toEqual({ size: l.size, fields: Object.fromEntries(Object.entries(l.fields).map(([f, v]) => [f, [...v]])) });
  });

  test('declared fields tile each struct exactly', () => {
    for (const [name, l] of Object.entries(serviceLayouts)) {
      const spans = Object.values(l.fields).map(([o, s]) => [o, s] as const).sort((a, b) => a[0] - b[0]);
      let at = 0;
      for (const [o, s] of spans) {
        expect(o, `${name}: gap or overlap before offset ${o}`).toBe(at);
        at = o + s;
      }
      expect(at, name).toBe(l.size);
    }
  });

  test('constants: flags, counters, hairpin address, bounds', () => {
    expect(c.constants).toEqual(serviceConstants);
  });
});
