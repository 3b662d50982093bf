// Kubernetes' own validation, offline: test/unit/chart/k8s-validate (Go) runs the API
// server's CRD validation on our CRDs and decodes every other rendered object strictly
// into its typed struct. Needs the Go toolchain (make setup's helm needs it too); the
// first build downloads k8s.io modules and takes a few minutes, later runs use Go's cache.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = new URL('../../..', import.meta.url).pathname;
const src = join(root, 'test/unit/chart/k8s-validate');

function findTool(name: string, extra: string[]): string | null {
  for (const p of extra) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}
const go = findTool('go', ['/usr/local/go/bin/go']);
const helm = findTool('helm', [join(root, '.tools/go/bin/helm')]);
if (!go) console.warn('SKIP k8s-validate: no Go toolchain (make setup installs helm with it)');

// One binary per source version, so an edit rebuilds and concurrent runs share it.
const hash = createHash('sha256');
for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(join(src, f)));
const bin = join(tmpdir(), `palisade-k8s-validate-${hash.digest('hex').slice(0, 12)}`);
const work = mkdtempSync(join(tmpdir(), 'palisade-k8s-validate-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function validate(...files: string[]) {
  return spawnSync(bin, files, { encoding: 'utf8' });
}

describe.skipIf(!go)('manifests under Kubernetes validation code', () => {
  beforeAll(() => {
    if (existsSync(bin)) return;
    const tmp = `${bin}.tmp-${process.pid}`;
    const r = spawnSync(go!, ['build', '-mod=readonly', '-o', tmp, '.'], { cwd: src, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building k8s-validate: ${r.stderr}`);
    spawnSync('mv', [tmp, bin]);
  }, 900_000);

  it('accepts manifests/palisade.yaml: the CRDs pass API server validation, the rest decodes strictly', () => {
    const r = validate(join(root, 'manifests/palisade.yaml'));
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').sort()).toEqual([
      'ok ClusterRole/palisade-agent',
      'ok ClusterRoleBinding/palisade-agent',
      'ok ConfigMap/palisade-config',
      'ok CustomResourceDefinition/palisadeendpoints.palisade.dev',
      'ok CustomResourceDefinition/palisadenetworkpolicies.palisade.dev',
      'ok CustomResourceDefinition/palisadenodes.palisade.dev',
      'ok DaemonSet/palisade-agent',
      'ok ServiceAccount/palisade-agent',
    ]);
  });

  it.skipIf(!helm)('accepts the restricted-privilege rendering', () => {
    const r = spawnSync(helm!, ['template', 'palisade', join(root, 'charts/palisade'), '--kube-version', '1.32.0',
      '--set', 'agent.privileged=false'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const f = join(work, 'restricted.yaml');
    writeFileSync(f, r.stdout);
    const v = validate(f);
    expect(v.status, v.stdout).toBe(0);
  });

  it('rejects a CRD the API server would reject and a misspelt DaemonSet field', () => {
    const crds = readFileSync(join(root, 'manifests/crds.yaml'), 'utf8');
    const badCrd = crds.replace('x-kubernetes-list-map-keys: [name]', 'x-kubernetes-list-map-keys: [nam]');
    expect(badCrd).not.toBe(crds);
    writeFileSync(join(work, 'bad-crd.yaml'), badCrd);
    const r = validate(join(work, 'bad-crd.yaml'));
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/INVALID CustomResourceDefinition\/palisadenodes\.palisade\.dev: .*x-kubernetes-list-map-keys/);

    const manifest = readFileSync(join(root, 'manifests/palisade.yaml'), 'utf8');
    writeFileSync(join(work, 'bad-ds.yaml'), manifest.replace('mountPropagation: Bidirectional', 'mountPropogation: Bidirectional'));
    const d = validate(join(work, 'bad-ds.yaml'));
    expect(d.status).toBe(1);
    expect(d.stdout).toMatch(/INVALID DaemonSet\/palisade-agent: .*unknown field .*mountPropogation/);
  });
});
