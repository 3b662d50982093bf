// The single-file shim (cmd/palisade-cni-bundle.ts): built from the compiled pkg/cni
// into a scratch dist, then run as a process the way bin/palisade-cni runs it.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = new URL('../../..', import.meta.url).pathname;
const bundler = join(root, 'dist/cmd/palisade-cni-bundle.js');
const built = existsSync(bundler) && existsSync(join(root, 'dist/pkg/cni/main.js'));
if (!built) console.warn('SKIP cni bundle tests: dist/ not built (make build-ts)');
const work = mkdtempSync(join(tmpdir(), 'palisade-cni-bundle-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function scratchDist(name: string): string {
  const d = join(work, name);
  mkdirSync(join(d, 'pkg'), { recursive: true });
  cpSync(join(root, 'dist/pkg/cni'), join(d, 'pkg/cni'), { recursive: true });
  return d;
}

function bundle(dist: string) {
  return spawnSync(process.execPath, [bundler, dist], { encoding: 'utf8' });
}

function plugin(file: string, env: Record<string, string>, stdin: string) {
  return spawnSync(process.execPath, [file], { encoding: 'utf8', input: stdin, env: { PATH: process.env.PATH ?? '', ...env } });
}

describe.skipIf(!built)('palisade-cni bundle', () => {
  it('is one module that answers like the shim: VERSION, spec errors, a DEL spooled while the agent is down', () => {
    const dist = scratchDist('ok');
    const b = bundle(dist);
    expect(b.status, b.stderr).toBe(0);
    const file = join(dist, 'palisade-cni.mjs');
    const text = readFileSync(file, 'utf8');
    // No sibling module is imported statically: everything the common path runs is inline.
    expect(text).not.toMatch(/^import .* from ["']\.\//m);
    expect(text).toMatch(/^import \{ connect \} from 'node:net';$/m);

    const v = plugin(file, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
    expect(v.status, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });

    const bad = plugin(file, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: '/x', CNI_IFNAME: 'eth0' }, '{not json');
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 6 });

    // The spool is loaded lazily from its own file, found relative to the bundle.
    const spool = join(work, 'spool');
    const del = plugin(file, { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c9', CNI_NETNS: '', CNI_IFNAME: 'eth0' },
      JSON.stringify({ cniVersion: '1.1.0', name: 'n', type: 'palisade', agentSocket: join(work, 'none.sock'), pendingDelDir: spool }));
    expect(del.status, del.stdout + del.stderr).toBe(0);
    expect(readdirSync(spool)).toHaveLength(1);
  });

  it('refuses module shapes it does not understand, and names declared twice', () => {
    const odd = scratchDist('odd');
    writeFileSync(join(odd, 'pkg/cni/version.js'), `${readFileSync(join(odd, 'pkg/cni/version.js'), 'utf8')}\nexport default 1;\n`);
    const r = bundle(odd);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/pkg\/cni\/version\.js: unsupported module syntax: export default 1/);
    expect(existsSync(join(odd, 'palisade-cni.mjs'))).toBe(false);

    const dup = scratchDist('dup');
    writeFileSync(join(dup, 'pkg/cni/version.js'), `${readFileSync(join(dup, 'pkg/cni/version.js'), 'utf8')}\nexport function causeText() { return ''; }\n`);
    const d = bundle(dup);
    expect(d.status).not.toBe(0);
    expect(d.stderr).toMatch(/'causeText' is declared in both/);
  });
});
