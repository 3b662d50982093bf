// The persistent helper client (pkg/datapath/linux/helper-server.ts) against the real
// `palisade-bpf serve` where a harmless request exists (ifname, info of a missing pin),
// and against small fake helpers for out-of-order answers and a crash.
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HelperServer } from '../../../pkg/datapath/linux/helper-server.ts';

const root = new URL('../../..', import.meta.url).pathname;
const real = join(root, 'bin/palisade-bpf');
const work = mkdtempSync(join(tmpdir(), 'palisade-helper-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function fake(name: string, body: string): string {
  const f = join(work, name);
  writeFileSync(f, `#!/bin/sh\n${body}\n`);
  chmodSync(f, 0o755);
  return f;
}

describe('HelperServer', () => {
  it.skipIf(!existsSync(real))('answers like the CLI: output on success, the error line on failure', async () => {
    const h = new HelperServer(real);
    try {
      const [ok, missing, unknown] = await Promise.all([
        h.call(['ifname', '1']),
        h.call(['info', join(work, 'no-such-pin')]),
        h.call(['frobnicate']),
      ]);
      expect(ok).toEqual({ code: 0, stdout: 'lo', stderr: '' });
      expect(missing.code).toBe(1);
      expect(missing.stderr).toBe('palisade-bpf: opening program pin: No such file or directory');
      expect(unknown).toMatchObject({ code: 2, stderr: 'palisade-bpf: serve: unknown request' });
    } finally {
      await h.close();
    }
  });

  it('matches answers to requests by id when they come out of order', async () => {
    // Answers the second request first, then the first.
    const h = new HelperServer(fake('swap', 'read a; read b; set -- $b; echo "$1 0 second"; set -- $a; echo "$1 0 first"; cat >/dev/null'));
    try {
      const [a, b] = await Promise.all([h.call(['x']), h.call(['y'])]);
      expect(a.stdout).toBe('first');
      expect(b.stdout).toBe('second');
    } finally {
      await h.close();
    }
  });

  it('a helper that dies fails what is in flight, and the next call starts a new one', async () => {
    const marker = join(work, 'started');
    // The first instance exits on its first request; later ones answer.
    const h = new HelperServer(fake('crashy', `if [ ! -e ${marker} ]; then touch ${marker}; read l; echo oops >&2; exit 1; fi
while read id rest; do echo "$id 0 alive"; done`));
    try {
      const dead = await h.call(['x']);
      expect(dead.code).toBe(-1);
      expect(dead.stderr).toMatch(/palisade-bpf serve: exited \(1\): oops/);
      expect(await h.call(['y'])).toEqual({ code: 0, stdout: 'alive', stderr: '' });
    } finally {
      await h.close();
    }
  });

  it('rejects arguments with whitespace before anything is sent', async () => {
    const h = new HelperServer(fake('never', 'echo started > /dev/null; cat >/dev/null'));
    await expect(h.call(['attach', 'a b'])).rejects.toThrow(/bad argument "a b"/);
    await expect(h.call(['attach', ''])).rejects.toThrow(/bad argument ""/);
    await h.close();
  });
});
