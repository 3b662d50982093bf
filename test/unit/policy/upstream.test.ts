/**
 * A handful of representative cases of the upstream e2e suite (test/e2e/network/netpol),
 * on its model (namespaces x, y, z; pods a, b, c; two nodes), asserted as full truth
 * tables over every ordered pod pair in the upstream style.
 */
import { describe, expect, test } from 'vitest';
import { allExcept, type TestCluster, upstreamModel } from './cluster.ts';

const pod = (name: string) => ({ matchLabels: { pod: name } });
const ns = (name: string) => ({ matchLabels: { 'kubernetes.io/metadata.name': name } });
const nsOf = (k: string) => k.split('/')[0];

interface Case {
  name: string;
  setup: (c: TestCluster) => void;
  /** Expected tables per "port/proto": a predicate saying which (from, to) are blocked. */
  blocked: Record<string, (from: string, to: string, c: TestCluster) => boolean>;
}

const cases: Case[] = [
  {
    name: "should support a 'default-deny-ingress' policy",
    setup: (c) => c.policy('x', 'deny-ingress', { podSelector: {}, ingress: [] }),
    blocked: { '80/TCP': (_f, t) => nsOf(t) === 'x', '81/UDP': (_f, t) => nsOf(t) === 'x' },
  },
  {
    name: "should support a 'default-deny-all' policy",
    setup: (c) => c.policy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    blocked: { '80/TCP': (f, t) => nsOf(f) === 'x' || nsOf(t) === 'x', '80/SCTP': (f, t) => nsOf(f) === 'x' || nsOf(t) === 'x' },
  },
  {
    name: 'should enforce policy to allow traffic from pods within server namespace based on PodSelector',
    setup: (c) => c.policy('x', 'allow-b', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] }),
    blocked: { '80/TCP': (f, t) => t === 'x/a' && f !== 'x/b' },
  },
  {
    name: 'should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector',
    setup: (c) => c.policy('x', 'allow-other-ns', {
      podSelector: pod('a'),
      ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['x'] }] } }] }],
    }),
    blocked: { '80/TCP': (f, t) => t === 'x/a' && nsOf(f) === 'x' },
  },
  {
    name: 'should enforce policy based on PodSelector and NamespaceSelector in one peer',
    setup: (c) => c.policy('x', 'allow-ns-y-pod-b', {
      podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y'), podSelector: pod('b') }] }],
    }),
    blocked: { '80/TCP': (f, t) => t === 'x/a' && f !== 'y/b' },
  },
  {
    name: 'should allow ingress access from namespace on one named port',
    setup: (c) => c.policy('x', 'allow-80-from-y', {
      podSelector: {}, ingress: [{ from: [{ namespaceSelector: ns('y') }], ports: [{ port: 'serve-80-tcp', protocol: 'TCP' }] }],
    }),
    blocked: {
      '80/TCP': (f, t) => nsOf(t) === 'x' && nsOf(f) !== 'y',
      '81/TCP': (_f, t) => nsOf(t) === 'x',
    },
  },
  {
    name: 'should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector',
    setup: (c) => c.policy('x', 'egress-to-y-b', {
      podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: ns('y'), podSelector: pod('b') }] }],
    }),
    blocked: { '80/TCP': (f, t) => f === 'x/a' && t !== 'y/b' },
  },
  {
    name: 'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)',
    setup: (c) => {
      c.policy('x', 'egress-to-y', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: ns('y') }] }] });
      c.policy('z', 'allow-from-x-a', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: ns('x'), podSelector: pod('a') }] }] });
    },
    blocked: { '80/TCP': (f, t) => (f === 'x/a' && nsOf(t) !== 'y') || (nsOf(t) === 'z' && f !== 'x/a') },
  },
  {
    name: 'should enforce multiple egress policies with egress allow-all policy taking precedence',
    setup: (c) => {
      c.policy('x', 'egress-80', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ ports: [{ port: 80 }] }] });
      c.policy('x', 'egress-all', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{}] });
    },
    blocked: { '80/TCP': () => false, '81/TCP': () => false },
  },
  {
    name: 'should allow egress access to server in CIDR block (34)',
    setup: (c) => c.policy('x', 'egress-cidr', {
      podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${c.ipOf('y/b')}/32` } }] }],
    }),
    blocked: { '80/TCP': (f, t) => f === 'x/a' && t !== 'y/b' },
  },
  {
    name: 'should enforce except clause while egress access to server in CIDR block (35)',
    setup: (c) => c.policy('x', 'egress-except', {
      podSelector: pod('a'), policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: `${c.ipOf('y/b')}/24`, except: [`${c.ipOf('y/b')}/32`] } }] }],
    }),
    // y/b is on node-0, whose pods are in 10.244.0.0/24: those stay reachable, the rest not.
    blocked: { '80/TCP': (f, t, c) => f === 'x/a' && (t === 'y/b' || c.nodeOf(t) !== 'node-0') },
  },
  {
    name: 'should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed (36)',
    setup: (c) => {
      c.policy('x', 'egress-except', {
        podSelector: pod('a'), policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: `${c.ipOf('y/b')}/24`, except: [`${c.ipOf('y/b')}/32`] } }] }],
      });
      c.policy('x', 'egress-pod', {
        podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${c.ipOf('y/b')}/32` } }] }],
      });
    },
    blocked: { '80/TCP': (f, t, c) => f === 'x/a' && c.nodeOf(t) !== 'node-0' },
  },
  {
    name: 'should work with Ingress, Egress specified together',
    setup: (c) => c.policy('x', 'both', {
      podSelector: pod('a'), policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ podSelector: pod('b') }] }],
      egress: [{ to: [{ namespaceSelector: ns('y') }], ports: [{ port: 80 }] }],
    }),
    blocked: {
      '80/TCP': (f, t) => (t === 'x/a' && f !== 'x/b') || (f === 'x/a' && nsOf(t) !== 'y'),
      '81/TCP': (f, t) => (t === 'x/a' && f !== 'x/b') || f === 'x/a',
    },
  },
  {
    name: 'should enforce policy based on Ports (multiple ports, one protocol each)',
    setup: (c) => c.policy('x', 'ports', {
      podSelector: pod('a'), ingress: [{ ports: [{ port: 81, protocol: 'TCP' }, { port: 80, protocol: 'UDP' }] }],
    }),
    blocked: {
      '80/TCP': (_f, t) => t === 'x/a',
      '81/TCP': () => false,
      '80/UDP': () => false,
      '81/UDP': (_f, t) => t === 'x/a',
    },
  },
  {
    name: "should support a 'default-deny-egress' policy",
    setup: (c) => c.policy('x', 'deny-egress', { podSelector: {}, policyTypes: ['Egress'] }),
    blocked: { '80/TCP': (f) => nsOf(f) === 'x', '81/UDP': (f) => nsOf(f) === 'x' },
  },
  {
    name: 'should enforce policy to allow traffic based on NamespaceSelector with MatchExpressions',
    setup: (c) => {
      c.relabelNs('y', { ns: 'y' });
      c.policy('x', 'allow-ns-y', {
        podSelector: pod('a'),
        ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'In', values: ['y'] }] } }] }],
      });
    },
    blocked: { '80/TCP': (f, t) => t === 'x/a' && nsOf(f) !== 'y' },
  },
  {
    name: 'should enforce policy based on any PodSelectors (two peers)',
    setup: (c) => c.policy('x', 'allow-b-c', {
      podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }, { podSelector: pod('c') }] }],
    }),
    blocked: { '80/TCP': (f, t) => t === 'x/a' && f !== 'x/b' && f !== 'x/c' },
  },
  {
    name: 'should allow egress access on one named port',
    setup: (c) => c.policy('x', 'allow-egress-81', {
      podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-81-udp', protocol: 'UDP' }] }],
    }),
    blocked: {
      '81/UDP': () => false,
      '80/UDP': (f) => nsOf(f) === 'x',
      '81/TCP': (f) => nsOf(f) === 'x',
    },
  },
  {
    name: 'should enforce ingress policy allowing any port traffic to a server on a specific protocol',
    setup: (c) => c.policy('x', 'allow-udp', { podSelector: pod('a'), ingress: [{ ports: [{ protocol: 'UDP' }] }] }),
    blocked: { '80/TCP': (_f, t) => t === 'x/a', '80/UDP': () => false, '81/UDP': () => false, '80/SCTP': (_f, t) => t === 'x/a' },
  },
  {
    name: 'should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector',
    setup: (c) => {
      c.policy('x', 'allow-all-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] });
      c.policy('x', 'deny-egress-a', { podSelector: pod('a'), policyTypes: ['Egress'] });
    },
    blocked: { '80/TCP': () => false },
  },
  {
    name: 'should support allow-all policy',
    setup: (c) => c.policy('x', 'allow-all', { podSelector: {}, ingress: [{}] }),
    blocked: { '80/TCP': () => false, '81/UDP': () => false },
  },
  {
    name: 'should enforce updated policy: ingress from a pod with a given label after the pod is relabelled',
    setup: (c) => {
      c.policy('x', 'allow-pod-new', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: 'new' } } }] }] });
      c.relabel('z/b', { pod: 'new' });
    },
    blocked: { '80/TCP': (f, t) => t === 'x/a' && f !== 'z/b' },
  },
];

describe('upstream e2e model', () => {
  test.each(cases)('$name', ({ setup, blocked }) => {
    const c = upstreamModel();
    setup(c);
    for (const [pp, pred] of Object.entries(blocked)) {
      const [port, proto] = pp.split('/') as [string, string];
      const want = allExcept(c.podKeys(), (f, t) => pred(f, t, c));
      expect(c.matrix(Number(port), proto), `truth table ${pp}`).toBe(want);
    }
    expect(c.problems()).toEqual([]);
  });

  test('should stop enforcing policies after they are deleted, and enforce updated policy', () => {
    const c = upstreamModel();
    c.policy('x', 'p', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: ns('y') }] }] });
    expect(c.matrix(80)).toBe(allExcept(c.podKeys(), (f, t) => nsOf(t) === 'x' && nsOf(f) !== 'y'));
    c.policy('x', 'p', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: ns('z') }] }] });
    expect(c.matrix(80)).toBe(allExcept(c.podKeys(), (f, t) => nsOf(t) === 'x' && nsOf(f) !== 'z'));
    c.deletePolicy('x', 'p');
    expect(c.matrix(80)).toBe(allExcept(c.podKeys(), () => false));
  });
});
