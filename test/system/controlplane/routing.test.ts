/**
 * LinuxRouting against a real kernel, inside a network namespace this test creates:
 * routes (tagged with our protocol) and the masquerade chain appear, follow changes, and
 * are removed, while a route we did not create is left alone.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { desiredRouting } from '../../../pkg/controlplane/routes.ts';
import { LinuxRouting, MASQ_CHAIN, ROUTE_PROTO } from '../../../pkg/datapath/linux/routing.ts';
import type { Node } from '../../../pkg/policy/snapshot.ts';
import { describePrivileged, uniquePrefix } from '../../helpers/privileged.ts';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function node(name: string, podCIDR: string, ip: string): Node {
  return { metadata: { name }, spec: { podCIDR }, status: { addresses: [{ type: 'InternalIP', address: ip }] } };
}

describePrivileged('LinuxRouting in a netns', () => {
  const ns = uniquePrefix('rt');
  let routing: LinuxRouting;

  const ourRoutes = () => (JSON.parse(sh('ip', ['-n', ns, '-j', 'route', 'show', 'proto', String(ROUTE_PROTO)])) as { dst: string; gateway: string }[])
    .map((r) => `${r.dst} via ${r.gateway}`).sort();
  const allRoutes = () => sh('ip', ['-n', ns, 'route', 'show']);
  const nat = (args: string[]) => sh('ip', ['netns', 'exec', ns, 'iptables', '-w', '5', '-t', 'nat', ...args]);
  const chainRules = () => nat(['-S', MASQ_CHAIN]).trim().split('\n').filter((l) => l.startsWith('-A'));
  const chainExists = () => {
    try { nat(['-S', MASQ_CHAIN]); return true; } catch { return false; }
  };

  beforeAll(() => {
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // No dummy driver in this kernel: a veth pair with both ends in the namespace.
    sh('ip', ['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0p', 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', '10.89.0.10/24', 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    // Someone else's route: must survive everything below.
    sh('ip', ['-n', ns, 'route', 'add', '10.244.9.0/24', 'via', '10.89.0.99', 'proto', 'static']);
    routing = new LinuxRouting({ netns: ns });
  });

  afterAll(() => {
    try { sh('ip', ['netns', 'del', ns]); } catch { /* already gone */ }
  });

  it('applies routes and the masquerade chain, follows changes, and clears only its own', async () => {
    const nodes = [node('n0', '10.244.0.0/24', '10.89.0.10'), node('n1', '10.244.1.0/24', '10.89.0.11'), node('n2', '10.244.2.0/24', '10.89.0.12')];
    const want = desiredRouting(nodes, 'n0').state;
    await routing.apply(want);
    expect(ourRoutes()).toEqual(['10.244.1.0/24 via 10.89.0.11', '10.244.2.0/24 via 10.89.0.12']);
    expect(chainRules()).toEqual([
      `-A ${MASQ_CHAIN} -s 10.244.0.0/24 -d 10.244.0.0/24 -j RETURN`,
      `-A ${MASQ_CHAIN} -s 10.244.0.0/24 -d 10.244.1.0/24 -j RETURN`,
      `-A ${MASQ_CHAIN} -s 10.244.0.0/24 -d 10.244.2.0/24 -j RETURN`,
      `-A ${MASQ_CHAIN} -s 10.244.0.0/24 -j MASQUERADE`,
    ]);
    expect(nat(['-S', 'POSTROUTING'])).toContain(`-j ${MASQ_CHAIN}`);
    const dumped = await routing.dump();
    expect(dumped.routes.map((r) => [r.dst, r.via])).toEqual(want.routes.map((r) => [r.dst, r.via]));
    expect(dumped.masquerade).toEqual(want.masquerade);

    // Idempotent: applying again changes nothing and adds no second jump.
    await routing.apply(want);
    expect(nat(['-S', 'POSTROUTING']).split(`-j ${MASQ_CHAIN}`).length - 1).toBe(1);

    // n2 leaves, n1 moves to another address.
    const next = desiredRouting([nodes[0]!, node('n1', '10.244.1.0/24', '10.89.0.21')], 'n0').state;
    await routing.apply(next);
    expect(ourRoutes()).toEqual(['10.244.1.0/24 via 10.89.0.21']);
    expect(chainRules()).toHaveLength(3);
    expect(allRoutes()).toContain('10.244.9.0/24 via 10.89.0.99');

    await routing.clear();
    expect(ourRoutes()).toEqual([]);
    expect(chainExists()).toBe(false);
    expect(nat(['-S', 'POSTROUTING'])).not.toContain(MASQ_CHAIN);
    expect(allRoutes()).toContain('10.244.9.0/24 via 10.89.0.99');
    await routing.clear(); // idempotent
  });

  it('reports a route it cannot add, and still applies the others', async () => {
    const state = {
      routes: [
        { dst: '10.244.1.0/24', via: '10.89.0.11', node: 'n1' },
        { dst: '10.244.3.0/24', via: '192.0.2.1', node: 'far' }, // not on any link
      ],
      masquerade: undefined,
    };
    await expect(routing.apply(state)).rejects.toThrow(/10\.244\.3\.0\/24 via 192\.0\.2\.1 \(far\)/);
    expect(ourRoutes()).toEqual(['10.244.1.0/24 via 10.89.0.11']);
    await routing.clear();
    expect(ourRoutes()).toEqual([]);
  });

  it('rejects malformed input before touching the kernel', async () => {
    await expect(routing.apply({ routes: [{ dst: '10.244.1.0/24; reboot', via: '10.89.0.11', node: 'x' }], masquerade: undefined }))
      .rejects.toThrow(/invalid route destination/);
    expect(ourRoutes()).toEqual([]);
  });
});
