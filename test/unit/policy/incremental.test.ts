/**
 * Property test of the incremental compiler: one PolicyCompiler fed a random sequence of
 * changes (pods added, removed, relabelled, moved, terminated; namespaces relabelled;
 * policies added, changed, deleted; local endpoints registered and removed; nodes) must
 * return after every change exactly what a fresh compiler returns for the same snapshot
 * and the same identity allocator state. Seeded, so a failure names a reproducible case.
 */
import { describe, expect, test } from 'vitest';
import {
  CidrIdentityAllocator, LabelIdentityAllocator,
} from '../../../pkg/identity/allocator.ts';
import { PolicyCompiler } from '../../../pkg/policy/compile.ts';
import type {
  ClusterSnapshot, ContainerPort, LabelSelector, LocalEndpoint, Namespace, NetworkPolicy,
  NetworkPolicyPeer, NetworkPolicyPort, Node, Pod,
} from '../../../pkg/policy/snapshot.ts';
import type { CompileResult } from '../../../pkg/policy/types.ts';
import { randomLabels, rng, type Rng as R } from './gen-random.ts';

const NODE = 'node-0';
const NAMESPACES = ['n1', 'n2', 'n3'];
const VALUES = ['a', 'b', 'c'];

function labels(r: R): Record<string, string> {
  return randomLabels(r, [['app', 0.7], ['tier', 0.4]], VALUES);
}

function selector(r: R): LabelSelector {
  if (r.chance(0.2)) return {};
  const s: LabelSelector = {};
  if (r.chance(0.6)) s.matchLabels = { app: r.pick(VALUES) };
  if (r.chance(0.3)) s.matchExpressions = [{ key: 'tier', operator: r.pick(['In', 'NotIn', 'Exists', 'DoesNotExist']), values: [r.pick(VALUES)] }];
  if (s.matchExpressions?.[0] && ['Exists', 'DoesNotExist'].includes(s.matchExpressions[0].operator)) delete s.matchExpressions[0].values;
  return s;
}

function containerPorts(r: R): ContainerPort[] {
  const out: ContainerPort[] = [];
  if (r.chance(0.7)) out.push({ name: 'web', containerPort: r.pick([80, 8080]), protocol: 'TCP' });
  if (r.chance(0.4)) out.push({ name: 'dns', containerPort: 53, protocol: 'UDP' });
  return out;
}

function ports(r: R): NetworkPolicyPort[] | undefined {
  if (r.chance(0.3)) return undefined;
  const out: NetworkPolicyPort[] = [];
  for (let i = 0; i <= r.int(2); i++) {
    const k = r.int(6);
    // k === 5: unsupported (a problem, failing closed).
    if (k === 5) out.push({ protocol: 'ICMP', port: 80 });
    else if (k === 0) out.push({ protocol: r.pick(['TCP', 'UDP', 'SCTP']) });
    else if (k === 1) out.push({ port: r.pick([80, 443]) });
    else if (k === 2) out.push({ port: 8000, endPort: 8100 });
    else if (k === 3) out.push({ port: 'web' });
    else out.push({ protocol: 'UDP', port: r.pick(['dns', 'web']) });
  }
  return out;
}

function peers(r: R): NetworkPolicyPeer[] | undefined {
  if (r.chance(0.15)) return undefined;
  const out: NetworkPolicyPeer[] = [];
  for (let i = 0; i <= r.int(2); i++) {
    const k = r.int(5);
    if (k === 0) out.push({ podSelector: selector(r) });
    else if (k === 1) out.push({ namespaceSelector: r.chance(0.4) ? {} : { matchLabels: { env: r.pick(VALUES) } } });
    else if (k === 2) out.push({ namespaceSelector: { matchLabels: { env: r.pick(VALUES) } }, podSelector: selector(r) });
    else if (k === 3) out.push({ ipBlock: { cidr: r.pick(['10.1.0.0/16', '10.1.0.0/24', '0.0.0.0/0']), ...(r.chance(0.5) && { except: [`10.1.0.${r.int(20)}/32`] }) } });
    else out.push({ ipBlock: { cidr: `10.1.${r.int(2)}.${r.int(20)}/32` } });
  }
  return out;
}

function policy(r: R, ns: string, name: string): NetworkPolicy {
  const types = r.pick([undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']]);
  const spec: NetworkPolicy['spec'] = { podSelector: selector(r) };
  if (types) spec.policyTypes = types;
  if (r.chance(0.8)) spec.ingress = Array.from({ length: r.int(3) }, () => ({ from: peers(r), ports: ports(r) }));
  if (r.chance(0.8)) spec.egress = Array.from({ length: r.int(3) }, () => ({ to: peers(r), ports: ports(r) }));
  return { kind: 'NetworkPolicy', metadata: { name, namespace: ns }, spec };
}

/** A mutable cluster whose snapshots share (and later mutate) their maps, as tests do. */
class World {
  readonly namespaces = new Map<string, Namespace>();
  readonly pods = new Map<string, Pod>();
  readonly nodes = new Map<string, Node>();
  readonly policies = new Map<string, NetworkPolicy>();
  readonly endpoints = new Map<string, LocalEndpoint>();
  revision = 0;
  #ep = 0;

  /** Copies handed out as immutable, reused while their source map is unchanged. */
  readonly #copies = new Map<Map<string, unknown>, { sig: string; copy: Map<string, unknown> }>();

  /**
   * `copy`: immutable maps (`immutableMaps: true`), the same map object again for a kind
   * that did not change, as the store does; otherwise the live maps, mutated later.
   */
  snapshot(copy: boolean): ClusterSnapshot {
    const m = <T>(x: Map<string, T>): Map<string, T> => {
      if (!copy) return x;
      const sig = JSON.stringify([...x]);
      const hit = this.#copies.get(x as Map<string, unknown>);
      if (hit && hit.sig === sig) return hit.copy as Map<string, T>;
      const c = new Map(x);
      this.#copies.set(x as Map<string, unknown>, { sig, copy: c as Map<string, unknown> });
      return c;
    };
    return {
      revision: ++this.revision, nodeName: NODE, namespaces: m(this.namespaces), pods: m(this.pods),
      nodes: m(this.nodes), policies: m(this.policies), endpoints: [...this.endpoints.values()],
      ...(copy && { immutableMaps: true }),
    };
  }

  setNs(name: string, env: string | undefined): void {
    this.namespaces.set(name, { metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...(env && { env }) } } });
  }

  setPod(r: R, key: string): void {
    const [ns, name] = key.split('/') as [string, string];
    const node = r.chance(0.4) ? NODE : `node-${1 + r.int(2)}`;
    const ip = `10.1.${r.int(2)}.${r.int(20)}`;
    const phase = r.chance(0.1) ? r.pick(['Succeeded', 'Pending']) : 'Running';
    const pod: Pod = {
      metadata: { name, namespace: ns, labels: labels(r), ...(r.chance(0.05) && { deletionTimestamp: '2026-01-01T00:00:00Z' }) },
      spec: { nodeName: node, ...(r.chance(0.05) && { hostNetwork: true }), containers: [{ name: 'c', ports: containerPorts(r) }] },
      status: { phase, podIP: ip, podIPs: [{ ip }] },
    };
    this.pods.set(key, pod);
    if (node === NODE && !pod.spec.hostNetwork && phase !== 'Succeeded') {
      const cur = this.endpoints.get(key);
      const id = cur?.endpointId ?? ++this.#ep;
      this.endpoints.set(key, { endpointId: id, ifindex: 100 + id, ifname: `e${id}`, containerId: `c${id}`, podNamespace: ns, podName: name, ipv4: ip });
    } else if (r.chance(0.7)) {
      this.endpoints.delete(key);
    }
  }

  /** One random change. */
  change(r: R): void {
    const k = r.int(12);
    const podKeys = [...this.pods.keys()];
    if (k <= 2 || podKeys.length < 3) {
      this.setPod(r, `${r.pick(NAMESPACES)}/p${r.int(25)}`);
    } else if (k === 3) {
      const key = r.pick(podKeys);
      this.pods.delete(key);
      if (r.chance(0.8)) this.endpoints.delete(key);
    } else if (k === 4) {
      const key = r.pick(podKeys);
      const p = this.pods.get(key)!;
      this.pods.set(key, { ...p, metadata: { ...p.metadata, labels: labels(r) } });
    } else if (k === 5) {
      this.setNs(r.pick(NAMESPACES), r.chance(0.8) ? r.pick(VALUES) : undefined);
    } else if (k <= 8) {
      const ns = r.pick(NAMESPACES);
      const name = `np${r.int(8)}`;
      this.policies.set(`NetworkPolicy:${ns}/${name}`, policy(r, ns, name));
    } else if (k === 9 && this.policies.size) {
      this.policies.delete(r.pick([...this.policies.keys()]));
    } else if (k === 10) {
      // A local endpoint whose Pod object is not known (yet).
      const id = ++this.#ep;
      const name = `ghost${r.int(4)}`;
      const ns = r.pick(NAMESPACES);
      if (!this.pods.has(`${ns}/${name}`)) {
        this.endpoints.set(`${ns}/${name}`, { endpointId: id, ifindex: 100 + id, ifname: `e${id}`, containerId: `c${id}`, podNamespace: ns, podName: name, ipv4: `10.1.0.${100 + r.int(20)}` });
      }
    } else {
      const i = 1 + r.int(2);
      this.nodes.set(`node-${i}`, { metadata: { name: `node-${i}` }, status: { addresses: [{ type: 'InternalIP', address: r.chance(0.2) ? `10.1.0.${r.int(20)}` : `192.168.0.${10 + i}` }] } });
    }
  }
}

/** A fresh compiler starting from the same identity allocator state as `c`. */
function freshLike(c: PolicyCompiler): PolicyCompiler {
  return new PolicyCompiler({
    l7ProxyPort: c.l7ProxyPort, hostAddresses: c.hostAddresses,
    labelIdentities: LabelIdentityAllocator.fromJSON(JSON.parse(JSON.stringify(c.labelIdentities.toJSON()))),
    cidrIdentities: CidrIdentityAllocator.fromJSON(JSON.parse(JSON.stringify(c.cidrIdentities.toJSON()))),
  });
}

/** Everything a compile result says, in a form `toEqual` compares exactly. */
function plainResult(r: CompileResult) {
  return {
    revision: r.revision,
    state: r.state,
    rules: [...r.rules].sort((a, b) => a[0] - b[0]),
    endpoints: [...r.endpoints].sort((a, b) => a[0] - b[0]),
    identities: [...r.identities].sort((a, b) => a[0] - b[0]),
    problems: r.problems,
    l7: r.l7,
  };
}

describe('incremental compile equals a full compile', () => {
  for (let seed = 1; seed <= 40; seed++) {
    test(`random change sequence, seed ${seed}`, () => {
      const r = rng(seed);
      const w = new World();
      for (const ns of NAMESPACES) w.setNs(ns, r.pick(VALUES));
      for (let i = 1; i <= 2; i++) w.nodes.set(`node-${i}`, { metadata: { name: `node-${i}` }, status: { addresses: [{ type: 'InternalIP', address: `192.168.0.${10 + i}` }] } });
      w.nodes.set(NODE, { metadata: { name: NODE }, status: { addresses: [{ type: 'InternalIP', address: '192.168.0.10' }] } });
      const inc = new PolicyCompiler({ l7ProxyPort: seed % 2 ? 15001 : 0, hostAddresses: ['10.1.0.1'] });
      for (let step = 0; step < 60; step++) {
        // Several changes between compiles now and then: a coalesced burst.
        for (let n = r.chance(0.3) ? 1 + r.int(4) : 1; n > 0; n--) w.change(r);
        const snap = w.snapshot(r.chance(0.5));
        const full = freshLike(inc).compile(snap);
        const got = inc.compile(snap);
        expect(plainResult(got), `seed ${seed} step ${step}`).toEqual(plainResult(full));
      }
    });
  }

  test('an unchanged snapshot returns the same arrays (the diff can skip them)', () => {
    const r = rng(7);
    const w = new World();
    for (const ns of NAMESPACES) w.setNs(ns, 'a');
    for (let i = 0; i < 40; i++) w.change(r);
    const c = new PolicyCompiler();
    const a = c.compile(w.snapshot(false));
    const b = c.compile(w.snapshot(false));
    expect(b.state.ipcache).toBe(a.state.ipcache);
    expect(b.state.policy).toBe(a.state.policy);
    expect(b.state.cidrs).toBe(a.state.cidrs);
  });

  test('a pod relabel rewrites only that pod\'s ipcache entry (the others stay the same objects)', () => {
    const w = new World();
    for (const ns of NAMESPACES) w.setNs(ns, 'a');
    for (let i = 0; i < 60; i++) {
      const ns = NAMESPACES[i % 3]!;
      const ip = `10.2.0.${i + 1}`;
      w.pods.set(`${ns}/q${i}`, {
        metadata: { name: `q${i}`, namespace: ns, labels: { app: `a${i % 5}` } },
        spec: { nodeName: 'node-1', containers: [] }, status: { phase: 'Running', podIP: ip },
      });
    }
    const c = new PolicyCompiler();
    const a = c.compile(w.snapshot(false));
    const key = 'n2/q7';
    const p = w.pods.get(key)!;
    w.pods.set(key, { ...p, metadata: { ...p.metadata, labels: { brand: 'new' } } });
    const b = c.compile(w.snapshot(false));
    const ip = `${p.status!.podIP}/32`;
    const changed = b.state.ipcache.filter((e) => !a.state.ipcache.includes(e));
    expect(changed.map((e) => e.cidr)).toEqual([ip]);
    expect(b.state.ipcache).toHaveLength(a.state.ipcache.length);
  });

  test('a policy change leaves the ipcache array untouched and changes only its namespace', () => {
    const w = new World();
    for (const ns of NAMESPACES) w.setNs(ns, 'a');
    const r = rng(11);
    for (let i = 0; i < 60; i++) w.setPod(r, `${NAMESPACES[i % 3]}/p${i}`);
    const c = new PolicyCompiler();
    const a = c.compile(w.snapshot(false));
    w.policies.set('NetworkPolicy:n1/x', { kind: 'NetworkPolicy', metadata: { name: 'x', namespace: 'n1' }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 9999 }] }] } });
    const b = c.compile(w.snapshot(false));
    expect(b.state.ipcache).toBe(a.state.ipcache);
    const n1 = new Set([...w.endpoints.values()].filter((e) => e.podNamespace === 'n1').map((e) => e.endpointId));
    expect(n1.size).toBeGreaterThan(0);
    const added = b.state.policy.filter((e) => !a.state.policy.includes(e));
    expect(added.length).toBeGreaterThan(0);
    expect(added.every((e) => n1.has(e.endpointId))).toBe(true);
  });
});
