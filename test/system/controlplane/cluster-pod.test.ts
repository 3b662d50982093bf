/**
 * The "any pod" policy peer (IDENTITY_CLUSTER_POD, what `namespaceSelector: {}` compiles
 * to) in the kernel: the real to_pod/from_pod programs under BPF_PROG_TEST_RUN, with maps
 * written by LinuxDatapath from a real compile, against the in-memory model. Pods of any
 * namespace match; the host, another node, and outside addresses do not.
 */
import { beforeAll, expect, test } from 'vitest';
import { emptyState } from '../../../pkg/datapath/types.ts';
import { diffState } from '../../../pkg/datapath/diff.ts';
import { IDENTITY_CLUSTER_POD } from '../../../pkg/identity/reserved.ts';
import { PolicyCompiler } from '../../../pkg/policy/compile.ts';
import type { ClusterSnapshot, Namespace, NetworkPolicy, Node, Pod } from '../../../pkg/policy/snapshot.ts';
import { describePrivileged } from '../../helpers/privileged.ts';
import { useProgRun } from '../../helpers/progrun.ts';

const NODE = 'node-0';
const POD = '10.244.0.10';
const SAME_NS = '10.244.0.11';
const OTHER_NS = '10.244.1.12';
const HOST = '192.168.77.10';
const REMOTE_NODE = '192.168.77.11';
const OUTSIDE = '172.16.5.5';

function snapshot(ifindex: number): ClusterSnapshot {
  const ns = (name: string): Namespace => ({ metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } });
  const pod = (namespace: string, name: string, ip: string, node: string, app: string): Pod => ({
    metadata: { name, namespace, labels: { app } },
    spec: { nodeName: node, containers: [{ name: 'c' }] },
    status: { phase: 'Running', podIP: ip },
  });
  const node = (name: string, ip: string): Node => ({ metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }] } });
  const np: NetworkPolicy = {
    kind: 'NetworkPolicy', metadata: { name: 'all-pods', namespace: 'x' },
    spec: {
      podSelector: { matchLabels: { app: 'server' } }, policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 80 }] }],
      egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 80 }] }],
    },
  };
  return {
    revision: 1, nodeName: NODE,
    namespaces: new Map([['x', ns('x')], ['y', ns('y')]]),
    pods: new Map([
      ['x/server', pod('x', 'server', POD, NODE, 'server')],
      ['x/client', pod('x', 'client', SAME_NS, NODE, 'client')],
      ['y/far', pod('y', 'far', OTHER_NS, 'node-1', 'far')],
    ]),
    nodes: new Map([[NODE, node(NODE, HOST)], ['node-1', node('node-1', REMOTE_NODE)]]),
    policies: new Map([['NetworkPolicy:x/all-pods', np]]),
    endpoints: [{ endpointId: 100, ifindex, ifname: 'x', containerId: 'c', podNamespace: 'x', podName: 'server', ipv4: POD }],
  };
}

describePrivileged('any-pod entries (namespaceSelector {}) in the kernel', () => {
  const rig = useProgRun('cpod');
  const { judge } = rig;

  beforeAll(async () => {
    const state = new PolicyCompiler().compile(snapshot(rig.ifPod)).state;
    expect(state.policy.map((e) => [e.direction, e.peer, e.port])).toEqual([
      ['egress', IDENTITY_CLUSTER_POD, 80], ['ingress', IDENTITY_CLUSTER_POD, 80],
    ]);
    await rig.apply(diffState(state, emptyState()));
  });

  test('ingress: pods of this and another namespace pass on the port; a remote node and outside do not', () => {
    const from = (src: string, dport = 80) => judge({ direction: 'ingress', src, dst: POD, protocol: 6, sport: 40000, dport });
    expect(from(SAME_NS)).toBe('allowed');
    expect(from(OTHER_NS)).toBe('allowed');
    expect(from(OTHER_NS, 81)).toBe('dropped');
    expect(from(REMOTE_NODE)).toBe('dropped');
    expect(from(OUTSIDE)).toBe('dropped');
    // This node's own traffic passes whatever the policy (NETPOL 22).
    expect(from(HOST, 81)).toBe('allowed');
  });

  test('egress: to pods on the port; not to the host, another node or outside', () => {
    const to = (dst: string, sport: number) => judge({ direction: 'egress', src: POD, dst, protocol: 6, sport, dport: 80 });
    expect(to(SAME_NS, 41001)).toBe('allowed');
    expect(to(OTHER_NS, 41002)).toBe('allowed');
    expect(to(HOST, 41003)).toBe('dropped');
    expect(to(REMOTE_NODE, 41004)).toBe('dropped');
    expect(to(OUTSIDE, 41005)).toBe('dropped');
  });
});
