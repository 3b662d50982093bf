/**
 * NetworkPolicy semantics, one case per rule of shared/NETPOL.md, on the upstream model
 * (namespaces x, y, z; pods a, b, c labelled pod=<name>; ports 80/81 TCP, UDP, SCTP named
 * serve-<port>-<proto>; two nodes: node-0 192.168.0.10, node-1 192.168.0.11).
 * Connectivity is judged from the user's side: source egress AND destination ingress,
 * each compiled on the pod's own node.
 */
import { describe, expect, test } from 'vitest';
import { TestCluster, upstreamModel, upstreamPorts } from './cluster.ts';
import { expectProbes } from './probe.ts';

interface Case {
  name: string;
  setup: (c: TestCluster) => void;
  probes: string[];
}

const ns = (name: string) => ({ matchLabels: { 'kubernetes.io/metadata.name': name } });
const pod = (name: string) => ({ matchLabels: { pod: name } });
const NODE0 = '192.168.0.10';
const NODE1 = '192.168.0.11';

const cases: Case[] = [
  // 1. isolation
  {
    name: 'rule 1: no policy allows everything',
    setup: () => {},
    probes: ['x/a > y/b 80/TCP .', 'x/a > y/b 81/UDP .', 'x/a > 8.8.8.8 443/TCP .', '8.8.8.8 > x/a 80/TCP .', 'x/a > y/b ICMP .'],
  },
  {
    name: 'rule 1: a policy isolates only the pods of its own namespace',
    setup: (c) => c.policy('y', 'deny', { podSelector: {} }),
    probes: ['x/b > x/a 80/TCP .', 'y/a > x/a 80/TCP .', 'x/a > y/a 80/TCP X'],
  },
  {
    name: 'rule 1: an ingress-only policy does not isolate egress',
    setup: (c) => c.policy('x', 'deny', { podSelector: pod('a'), policyTypes: ['Ingress'] }),
    probes: ['x/a > y/b 80/TCP .', 'x/a > 8.8.8.8 80/TCP .', 'x/b > x/a 80/TCP X', 'x/b > x/c 80/TCP .'],
  },
  // 2. podSelector {}
  {
    name: 'rule 2: podSelector {} selects every pod of the namespace',
    setup: (c) => c.policy('x', 'deny', { podSelector: {} }),
    probes: ['x/b > x/a 80/TCP X', 'x/a > x/c 80/TCP X', 'y/a > x/b 80/TCP X', 'x/a > y/a 80/TCP .', 'y/a > y/b 80/TCP .'],
  },
  // 3. policyTypes defaulting
  {
    name: 'rule 3: egress: [] without policyTypes does not isolate egress',
    setup: (c) => c.policy('x', 'p', { podSelector: {}, egress: [] }),
    probes: ['x/a > y/a 80/TCP .', 'x/a > 8.8.8.8 80/TCP .', 'y/a > x/a 80/TCP X'],
  },
  {
    name: 'rule 3: egress rules without policyTypes isolate egress too',
    setup: (c) => c.policy('x', 'p', { podSelector: {}, egress: [{ to: [{ podSelector: pod('b') }] }] }),
    probes: ['x/a > x/b 80/TCP X' /* x/b ingress isolated */, 'x/a > y/a 80/TCP X', 'x/a > 8.8.8.8 80/TCP X', 'y/a > x/a 80/TCP X'],
  },
  {
    name: 'rule 3: an egress-only policy lists Egress and leaves ingress open',
    setup: (c) => c.policy('x', 'p', { podSelector: {}, policyTypes: ['Egress'] }),
    probes: ['x/a > y/a 80/TCP X', 'x/a > x/b 80/TCP X', 'y/a > x/a 80/TCP .', '8.8.8.8 > x/a 80/TCP .'],
  },
  {
    name: 'rule 3: rules of a direction not in policyTypes are ignored',
    setup: (c) => c.policy('x', 'p', {
      podSelector: {}, policyTypes: ['Ingress'],
      ingress: [{}], egress: [{ to: [{ podSelector: pod('b') }] }],
    }),
    probes: ['x/a > y/a 80/TCP .', 'x/a > 8.8.8.8 80/TCP .'],
  },
  {
    name: 'rule 3: policyTypes [] is defaulted like an absent one',
    setup: (c) => c.policy('x', 'p', { podSelector: {}, policyTypes: [], egress: [] }),
    probes: ['x/a > y/a 80/TCP .', 'y/a > x/a 80/TCP X'],
  },
  // 4. no rules vs [{}]
  {
    name: 'rule 4: a listed direction with no rules denies all',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] }),
    probes: ['x/b > x/a 80/TCP X', 'x/a > x/b 80/TCP X', '8.8.8.8 > x/a 80/TCP X', 'x/a > 8.8.8.8 80/TCP X', 'x/b > x/c 80/TCP .'],
  },
  {
    name: 'rule 4: [{}] allows all, from anywhere, every protocol',
    setup: (c) => c.policy('x', 'p', { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [{}], egress: [{}] }),
    probes: ['y/a > x/a 80/TCP .', '8.8.8.8 > x/a 9999/UDP .', 'x/a > 8.8.8.8 443/TCP .', 'x/a > y/b ICMP .', 'x/a > y/b 80/SCTP .'],
  },
  // 5. union
  {
    name: 'rule 5: allows are a union over the policies selecting the pod',
    setup: (c) => {
      c.policy('x', 'from-b', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] });
      c.policy('x', 'from-y', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y') }] }] });
      c.policy('x', 'deny', { podSelector: {} });
    },
    probes: ['x/b > x/a 80/TCP .', 'y/c > x/a 80/TCP .', 'x/c > x/a 80/TCP X', 'z/a > x/a 80/TCP X', 'x/a > x/b 80/TCP X'],
  },
  {
    name: 'rule 5: allows are a union over the rules of one policy',
    setup: (c) => c.policy('x', 'p', {
      podSelector: pod('a'),
      ingress: [{ from: [{ podSelector: pod('b') }], ports: [{ port: 80 }] }, { from: [{ podSelector: pod('c') }], ports: [{ port: 81 }] }],
    }),
    probes: ['x/b > x/a 80/TCP .', 'x/b > x/a 81/TCP X', 'x/c > x/a 81/TCP .', 'x/c > x/a 80/TCP X'],
  },
  // 6. both sides
  {
    name: 'rule 6: a connection needs the source egress allow AND the destination ingress allow',
    setup: (c) => {
      c.policy('x', 'egress-to-y', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: ns('y') }] }] });
      c.policy('y', 'deny-b', { podSelector: pod('b') });
    },
    probes: ['x/a > y/a 80/TCP .', 'x/a > y/b 80/TCP X', 'x/a > z/a 80/TCP X', 'x/b > y/b 80/TCP X', 'x/b > z/a 80/TCP .'],
  },
  // 7. peers absent / OR
  {
    name: 'rule 7: from absent means any peer: pods, nodes and outside',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ ports: [{ port: 80 }] }] }),
    probes: ['y/b > x/a 80/TCP .', `${NODE1} > x/a 80/TCP .`, '8.8.8.8 > x/a 80/TCP .', '8.8.8.8 > x/a 81/TCP X'],
  },
  {
    name: 'rule 7: from: [] is the same as from absent',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [], ports: [{ port: 80 }] }] }),
    probes: ['y/b > x/a 80/TCP .', '8.8.8.8 > x/a 80/TCP .', 'y/b > x/a 81/TCP X'],
  },
  {
    name: 'rule 7: peers of a rule are OR-ed',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }, { podSelector: pod('c') }] }] }),
    probes: ['x/b > x/a 80/TCP .', 'x/c > x/a 80/TCP .', 'y/b > x/a 80/TCP X', '8.8.8.8 > x/a 80/TCP X'],
  },
  // 8. podSelector alone
  {
    name: "rule 8: podSelector alone selects pods of the policy's own namespace only",
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] }),
    probes: ['x/b > x/a 80/TCP .', 'y/b > x/a 80/TCP X', 'z/b > x/a 80/TCP X'],
  },
  // 9. namespaceSelector alone
  {
    name: 'rule 9: namespaceSelector alone selects every pod of matching namespaces',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y') }] }] }),
    probes: ['y/a > x/a 80/TCP .', 'y/b > x/a 80/TCP .', 'y/c > x/a 80/TCP .', 'x/b > x/a 80/TCP X', 'z/a > x/a 80/TCP X'],
  },
  {
    name: 'rule 9: namespaceSelector {} selects all pods of the cluster, not nodes nor outside',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: {} }] }] }),
    probes: ['x/b > x/a 80/TCP .', 'z/c > x/a 81/UDP .', `${NODE1} > x/a 80/TCP X`, '8.8.8.8 > x/a 80/TCP X'],
  },
  // 10. AND vs OR
  {
    name: 'rule 10: namespaceSelector AND podSelector in one peer',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y'), podSelector: pod('b') }] }] }),
    probes: ['y/b > x/a 80/TCP .', 'y/a > x/a 80/TCP X', 'x/b > x/a 80/TCP X', 'z/b > x/a 80/TCP X'],
  },
  {
    name: 'rule 10: namespaceSelector and podSelector in separate peers are OR-ed',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y') }, { podSelector: pod('b') }] }] }),
    probes: ['y/a > x/a 80/TCP .', 'y/b > x/a 80/TCP .', 'x/b > x/a 80/TCP .', 'x/c > x/a 80/TCP X', 'z/b > x/a 80/TCP X'],
  },
  // 11. ipBlock
  {
    name: 'rule 11: ipBlock allows outside addresses in the block',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '8.8.8.0/24' } }] }] }),
    probes: ['x/a > 8.8.8.8 53/UDP .', 'x/a > 8.8.9.9 53/UDP X', 'x/a > y/a 80/TCP X'],
  },
  {
    name: 'rule 11: ipBlock matches a pod IP (upstream: egress to <podIP>/32)',
    setup: (c) => c.policy('x', 'p', {
      podSelector: pod('a'), policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: `${c.ipOf('y/b')}/32` } }] }],
    }),
    probes: ['x/a > y/b 80/TCP .', 'x/a > y/b 81/UDP .', 'x/a > y/a 80/TCP X', 'x/a > x/b 80/TCP X'],
  },
  {
    name: "rule 11: ipBlock on one pod's IP does not allow other pods sharing its labels",
    setup: (c) => {
      c.pod('y', 'b2', { labels: { pod: 'b' }, ports: upstreamPorts(), node: 1 });
      c.pod('y', 'b3', { labels: { pod: 'b' }, ports: upstreamPorts(), node: 0 });
      c.policy('x', 'p', {
        podSelector: pod('a'), policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: `${c.ipOf('y/b')}/32` } }] }],
      });
      c.policy('y', 'q', { podSelector: pod('b'), ingress: [{ from: [{ ipBlock: { cidr: `${c.ipOf('x/a')}/32` } }] }] });
    },
    probes: ['x/a > y/b 80/TCP .', 'x/a > y/b2 80/TCP X', 'x/a > y/b3 80/TCP X', 'x/c > y/b 80/TCP X', 'x/a > y/b3 80/TCP X'],
  },
  {
    name: 'rule 11: except removes a pod from the block (upstream: wide block, pod /32 in except)',
    setup: (c) => c.policy('x', 'p', {
      podSelector: pod('a'), policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: [`${c.ipOf('y/b')}/32`] } }] }],
    }),
    probes: ['x/a > y/b 80/TCP X', 'x/a > y/a 80/TCP .', 'x/a > z/c 80/TCP .', 'x/a > 8.8.8.8 80/TCP X'],
  },
  {
    name: 'rule 11: an except applies to its own peer only: another peer still allows it',
    setup: (c) => c.policy('x', 'p', {
      podSelector: pod('a'), policyTypes: ['Egress'],
      egress: [
        { to: [{ ipBlock: { cidr: '10.0.0.0/8', except: [`${c.ipOf('y/b')}/32`] } }, { namespaceSelector: ns('y'), podSelector: pod('b') }], ports: [{ port: 80 }] },
      ],
    }),
    probes: ['x/a > y/b 80/TCP .', 'x/a > y/b 81/TCP X', 'x/a > y/a 80/TCP .'],
  },
  {
    name: 'rule 11: an except applies to its own policy only: another policy still allows it',
    setup: (c) => {
      c.policy('x', 'p', {
        podSelector: pod('a'), policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: [`${c.ipOf('y/b')}/32`] } }] }],
      });
      c.policy('x', 'q', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${c.ipOf('y/b')}/30` } }], ports: [{ port: 81 }] }] });
    },
    probes: ['x/a > y/b 80/TCP X', 'x/a > y/b 81/TCP .', 'x/a > y/a 80/TCP .'],
  },
  {
    name: 'rule 11: ipBlock ingress from a pod IP',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ ipBlock: { cidr: `${c.ipOf('z/c')}/32` } }] }] }),
    probes: ['z/c > x/a 80/TCP .', 'z/b > x/a 80/TCP X', 'x/b > x/a 80/TCP X'],
  },
  // 12. metadata.name label
  {
    name: 'rule 12: kubernetes.io/metadata.name selects a namespace even if the object lacks the label',
    setup: (c) => {
      c.namespaces.set('y', { metadata: { name: 'y' } });
      c.changed();
      c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y') }] }] });
    },
    probes: ['y/a > x/a 80/TCP .', 'z/a > x/a 80/TCP X'],
  },
  // 13. selectors
  {
    name: 'rule 13: matchExpressions In',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'zz'] }] } }] }] }),
    probes: ['x/b > x/a 80/TCP .', 'x/c > x/a 80/TCP X'],
  },
  {
    name: 'rule 13: matchExpressions NotIn matches pods lacking the key',
    setup: (c) => {
      c.pod('x', 'nolabel', { labels: {}, ports: upstreamPorts() });
      c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'NotIn', values: ['b'] }] } }] }] });
    },
    probes: ['x/b > x/a 80/TCP X', 'x/c > x/a 80/TCP .', 'x/nolabel > x/a 80/TCP .'],
  },
  {
    name: 'rule 13: matchExpressions Exists and DoesNotExist',
    setup: (c) => {
      c.pod('x', 'nolabel', { labels: {}, ports: upstreamPorts() });
      c.pod('x', 'tagged', { labels: { tier: 'web' }, ports: upstreamPorts() });
      c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'tier', operator: 'Exists' }] } }] }] });
      c.policy('x', 'q', { podSelector: pod('b'), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'DoesNotExist' }] } }] }] });
    },
    probes: ['x/tagged > x/a 80/TCP .', 'x/c > x/a 80/TCP X', 'x/nolabel > x/b 80/TCP .', 'x/tagged > x/b 80/TCP .', 'x/c > x/b 80/TCP X'],
  },
  {
    name: 'rule 13: matchLabels AND matchExpressions',
    setup: (c) => {
      c.pod('x', 'b-web', { labels: { pod: 'b', tier: 'web' }, ports: upstreamPorts() });
      c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }] } }] }] });
    },
    probes: ['x/b-web > x/a 80/TCP .', 'x/b > x/a 80/TCP X'],
  },
  {
    name: 'rule 13: namespaceSelector with matchExpressions on namespace labels',
    setup: (c) => {
      c.relabelNs('y', { team: 'blue' });
      c.relabelNs('z', { team: 'red' });
      c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['red'] }] } }] }] });
    },
    probes: ['y/a > x/a 80/TCP .', 'x/b > x/a 80/TCP .', 'z/a > x/a 80/TCP X'],
  },
  // 15. ports
  {
    name: 'rule 15: ports absent means all ports and all protocols',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] }),
    probes: ['x/b > x/a 80/TCP .', 'x/b > x/a 81/UDP .', 'x/b > x/a 80/SCTP .', 'x/b > x/a ICMP .'],
  },
  {
    name: 'rule 15: a port entry {} means every TCP port',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ ports: [{}] }] }),
    probes: ['x/b > x/a 80/TCP .', 'x/b > x/a 81/TCP .', 'x/b > x/a 80/UDP X', 'x/b > x/a 80/SCTP X', 'x/b > x/a ICMP X'],
  },
  {
    name: 'rule 15: a protocol without port means every port of that protocol',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ ports: [{ protocol: 'UDP' }] }] }),
    probes: ['x/b > x/a 80/UDP .', 'x/b > x/a 81/UDP .', 'x/b > x/a 80/TCP X'],
  },
  {
    name: 'rule 15: protocol defaults to TCP for a numeric port',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ ports: [{ port: 80 }] }] }),
    probes: ['x/b > x/a 80/TCP .', 'x/b > x/a 80/UDP X', 'x/b > x/a 81/TCP X'],
  },
  // 16. numeric ports are the pod's
  {
    name: "rule 16: a numeric port is the pod's port",
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ ports: [{ port: 81, protocol: 'UDP' }] }] }),
    probes: ['y/a > x/a 81/UDP .', 'y/a > x/a 80/UDP X'],
  },
  // 17. named ports
  {
    name: 'rule 17: ingress named port resolves against the selected pod',
    setup: (c) => c.policy('x', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 'serve-81-udp', protocol: 'UDP' }] }] }),
    probes: ['y/a > x/a 81/UDP .', 'y/a > x/a 80/UDP X', 'y/a > x/a 81/TCP X'],
  },
  {
    name: 'rule 17: named port name and protocol must both match',
    setup: (c) => c.policy('x', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 'serve-80-tcp', protocol: 'UDP' }] }] }),
    probes: ['y/a > x/a 80/UDP X', 'y/a > x/a 80/TCP X'],
  },
  {
    name: 'rule 17: the same name may be a different number on different pods (ingress)',
    setup: (c) => {
      c.pod('x', 'web1', { labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 8080 }] });
      c.pod('x', 'web2', { labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 9090 }] });
      c.policy('x', 'p', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 'http' }] }] });
    },
    probes: ['y/a > x/web1 8080/TCP .', 'y/a > x/web1 9090/TCP X', 'y/a > x/web2 9090/TCP .', 'y/a > x/web2 8080/TCP X'],
  },
  {
    name: 'rule 17: egress named port resolves per peer pod, even within one identity',
    setup: (c) => {
      c.pod('y', 'web1', { labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 8080 }] });
      c.pod('y', 'web2', { labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 9090 }] });
      c.pod('y', 'web3', { labels: { app: 'web' }, ports: [{ name: 'other', containerPort: 8080 }] });
      c.policy('x', 'p', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'http' }] }] });
    },
    probes: ['x/a > y/web1 8080/TCP .', 'x/a > y/web1 9090/TCP X', 'x/a > y/web2 9090/TCP .', 'x/a > y/web2 8080/TCP X',
      'x/a > y/web3 8080/TCP X', 'x/a > y/b 80/TCP X'],
  },
  {
    name: 'rule 17: egress named port with uniform resolution across an identity',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: ns('y') }], ports: [{ port: 'serve-80-udp', protocol: 'UDP' }] }] }),
    probes: ['x/a > y/b 80/UDP .', 'x/a > y/c 80/UDP .', 'x/a > y/b 81/UDP X', 'x/a > z/b 80/UDP X'],
  },
  {
    name: 'rule 17: a name the destination lacks matches nothing',
    setup: (c) => c.policy('x', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 'metrics' }] }] }),
    probes: ['y/a > x/a 80/TCP X', 'y/a > x/a 9090/TCP X'],
  },
  {
    name: 'rule 17: egress named port to any peer matches pods only',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-81-tcp' }] }] }),
    probes: ['x/a > y/b 81/TCP .', 'x/a > x/b 81/TCP .', 'x/a > y/b 80/TCP X', 'x/a > 8.8.8.8 81/TCP X'],
  },
  {
    name: 'rule 17: egress named port with an ipBlock peer matches the pods inside the block only',
    setup: (c) => c.policy('x', 'p', {
      podSelector: pod('a'), policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '10.244.1.0/24', except: [`${c.ipOf('y/a')}/32`] } }], ports: [{ port: 'serve-80-tcp' }] }],
    }),
    // x/b, y/a, y/c, z/b are on node-1 (10.244.1.0/24); y/a is excepted.
    probes: ['x/a > x/b 80/TCP .', 'x/a > y/c 80/TCP .', 'x/a > y/a 80/TCP X', 'x/a > y/b 80/TCP X', 'x/a > 10.244.1.250 80/TCP X', 'x/a > x/b 81/TCP X'],
  },
  // 18. endPort
  {
    name: 'rule 18: endPort makes an inclusive range',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ ports: [{ port: 80, endPort: 81 }] }] }),
    probes: ['y/a > x/a 79/TCP X', 'y/a > x/a 80/TCP .', 'y/a > x/a 81/TCP .', 'y/a > x/a 82/TCP X', 'y/a > x/a 80/UDP X'],
  },
  // 19. SCTP
  {
    name: 'rule 19: an SCTP-only policy never opens TCP or UDP and still isolates',
    setup: (c) => c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ ports: [{ port: 80, protocol: 'SCTP' }] }] }),
    probes: ['y/a > x/a 80/SCTP .', 'y/a > x/a 81/SCTP X', 'y/a > x/a 80/TCP X', 'y/a > x/a 80/UDP X'],
  },
  // 20. ICMP
  {
    name: 'rule 20: ICMP is dropped by an isolated pod unless a rule without ports allows the peer',
    setup: (c) => {
      c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ ports: [{ port: 80 }, { protocol: 'UDP' }] }] });
      c.policy('x', 'q', { podSelector: pod('b'), ingress: [{ from: [{ namespaceSelector: ns('y') }] }] });
    },
    probes: ['y/a > x/a ICMP X', 'y/a > x/b ICMP .', 'z/a > x/b ICMP X'],
  },
  // 22. node
  {
    name: "rule 22: the pod's own node reaches it under default deny; other nodes do not",
    setup: (c) => c.policy('x', 'p', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    probes: [`${NODE0} > x/a 80/TCP .`, `${NODE1} > x/b 80/TCP .`, `${NODE1} > x/a 80/TCP X`, `${NODE0} > x/b 80/TCP X`],
  },
  // 23. hostNetwork
  {
    name: 'rule 23: hostNetwork pods are not peers: selecting them allows nothing',
    setup: (c) => {
      c.pod('x', 'h', { labels: { pod: 'h' }, hostNetwork: true, node: 1 });
      c.policy('x', 'p', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('h') }] }] });
    },
    probes: [`${NODE1} > x/a 80/TCP X`, 'x/b > x/a 80/TCP X'],
  },
];

describe('NetworkPolicy semantics (shared/NETPOL.md)', () => {
  test.each(cases)('$name', ({ setup, probes }) => {
    const c = upstreamModel();
    setup(c);
    expectProbes(c, probes);
    expect(c.problems()).toEqual([]);
  });
});

describe('rule 14: relabelling applies at once, in both roles', () => {
  test('relabelling a pod changes what selects it as a subject', () => {
    const c = upstreamModel();
    c.policy('x', 'deny-a', { podSelector: pod('a') });
    expectProbes(c, ['x/b > x/a 80/TCP X', 'x/b > x/c 80/TCP .']);
    c.relabel('x/a', { pod: 'z' });
    c.relabel('x/c', { pod: 'a' });
    expectProbes(c, ['x/b > x/a 80/TCP .', 'x/b > x/c 80/TCP X']);
  });

  test('relabelling a pod changes what it is allowed to reach as a peer', () => {
    const c = upstreamModel();
    c.policy('x', 'from-b', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] });
    expectProbes(c, ['x/b > x/a 80/TCP .', 'x/c > x/a 80/TCP X']);
    c.relabel('x/c', { pod: 'b' });
    c.relabel('x/b', { pod: 'q' });
    expectProbes(c, ['x/b > x/a 80/TCP X', 'x/c > x/a 80/TCP .']);
  });

  test('relabelling a namespace changes namespaceSelector matches', () => {
    const c = upstreamModel();
    c.policy('x', 'from-team', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] });
    expectProbes(c, ['y/a > x/a 80/TCP X']);
    c.relabelNs('y', { team: 'blue' });
    expectProbes(c, ['y/a > x/a 80/TCP .', 'z/a > x/a 80/TCP X']);
  });

  test('relabelling a namespace changes where an egress namespaceSelector lets pods go', () => {
    const c = upstreamModel();
    c.policy('y', 'egress', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { open: 'yes' } } }] }] });
    expectProbes(c, ['y/a > x/a 80/TCP X']);
    c.relabelNs('x', { open: 'yes' });
    expectProbes(c, ['y/a > x/a 80/TCP .', 'y/a > z/a 80/TCP X']);
  });
});

describe('policy deletion and update', () => {
  test('deleting a policy stops enforcing it', () => {
    const c = upstreamModel();
    c.policy('x', 'deny', { podSelector: {} });
    expectProbes(c, ['y/a > x/a 80/TCP X']);
    c.deletePolicy('x', 'deny');
    expectProbes(c, ['y/a > x/a 80/TCP .']);
  });
});
