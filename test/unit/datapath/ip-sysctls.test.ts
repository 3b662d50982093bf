// ipBatch's sysctls option (the iproute2 fallback of the pod setup writes
// net.ipv6.conf.<if>.disable_ipv6 with it): written before ip runs, a missing file is
// skipped, a failed write stops the run before ip changes anything.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ipBatch } from '../../../pkg/datapath/linux/net/ip.ts';

describe('ipBatch sysctls', () => {
  it('skips a file the kernel does not have and runs ip', async () => {
    const r = await ipBatch(['link show dev lo'], { json: true, sysctls: [{ file: '/proc/sys/net/no-such-feature/x', value: '1' }] });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('"ifname":"lo"');
  });

  it('fails with the file named, and ip never runs, when a write fails', async () => {
    // Read-only for everyone, root included (sysctl permission bits apply to root).
    const r = await ipBatch(['link show dev lo'], { json: true, sysctls: [{ file: '/proc/sys/kernel/osrelease', value: 'x' }] });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('writing /proc/sys/kernel/osrelease failed');
    expect(r.stdout).toBe('');
  });

  it('passes values as data, never as shell', async () => {
    const marker = join(tmpdir(), `palisade-ip-sysctls-${process.pid}`);
    const r = await ipBatch(['link show dev lo'], { json: true, sysctls: [{ file: `/proc/sys/net/no-such/$(touch ${marker})`, value: `\`touch ${marker}\`` }] });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(marker)).toBe(false);
  });

  it('refuses a file outside /proc/sys', async () => {
    await expect(ipBatch(['link show dev lo'], { sysctls: [{ file: '/etc/passwd', value: '1' }] })).rejects.toThrow(/not under \/proc\/sys/);
    await expect(ipBatch(['link show dev lo'], { sysctls: [{ file: '/proc/sys/../../etc/passwd', value: '1' }] })).rejects.toThrow(/not under \/proc\/sys/);
  });
});
