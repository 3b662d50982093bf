import { describe, expect, it } from 'vitest';
import { desiredRouting, nodeInternalIP, nodePodCIDRs, sameRouting } from '../../../pkg/controlplane/routes.ts';
import type { Node } from '../../../pkg/policy/snapshot.ts';

function node(name: string, podCIDR: string | undefined, ip: string | undefined, extra: Partial<Node> = {}): Node {
  return {
    metadata: { name },
    spec: podCIDR === undefined ? {} : { podCIDR },
    status: { addresses: ip === undefined ? [{ type: 'Hostname', address: name }] : [{ type: 'ExternalIP', address: '192.0.2.1' }, { type: 'InternalIP', address: ip }] },
    ...extra,
  };
}

describe('desiredRouting', () => {
  it('routes every other node\'s pod CIDR via its InternalIP and masquerades to the outside', () => {
    const nodes = [node('n1', '10.244.1.0/24', '10.89.0.11'), node('n0', '10.244.0.0/24', '10.89.0.10'), node('n2', '10.244.2.0/24', '10.89.0.12')];
    const { state, skipped } = desiredRouting(nodes, 'n0');
    expect(state.routes).toEqual([
      { dst: '10.244.1.0/24', via: '10.89.0.11', node: 'n1' },
      { dst: '10.244.2.0/24', via: '10.89.0.12', node: 'n2' },
    ]);
    expect(state.masquerade).toEqual({ podCIDRs: ['10.244.0.0/24'], clusterCIDRs: ['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24'] });
    expect(skipped).toEqual([]);
  });

  it('uses configured cluster CIDRs for masquerading and rejects invalid ones', () => {
    const nodes = [node('n0', '10.244.0.0/24', '10.89.0.10')];
    expect(desiredRouting(nodes, 'n0', { clusterCIDRs: ['10.244.0.0/16'] }).state.masquerade)
      .toEqual({ podCIDRs: ['10.244.0.0/24'], clusterCIDRs: ['10.244.0.0/16'] });
    expect(() => desiredRouting(nodes, 'n0', { clusterCIDRs: ['10.244.0.0/33'] })).toThrow(/invalid cluster CIDR/);
  });

  it('skips nodes without a pod CIDR or InternalIP, and CIDRs overlapping ours or claimed twice', () => {
    const nodes = [
      node('n0', '10.244.0.0/24', '10.89.0.10'),
      node('a', undefined, '10.89.0.20'),
      node('b', '10.244.5.0/24', undefined),
      node('c', '10.244.0.0/16', '10.89.0.21'),
      node('d', '10.244.7.0/24', '10.89.0.22'),
      node('e', '10.244.7.0/24', '10.89.0.23'),
    ];
    const { state, skipped } = desiredRouting(nodes, 'n0');
    expect(state.routes).toEqual([{ dst: '10.244.7.0/24', via: '10.89.0.22', node: 'd' }]);
    expect(skipped.map((s) => s.node)).toEqual(['a', 'b', 'c', 'e']);
  });

  it('has no masquerade while this node has no pod CIDR, and canonicalizes CIDRs', () => {
    const { state } = desiredRouting([node('n0', undefined, '10.89.0.10'), node('n1', '10.244.1.7/24', '10.89.0.11')], 'n0');
    expect(state.masquerade).toBeUndefined();
    expect(state.routes).toEqual([{ dst: '10.244.1.0/24', via: '10.89.0.11', node: 'n1' }]);
  });

  it('reads podCIDRs before podCIDR and ignores IPv6', () => {
    const n = node('n', '10.1.0.0/24', '10.89.0.1', {});
    n.spec = { podCIDR: '10.1.0.0/24', podCIDRs: ['fd00::/64', '10.2.0.0/24'] };
    expect(nodePodCIDRs(n)).toEqual(['10.2.0.0/24']);
    n.status = { addresses: [{ type: 'InternalIP', address: 'fd00::1' }, { type: 'InternalIP', address: '10.89.0.9' }] };
    expect(nodeInternalIP(n)).toBe('10.89.0.9');
  });

  it('compares states ignoring node names', () => {
    const a = desiredRouting([node('n0', '10.244.0.0/24', '10.89.0.10'), node('n1', '10.244.1.0/24', '10.89.0.11')], 'n0').state;
    const b = structuredClone(a);
    b.routes[0]!.node = '';
    expect(sameRouting(a, b)).toBe(true);
    b.routes[0]!.via = '10.89.0.99';
    expect(sameRouting(a, b)).toBe(false);
  });
});
