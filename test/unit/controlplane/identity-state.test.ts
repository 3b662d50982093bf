import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadIdentityState, saveIdentityState } from '../../../pkg/controlplane/identity-state.ts';
import { PolicyCompiler } from '../../../pkg/policy/compile.ts';
import { MemoryCluster } from '../../../pkg/k8s/memory.ts';
import { RecordingLogger } from './fakes.ts';
import { EP_XA, EP_XB, NODE, seed } from './fixtures.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'pal-ids-'));
  dirs.push(d);
  return d;
}

function compileWith(compiler: PolicyCompiler, cluster: MemoryCluster) {
  const s = cluster.store.snapshot();
  return compiler.compile({ revision: 1, nodeName: NODE, namespaces: s.namespaces, pods: s.pods, nodes: s.nodes, policies: s.policies, endpoints: [EP_XA, EP_XB] });
}

describe('identity state', () => {
  it('round-trips the allocators so a restarted compiler numbers identities the same', async () => {
    const path = join(await tmp(), 'sub', 'identities.json');
    const cluster = new MemoryCluster();
    seed(cluster);
    const first = new PolicyCompiler();
    // Shift numbers away from what a fresh allocator would give: allocate, then drop a set.
    cluster.apply({ kind: 'Pod', metadata: { name: 'tmp', namespace: 'x', labels: { pod: 'aaa-first' } }, spec: { containers: [] }, status: { podIP: '10.244.0.99' } } as never);
    compileWith(first, cluster);
    cluster.delete('pods', 'x/tmp');
    const before = compileWith(first, cluster);
    await saveIdentityState(path, first);

    const restored = new PolicyCompiler(await loadIdentityState(path, new RecordingLogger()));
    expect(compileWith(restored, cluster).state).toEqual(before.state);
    const fresh = compileWith(new PolicyCompiler(), cluster);
    expect(fresh.state).not.toEqual(before.state);
  });

  it('starts fresh, with a warning, from a corrupt file; silently when there is none', async () => {
    const dir = await tmp();
    const log = new RecordingLogger();
    const missing = await loadIdentityState(join(dir, 'none.json'), log);
    expect(missing.labelIdentities.size).toBe(0);
    expect(log.records).toEqual([]);
    await writeFile(join(dir, 'bad.json'), '{"version": 1, "labelIdentities": {"kind": "nope"}');
    const bad = await loadIdentityState(join(dir, 'bad.json'), log);
    expect(bad.labelIdentities.size).toBe(0);
    expect(log.count('identity state is corrupt; starting with fresh identities')).toBe(1);
  });

  it('writes atomically (no temp file left behind)', async () => {
    const dir = await tmp();
    const path = join(dir, 'identities.json');
    await saveIdentityState(path, new PolicyCompiler());
    const j = JSON.parse(await readFile(path, 'utf8')) as { version: number };
    expect(j.version).toBe(1);
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(dir)).toEqual(['identities.json']);
  });
});
