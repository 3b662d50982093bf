/**
 * The "any pod" policy peer (IDENTITY_CLUSTER_POD, what `namespaceSelector: {}` compiles
 * to) in the kernel: the real to_pod/from_pod programs under BPF_PROG_TEST_RUN, with maps
 * written by LinuxDatapath from a real compile, against the in-memory model. Pods of any
 * namespace match; the host, another node, and outside addresses do not.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LinuxDatapath } from '../../../pkg/datapath/linux/datapath.ts';
import { MemoryDatapath } from '../../../pkg/datapath/memory/datapath.ts';
import { emptyState } from '../../../pkg/datapath/types.ts';
import { diffState } from '../../../pkg/datapath/diff.ts';
import { IDENTITY_CLUSTER_POD } from '../../../pkg/identity/reserved.ts';
import { PolicyCompiler } from '../../../pkg/policy/compile.ts';
import type { ClusterSnapshot, Namespace, NetworkPolicy, Node, Pod } from '../../../pkg/policy/snapshot.ts';
import { describePrivileged, uniquePrefix } from '../../helpers/privileged.ts';
import { bpffsDir, buildBpf, dropBpffs, helper, ifindexOf, sh, shQuiet } from '../datapath/env.ts';
import { frame, modelPacket, type FrameSpec } from '../datapath/packets.ts';

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
  const prefix = uniquePrefix('cpod');
  const vethA = `${prefix}a`;
  const vethB = `${prefix}b`;
  let root = '';
  let tmp = '';
  let dp: LinuxDatapath | undefined;
  const model = new MemoryDatapath();
  let ifPod = 0;

  function kernel(spec: FrameSpec): string {
    const file = join(tmp, 'frame.bin');
    writeFileSync(file, frame(spec));
    const prog = join(root, 'palisade', 'progs', spec.direction === 'egress' ? 'from_pod' : 'to_pod');
    const out = execFileSync(helper, ['test-run', prog, file, String(spec.ifindex), '1']).toString();
    const retval = Number(out.split(' ')[0]);
    if (retval === 0) return 'allowed';
    if (retval === 2) return 'dropped';
    throw new Error(`unexpected program return ${retval}`);
  }

  function judge(spec: Omit<FrameSpec, 'ifindex'>): string {
    const s = { ifindex: ifPod, ...spec };
    const k = kernel(s);
    expect(k, `kernel and model disagree on ${JSON.stringify(spec)}`).toBe(model.verdict(modelPacket(s)).verdict);
    return k;
  }

  beforeAll(async () => {
    buildBpf();
    tmp = mkdtempSync(join(tmpdir(), `${prefix}-`));
    root = bpffsDir(prefix);
    sh('ip', ['link', 'add', vethA, 'type', 'veth', 'peer', 'name', vethB]);
    ifPod = ifindexOf(vethA);
    dp = new LinuxDatapath({ bpffsRoot: root });
    await dp.init();
    const state = new PolicyCompiler().compile(snapshot(ifPod)).state;
    expect(state.policy.map((e) => [e.direction, e.peer, e.port])).toEqual([
      ['egress', IDENTITY_CLUSTER_POD, 80], ['ingress', IDENTITY_CLUSTER_POD, 80],
    ]);
    const change = diffState(state, emptyState());
    await dp.apply(change);
    await model.apply(change);
  });

  afterAll(async () => {
    await dp?.close();
    shQuiet('ip', ['link', 'del', vethA]);
    if (root) dropBpffs(root);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
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
