/**
 * The node-side L7 redirect setup (pkg/datapath/linux/l7redirect.ts) in a private network
 * namespace and bpffs: what it creates, that a second setup changes nothing, that remove
 * takes everything away and restores the sysctls, and that bad input changes nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged, uniquePrefix } from '../../helpers/privileged.ts';

const root = new URL('../../..', import.meta.url).pathname;
const ns = uniquePrefix('l7s');
const tmp = mkdtempSync(join(tmpdir(), 'l7-setup-'));
const bpffs = join(tmp, 'bpffs');
const dir = join(bpffs, 'palisade');
const stateDir = join(tmp, 'state');

interface Shown {
  error?: string;
  rules: { priority: number; table: string; fwmark?: string; fwmask?: string }[];
  routes: string;
  device: number;
  filter: boolean;
  nonlocalBind: string;
  earlyDemux: string;
  config?: number[];
}

function child(cmd: 'setup' | 'remove' | 'show', ...extra: string[]): Shown {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, join(root, 'test/system/l7/setup-child.ts'), cmd, dir, stateDir, ...extra],
    { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Shown;
}

describePrivileged('L7 redirect setup', () => {
  beforeAll(() => {
    spawnSync('ip', ['netns', 'add', ns]);
    mkdirSync(join(dir, 'maps'), { recursive: true });
    mkdirSync(join(dir, 'progs'), { recursive: true });
    mkdirSync(stateDir, { recursive: true });
    // A private bpffs: the pins of this test only.
    spawnSync('umount', [bpffs]);
    expect(spawnSync('mount', ['-t', 'bpf', 'bpf', bpffs]).status).toBe(0);
    mkdirSync(join(dir, 'maps'), { recursive: true });
    mkdirSync(join(dir, 'progs'), { recursive: true });
  });

  afterAll(() => {
    spawnSync('ip', ['netns', 'del', ns]);
    spawnSync('umount', [bpffs]);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('creates the rule, the local route, the device with its program, the sysctls and the config', () => {
    const before = child('show');
    expect(before.rules).toEqual([]);
    expect(before.device).toBe(0);
    const s = child('setup');
    expect(s.rules).toEqual([expect.objectContaining({ priority: 2077, table: '2077', fwmark: '0x200000', fwmask: '0x200000' })]);
    expect(s.routes).toBe('local default dev lo scope host');
    expect(s.device).toBeGreaterThan(0);
    expect(s.filter).toBe(true);
    expect([s.nonlocalBind, s.earlyDemux]).toEqual(['1', '0']);
    expect(s.config).toEqual([15001, s.device]);
    // Idempotent: one rule, same device.
    const again = child('setup');
    expect(again.rules).toHaveLength(1);
    expect(again.device).toBe(s.device);
    // Removed: nothing left, sysctls back to what the namespace had.
    const gone = child('remove');
    expect(gone.rules).toEqual([]);
    expect(gone.routes).toBe('');
    expect(gone.device).toBe(0);
    expect([gone.nonlocalBind, gone.earlyDemux]).toEqual([before.nonlocalBind, before.earlyDemux]);
    expect(gone.config).toEqual([0, 0]);
    // Removing again is not an error.
    expect(child('remove').device).toBe(0);
  });

  it('refuses a bad proxy port and strict rp_filter everywhere, changing nothing', () => {
    const before = child('show');
    const bad = child('setup', '0');
    expect(bad.error).toMatch(/^PAL_L7_REDIRECT: setting up the l7 redirect: bad proxy port 0/);
    expect(bad).toEqual({ ...before, error: bad.error });
    spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=1']);
    try {
      const strict = child('setup');
      expect(strict.error).toMatch(/rp_filter is 1/);
      expect(strict).toEqual({ ...before, error: strict.error });
    } finally {
      spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0']);
    }
  });
});
