// The kind scripts and CI workflow cannot run here (no Docker), so check what can be:
// syntax (bash -n, shellcheck when installed), that each script stops with exit 2 and
// names the tools it lacks, and that the workflow and kind config say what they should.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = new URL('../../..', import.meta.url).pathname;
const scripts = ['kind-up', 'kind-install', 'kind-e2e', 'kind-down'];
const scriptPath = (s: string) => join(root, 'test/kind', `${s}.sh`);

function which(tool: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

// A PATH with only what the scripts need before their tool check: no docker, kind, helm.
const bare = mkdtempSync(join(tmpdir(), 'palisade-kind-path-'));
for (const t of ['bash', 'dirname', 'basename']) symlinkSync(which(t)!, join(bare, t));
afterAll(() => rmSync(bare, { recursive: true, force: true }));

describe('test/kind scripts', () => {
  for (const s of scripts) {
    it(`${s}.sh is executable, strict and parses`, () => {
      accessSync(scriptPath(s), constants.X_OK);
      const text = readFileSync(scriptPath(s), 'utf8');
      expect(text.startsWith('#!/usr/bin/env bash\n')).toBe(true);
      expect(text).toContain('set -euo pipefail');
      const r = spawnSync('bash', ['-n', scriptPath(s)], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    });

    it(`${s}.sh exits 2 naming the missing tools`, () => {
      const r = spawnSync(scriptPath(s), [], {
        encoding: 'utf8', env: { PATH: bare, HOME: bare, ARTIFACTS: join(bare, 'artifacts') },
      });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^${s}: missing tools: .*\\bkind\\b`, 'm'));
      if (s !== 'kind-down') expect(r.stderr).toMatch(/missing tools: .*\bkubectl\b/);
      if (s === 'kind-install') expect(r.stderr).toMatch(/missing tools: .*\bhelm\b/);
    });
  }

  it('kind-e2e.sh selects the Netpol specs and skips only SCTP, [Serial] and [Disruptive] ones', () => {
    const r = spawnSync(scriptPath('kind-e2e'), ['--print-filters'], { encoding: 'utf8', env: { PATH: bare, HOME: bare } });
    expect(r.status, r.stderr).toBe(0);
    const f = Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const focus = new RegExp(f.focus!);
    const skip = new RegExp(f.skip!);
    const run = (spec: string) => focus.test(spec) && !skip.test(spec);
    expect(run("[sig-network] Netpol NetworkPolicy between server and client should support a 'default-deny-ingress' policy [Feature:NetworkPolicy]")).toBe(true);
    expect(run('[sig-network] Netpol NetworkPolicy between server and client using UDP should enforce policy based on Ports [Feature:NetworkPolicy]')).toBe(true);
    expect(run("[sig-network] Netpol [Feature:SCTPConnectivity][LinuxOnly] NetworkPolicy between server and client using SCTP should support a 'default-deny-ingress' policy [Feature:NetworkPolicy]")).toBe(false);
    expect(run('[sig-network] Netpol NetworkPolicy between server and client should do something [Serial]')).toBe(false);
    expect(run('[sig-network] Services should serve a basic endpoint from pods [Conformance]')).toBe(false);
  });

  const shellcheck = which('shellcheck');
  if (!shellcheck) console.warn('SKIP shellcheck: not installed (apt-get install shellcheck)');
  it.skipIf(!shellcheck)('pass shellcheck, with the sh install script checked as POSIX sh', () => {
    const bashFiles = [...scripts.map(scriptPath), join(root, 'test/kind/lib.sh'), join(root, 'charts/render-manifests.sh')];
    const r = spawnSync(shellcheck!, ['-x', '-P', 'SCRIPTDIR', ...bashFiles], { encoding: 'utf8' });
    expect(r.status, r.stdout).toBe(0);
    const sh = spawnSync(shellcheck!, ['-s', 'sh', join(root, 'charts/cni-install/install-cni.sh')], { encoding: 'utf8' });
    expect(sh.status, sh.stdout).toBe(0);
  });

  it('are what the Makefile kind targets run', () => {
    const mk = readFileSync(join(root, 'Makefile'), 'utf8');
    expect(mk).toMatch(/^kind-up kind-install kind-e2e kind-down:\n\t\.\/test\/kind\/\$@\.sh$/m);
  });
});

describe('kind-config.yaml', () => {
  const cfg = parse(readFileSync(join(root, 'kind-config.yaml'), 'utf8'));
  it('disables the default CNI and has one control plane and two workers', () => {
    expect(cfg.kind).toBe('Cluster');
    expect(cfg.apiVersion).toBe('kind.x-k8s.io/v1alpha4');
    expect(cfg.networking.disableDefaultCNI).toBe(true);
    expect(cfg.networking.podSubnet).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    expect(cfg.nodes.map((n: { role: string }) => n.role)).toEqual(['control-plane', 'worker', 'worker']);
  });
});

describe('.github/workflows/kind-e2e.yml', () => {
  const wf = parse(readFileSync(join(root, '.github/workflows/kind-e2e.yml'), 'utf8'));
  const steps: { name?: string; run?: string; uses?: string; if?: string; with?: Record<string, unknown> }[] = wf.jobs.netpol.steps;
  it('installs Node 24, helm and kind, then runs the kind targets in order', () => {
    expect(steps.find((s) => s.uses?.startsWith('actions/setup-node@'))?.with?.['node-version']).toBe(24);
    expect(steps.some((s) => s.uses?.startsWith('azure/setup-helm@'))).toBe(true);
    expect(steps.some((s) => s.run?.includes('kind.sigs.k8s.io/dl/'))).toBe(true);
    const makes = steps.map((s) => s.run?.match(/^make (kind-[a-z0-9]+)$/)?.[1]).filter(Boolean);
    expect(makes).toEqual(['kind-up', 'kind-install', 'kind-e2e', 'kind-down']);
  });
  it('uploads artifacts and deletes the cluster even when a step failed', () => {
    const upload = steps.find((s) => s.uses?.startsWith('actions/upload-artifact@'));
    expect(upload?.if).toBe('always()');
    expect(steps.at(-1)).toMatchObject({ run: 'make kind-down', if: 'always()' });
    expect(wf.permissions).toEqual({ contents: 'read' });
  });
});
