import { describe, expect, it } from 'vitest';
import { buildResult, prevResultAddresses } from '../../../pkg/cni/result.ts';

const a = {
  hostIfName: 'pal0123456789a', hostMac: '02:00:00:00:00:01', podIfName: 'eth0',
  podMac: '02:00:00:00:00:02', netns: '/var/run/netns/p', mtu: 1450, ipv4: '10.1.0.5', gateway: '169.254.1.1',
};

describe('ADD result by cniVersion', () => {
  it('1.1.0 carries interface mtu and no ip version', () => {
    const r = buildResult('1.1.0', a);
    expect(r.cniVersion).toBe('1.1.0');
    expect(r.interfaces).toEqual([
      { name: 'pal0123456789a', mac: '02:00:00:00:00:01', mtu: 1450 },
      { name: 'eth0', mac: '02:00:00:00:00:02', mtu: 1450, sandbox: '/var/run/netns/p' },
    ]);
    expect(r.ips).toEqual([{ address: '10.1.0.5/32', gateway: '169.254.1.1', interface: 1 }]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
  });
  it('1.0.0 has no interface mtu', () => {
    const r = buildResult('1.0.0', a);
    expect(r.interfaces[0]).not.toHaveProperty('mtu');
    expect(r.ips[0]).not.toHaveProperty('version');
  });
  it('0.3.1 and 0.4.0 mark IPs as version 4', () => {
    for (const v of ['0.3.0', '0.3.1', '0.4.0']) expect(buildResult(v, a).ips[0]?.version).toBe('4');
  });
  it('the ip points at the sandbox interface', () => {
    const r = buildResult('1.0.0', a);
    expect(r.interfaces[r.ips[0]!.interface!]?.sandbox).toBe('/var/run/netns/p');
  });
  it('prevResult addresses drop the prefix', () => {
    expect(prevResultAddresses(buildResult('1.1.0', a) as unknown as Record<string, unknown>)).toEqual(['10.1.0.5']);
    expect(prevResultAddresses(undefined)).toEqual([]);
  });
});
