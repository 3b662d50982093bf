import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseCidr, formatIpv4, parseIpv4 } from '../../../pkg/ipam/cidr.ts';
import { Ipam, IpamExhaustedError } from '../../../pkg/ipam/ipam.ts';

const dirs: string[] = [];
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'palisade-ipam-'));
  dirs.push(d);
  return d;
}
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

const owner = (i: number | string) => ({ containerId: `c${i}`, ifName: 'eth0', network: 'net' });

describe('cidr', () => {
  it('round-trips addresses', () => expect(formatIpv4(parseIpv4('10.244.1.255'))).toBe('10.244.1.255'));
  it('rejects host bits', () => expect(() => parseCidr('10.0.0.1/24')).toThrow(/host bits/));
  it('rejects garbage', () => expect(() => parseCidr('10.0.0.0')).toThrow(/invalid CIDR/));
});

describe('Ipam', () => {
  it('hands out every address of a /29 except network and broadcast, then fails clearly', async () => {
    const ipam = await Ipam.open({ stateDir: stateDir(), cidr: '10.9.0.0/29' });
    expect(ipam.capacity).toBe(6);
    const got = [];
    for (let i = 0; i < 6; i++) got.push(await ipam.allocate(owner(i)));
    expect(got).toEqual(['10.9.0.1', '10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
    await expect(ipam.allocate(owner(7))).rejects.toBeInstanceOf(IpamExhaustedError);
    await expect(ipam.allocate(owner(7))).rejects.toThrow(/no free address in 10.9.0.0\/29/);
    expect(ipam.used).toBe(6);
  });

  it('allocating twice for one attachment returns the same address', async () => {
    const ipam = await Ipam.open({ stateDir: stateDir(), cidr: '10.9.0.0/24' });
    const a = await ipam.allocate(owner(1));
    expect(await ipam.allocate(owner(1))).toBe(a);
    expect(ipam.used).toBe(1);
  });

  it('concurrent allocations get distinct addresses', async () => {
    const ipam = await Ipam.open({ stateDir: stateDir(), cidr: '10.9.0.0/24' });
    const ips = await Promise.all(Array.from({ length: 50 }, (_, i) => ipam.allocate(owner(i))));
    expect(new Set(ips).size).toBe(50);
  });

  it('every concurrent allocation and release is on disk when it resolves (group commit)', async () => {
    const dir = stateDir();
    const ipam = await Ipam.open({ stateDir: dir, cidr: '10.9.0.0/24' });
    const first = await Promise.all(Array.from({ length: 10 }, (_, i) => ipam.allocate(owner(i))));
    // Releases and allocations interleaved, all in flight at once.
    const mixed = await Promise.all([
      ...Array.from({ length: 5 }, (_, i) => ipam.release(`c${i}`, 'eth0')),
      ...Array.from({ length: 10 }, (_, i) => ipam.allocate(owner(10 + i))),
    ]);
    const added = mixed.slice(5) as string[];
    const expected = [...first.slice(5), ...added].sort();
    const saved = JSON.parse(readFileSync(join(dir, 'ipam.json'), 'utf8'));
    expect(saved.leases.map((l: { ip: string }) => l.ip).sort()).toEqual(expected);
    const reopened = await Ipam.open({ stateDir: dir, cidr: '10.9.0.0/24' });
    expect(reopened.leases().map((l) => l.ip).sort()).toEqual(expected);
  });

  it('a lease whose write fails is gone again, and nothing was reported', async () => {
    const dir = stateDir();
    const ipam = await Ipam.open({ stateDir: dir, cidr: '10.9.0.0/24' });
    const a = await ipam.allocate(owner(1));
    // A non-empty directory where the state file goes: the atomic rename fails.
    rmSync(ipam.file);
    mkdirSync(join(ipam.file, 'x'), { recursive: true });
    await expect(ipam.allocate(owner(2))).rejects.toThrow(/ipam: persisting lease/);
    expect(ipam.get('c2', 'eth0')).toBeUndefined();
    expect(ipam.used).toBe(1);
    await expect(ipam.release('c1', 'eth0')).rejects.toThrow(/ipam: persisting release/);
    expect(ipam.get('c1', 'eth0')?.ip).toBe(a);
    rmSync(ipam.file, { recursive: true });
    const b = await ipam.allocate(owner(2));
    const saved = JSON.parse(readFileSync(ipam.file, 'utf8'));
    expect(saved.leases.map((l: { ip: string }) => l.ip).sort()).toEqual([a, b].sort());
  });

  it('does not reuse a released address at once (next-fit)', async () => {
    const ipam = await Ipam.open({ stateDir: stateDir(), cidr: '10.9.0.0/24' });
    const a = await ipam.allocate(owner(1));
    await ipam.release('c1', 'eth0');
    expect(await ipam.allocate(owner(2))).not.toBe(a);
  });

  it('wraps around to freed addresses when the end is reached', async () => {
    const ipam = await Ipam.open({ stateDir: stateDir(), cidr: '10.9.0.0/30' });
    const a = await ipam.allocate(owner(1));
    await ipam.allocate(owner(2));
    await ipam.release('c1', 'eth0');
    expect(await ipam.allocate(owner(3))).toBe(a);
  });

  it('leases survive a restart and are never handed out twice', async () => {
    const dir = stateDir();
    const one = await Ipam.open({ stateDir: dir, cidr: '10.9.0.0/24' });
    const a = await one.allocate(owner(1));
    const b = await one.allocate(owner(2));
    const two = await Ipam.open({ stateDir: dir, cidr: '10.9.0.0/24' });
    expect(two.get('c1', 'eth0')?.ip).toBe(a);
    const c = await two.allocate(owner(3));
    expect([a, b]).not.toContain(c);
    const saved = JSON.parse(readFileSync(join(dir, 'ipam.json'), 'utf8'));
    expect(saved.leases.map((l: { ip: string }) => l.ip).sort()).toEqual([a, b, c].sort());
  });

  it('release of an unknown attachment is a no-op', async () => {
    const ipam = await Ipam.open({ stateDir: stateDir(), cidr: '10.9.0.0/24' });
    expect(await ipam.release('nope', 'eth0')).toBeUndefined();
  });

  it('refuses a state whose leases lie outside a new pod CIDR', async () => {
    const dir = stateDir();
    const one = await Ipam.open({ stateDir: dir, cidr: '10.9.0.0/24' });
    await one.allocate(owner(1));
    await expect(Ipam.open({ stateDir: dir, cidr: '10.8.0.0/24' })).rejects.toThrow(/outside the pod CIDR/);
  });

  it('refuses a corrupt state file instead of starting empty', async () => {
    const dir = stateDir();
    writeFileSync(join(dir, 'ipam.json'), '{"version":1,');
    await expect(Ipam.open({ stateDir: dir, cidr: '10.9.0.0/24' })).rejects.toThrow(/ipam.json/);
  });

  it('rejects a pod CIDR smaller than /30', async () => {
    await expect(Ipam.open({ stateDir: stateDir(), cidr: '10.9.0.0/31' })).rejects.toThrow(/too small/);
  });
});
