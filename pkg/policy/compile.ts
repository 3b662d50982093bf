/**
 * The policy compiler: a cluster snapshot in, the desired datapath state of this node out.
 * Pure: it reads only its argument and its own identity allocators, does no I/O and reads
 * no clock; given the same snapshot and allocator state it returns the same result, with
 * every list sorted by map key.
 *
 * What it produces (docs/datapath.md describes how the datapath uses it; docs/policy.md
 * the choices made here):
 * - endpoints: one entry per local endpoint with its identity and enforcement flags;
 * - ipcache: every pod IP of the cluster -> its label identity; this node's addresses ->
 *   host; other nodes' -> remote-node (a miss is world);
 * - policy: allow entries per (local endpoint, direction, peer identity, protocol, ports);
 * - cidrs: per-endpoint prefixes for ipBlock peers (and for named ports that resolve
 *   differently across the pods of one identity) -> CIDR identities.
 */
import {
  PROTO_ANY, type DatapathState, type Direction, type EndpointEntry,
  type IpcacheEntry, type PolicyEntry,
} from '../datapath/types.ts';
import { entryKey } from '../datapath/diff.ts';
import {
  CidrIdentityAllocator, LabelIdentityAllocator, cidrSetKey, identityLabels, labelSetKey,
} from '../identity/allocator.ts';
import {
  IDENTITY_ANY, IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_WORLD,
} from '../identity/reserved.ts';
import { computeOverlay, type CidrElement } from './cidr-overlay.ts';
import {
  formatIpv4, formatPrefix, parseIpv4, prefixContainsAddr, prefixLast, type Prefix,
} from './ip.ts';
import { parsePolicy, type ParsedPeer, type ParsedPolicy, type ParsedRule } from './parse.ts';
import type { PortSpec } from './ports.ts';
import type { CompiledSelector } from './selector.ts';
import type {
  ClusterSnapshot, HttpRule, LocalEndpoint, Namespace, NetworkPolicy, Pod,
} from './snapshot.ts';
import type {
  CompileResult, EndpointPolicySummary, L7Rules, PolicyProblem, RuleOrigin,
} from './types.ts';

export interface PolicyCompilerOptions {
  /**
   * Port of the transparent L7 proxy that `http` rules redirect to; 0 (default) = no
   * proxy on this node: `http` rules fail closed with a problem.
   */
  l7ProxyPort?: number;
  /** More addresses of this node (e.g. a gateway address on the pod side) -> host. */
  hostAddresses?: readonly string[];
  /** Allocators to continue from (restored with `fromJSON`); fresh ones by default. */
  labelIdentities?: LabelIdentityAllocator;
  cidrIdentities?: CidrIdentityAllocator;
}

const NS_NAME_LABEL = 'kubernetes.io/metadata.name';
const directions: readonly Direction[] = ['ingress', 'egress'];
type Labels = Readonly<Record<string, string>>;

/** Pods sharing one label set: the unit selectors and identities work on. */
interface Group {
  key: string;
  id: number;
  namespace: string;
  podLabels: Labels;
  nsLabels: Labels;
  members: PodInfo[];
  /** Named-port resolutions over the members, by `protocol/name` (per compile). */
  named?: Map<string, { uniform?: number; perPod: [number, number][] }>;
}

interface PodInfo {
  /** `namespace/name`. */
  key: string;
  pod: Pod | undefined;
  /** IPv4 addresses as integers. */
  ips: number[];
  /** `ip/32` of each of `ips`. */
  cidrs: string[];
  group: Group;
  /** Rank when two pods claim one IP: lower wins. */
  rank: number;
}

/** A port spec resolved to numbers, with where it came from. */
interface Allow {
  protocol: number;
  port: number;
  endPort: number;
  ruleId: number;
  http: HttpRule[] | undefined;
}

/** Policy entries under construction, with their L7 rules. */
interface Slot {
  entry: PolicyEntry;
  /** undefined = plain L3/L4 allow (no redirect). */
  http: HttpRule[] | undefined;
  ruleIds: Set<number>;
}

interface PendingOverlay {
  endpointId: number;
  direction: Direction;
  slots: Map<string, Slot>;
  prefixes: { prefix: Prefix; members: string[]; allows: Allow[] }[];
}

/**
 * Compiles snapshots for one node. Keep one instance per agent: its identity allocators
 * keep numbers stable across compiles. Snapshot objects are treated as immutable (as the
 * store hands them out): per-object caches assume a changed object is a new object.
 */
export class PolicyCompiler {
  readonly l7ProxyPort: number;
  readonly hostAddresses: readonly string[];
  readonly labelIdentities: LabelIdentityAllocator;
  readonly cidrIdentities: CidrIdentityAllocator;
  readonly #parsed = new WeakMap<NetworkPolicy, ParsedPolicy>();
  readonly #podFacts = new WeakMap<Pod, PodFacts>();

  constructor(opts: PolicyCompilerOptions = {}) {
    const port = opts.l7ProxyPort ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new Error(`invalid l7ProxyPort ${String(port)}`);
    }
    this.l7ProxyPort = port;
    for (const a of opts.hostAddresses ?? []) {
      if (parseIpv4(a) === undefined) throw new Error(`invalid host address ${JSON.stringify(a)}`);
    }
    this.hostAddresses = [...(opts.hostAddresses ?? [])];
    this.labelIdentities = opts.labelIdentities ?? new LabelIdentityAllocator();
    this.cidrIdentities = opts.cidrIdentities ?? new CidrIdentityAllocator();
  }

  compile(snapshot: ClusterSnapshot): CompileResult {
    return new Compilation(this, snapshot).run();
  }

  /** @internal Parsed form of a policy, cached per object. */
  parsed(key: string, np: NetworkPolicy): ParsedPolicy {
    const hit = this.#parsed.get(np);
    if (hit && hit.key === key) return hit;
    const p = parsePolicy(key, np, { l7: true, l7ProxyPort: this.l7ProxyPort });
    this.#parsed.set(np, p);
    return p;
  }

  /**
   * @internal What a compile needs of a pod that depends only on the Pod object and its
   * Namespace object: cached per object pair, since informers hand out the same objects
   * until they change, and recomputing 10k label-set keys would dominate a recompile.
   */
  podFacts(pod: Pod, namespace: string, ns: Namespace | undefined, nsLabels: Labels): PodFacts {
    const hit = this.#podFacts.get(pod);
    if (hit && hit.ns === ns) return hit;
    const ips = podIpv4s(pod);
    const facts: PodFacts = {
      ns,
      key: labelSetKey(identityLabels(namespace, pod.metadata.labels, nsLabels)),
      ips,
      cidrs: ips.map((ip) => `${formatIpv4(ip)}/32`),
    };
    this.#podFacts.set(pod, facts);
    return facts;
  }
}

interface PodFacts {
  ns: Namespace | undefined;
  /** Label-set key. */
  key: string;
  ips: number[];
  /** `ip/32` of each of `ips`. */
  cidrs: string[];
}

function namespaceOfKey(key: string): string {
  const i = key.indexOf('/');
  return i < 0 ? '' : key.slice(0, i);
}

function podIpv4s(pod: Pod): number[] {
  const out: number[] = [];
  const add = (s: string | undefined) => {
    if (!s) return;
    const n = parseIpv4(s);
    if (n !== undefined && !out.includes(n)) out.push(n);
  };
  for (const p of pod.status?.podIPs ?? []) add(p?.ip);
  add(pod.status?.podIP);
  return out;
}

/** The container port named `name` for `protoName`, if the pod declares it. */
function resolveNamedPort(pod: Pod | undefined, name: string, protoName: string): number | undefined {
  for (const c of pod?.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (p.name === name && (p.protocol ?? 'TCP') === protoName) return p.containerPort;
    }
  }
  return undefined;
}

function compareNum(a: number, b: number): number {
  return a - b;
}

/** One run of the compiler over one snapshot; all per-compile memos live here. */
class Compilation {
  readonly c: PolicyCompiler;
  readonly s: ClusterSnapshot;
  readonly problems: PolicyProblem[] = [];
  readonly nsLabels = new Map<string, Labels>();
  readonly groups = new Map<string, Group>();
  readonly groupsByNs = new Map<string, Group[]>();
  readonly groupsByPodLabel = new Map<string, Group[]>();
  /** Every group, by identity. */
  groupList: Group[] = [];
  readonly pods: PodInfo[] = [];
  readonly selectMemo = new Map<string, Group[]>();
  readonly nsMemo = new Map<string, string[]>();
  readonly overlayMemo = new Map<string, PendingOverlay['prefixes']>();
  podsByIp: { ip: number; info: PodInfo }[] | undefined;

  constructor(c: PolicyCompiler, s: ClusterSnapshot) {
    this.c = c;
    this.s = s;
  }

  labelsOfNamespace(name: string): Labels {
    let l = this.nsLabels.get(name);
    if (!l) {
      const ns = this.s.namespaces.get(name);
      // NETPOL 12: the API server sets kubernetes.io/metadata.name on every namespace;
      // add it when an object arrives without it (or is not known yet).
      const own = ns?.metadata.labels ?? {};
      l = own[NS_NAME_LABEL] === name ? own : { ...own, [NS_NAME_LABEL]: name };
      this.nsLabels.set(name, l);
    }
    return l;
  }

  groupOf(key: string, namespace: string, podLabels: Labels, nsLabels: Labels): Group {
    let g = this.groups.get(key);
    if (!g) {
      g = { key, id: 0, namespace, podLabels, nsLabels, members: [] };
      this.groups.set(key, g);
    }
    return g;
  }

  run(): CompileResult {
    const { s } = this;
    const endpointInfo = this.collectPods();
    this.indexGroups();

    const rules = new Map<number, RuleOrigin>();
    const policiesByNs = new Map<string, ParsedPolicy[]>();
    for (const key of [...s.policies.keys()].sort()) {
      const p = this.c.parsed(key, s.policies.get(key)!);
      this.problems.push(...p.problems);
      let list = policiesByNs.get(p.namespace);
      if (!list) policiesByNs.set(p.namespace, (list = []));
      list.push(p);
    }

    const state: DatapathState = { endpoints: [], ipcache: [], policy: [], cidrs: [] };
    const summaries = new Map<number, EndpointPolicySummary>();
    const pending: PendingOverlay[] = [];
    for (const { ep, info } of endpointInfo) {
      const selecting = (policiesByNs.get(ep.podNamespace) ?? []).filter((p) =>
        !p.podSelector || p.podSelector.matches(info.group.podLabels));
      const enforced: Record<Direction, boolean> = { ingress: false, egress: false };
      const names: Record<Direction, string[]> = { ingress: [], egress: [] };
      for (const dir of directions) {
        const active = selecting.filter((p) => p.isolates[dir]);
        names[dir] = active.map((p) => p.key);
        // A local pod whose Pod object is not in the snapshot yet fails closed: isolated
        // both ways, allowed only what policies selecting a label-less pod allow.
        enforced[dir] = active.length > 0 || info.pod === undefined;
        if (!enforced[dir]) continue;
        const work = this.compileDirection(ep, info, dir, active, rules);
        pending.push(work);
      }
      state.endpoints.push({
        ifindex: ep.ifindex,
        endpointId: ep.endpointId,
        identity: info.group.id,
        ipv4: ep.ipv4,
        ingressEnforced: enforced.ingress,
        egressEnforced: enforced.egress,
      } satisfies EndpointEntry);
      summaries.set(ep.endpointId, {
        endpointId: ep.endpointId,
        pod: `${ep.podNamespace}/${ep.podName}`,
        identity: info.group.id,
        ingressEnforced: enforced.ingress,
        egressEnforced: enforced.egress,
        ingressPolicies: names.ingress,
        egressPolicies: names.egress,
      });
    }

    // CIDR identities, allocated once every endpoint's sets are known (sorted: determinism).
    const setKeys = new Set<string>();
    for (const w of pending) for (const p of w.prefixes) if (p.members.length) setKeys.add(cidrSetKey(p.members));
    const cidrIds = this.c.cidrIdentities.sync(setKeys);
    const identities = new Map<number, Labels>();
    for (const g of this.groups.values()) identities.set(g.id, this.c.labelIdentities.labelsOf(g.id)!);
    for (const [k, id] of cidrIds) {
      identities.set(id, Object.fromEntries(k.split(';').map((m) => [m, 'ipblock'])));
    }

    const l7: L7Rules[] = [];
    for (const w of pending) {
      for (const p of w.prefixes) {
        const id = p.members.length ? cidrIds.get(cidrSetKey(p.members))! : IDENTITY_WORLD;
        state.cidrs.push({ endpointId: w.endpointId, direction: w.direction, cidr: formatPrefix(p.prefix), identity: id });
        if (id === IDENTITY_WORLD) continue;
        for (const a of p.allows) this.addSlot(w.slots, w.endpointId, w.direction, id, a);
      }
      this.finishSlots(w.slots, state.policy, l7);
    }

    state.ipcache = this.buildIpcache();
    state.endpoints.sort((a, b) => a.ifindex - b.ifindex);
    state.policy = sortByKey(state.policy, entryKey.policy);
    state.cidrs = sortByKey(state.cidrs, entryKey.cidrs);
    if (l7.length > 1) l7.splice(0, l7.length, ...sortByKey(l7, (e) => entryKey.policy(e as unknown as PolicyEntry)));

    const result: CompileResult = {
      revision: s.revision,
      state,
      rules,
      endpoints: summaries,
      identities,
      problems: this.problems,
    };
    if (l7.length) result.l7 = l7;
    return result;
  }

  /** Groups every pod by label set, allocates label identities, picks local endpoints. */
  collectPods(): { ep: LocalEndpoint; info: PodInfo }[] {
    const { s } = this;
    const local = new Map<string, LocalEndpoint[]>();
    for (const ep of s.endpoints) {
      const k = `${ep.podNamespace}/${ep.podName}`;
      const l = local.get(k);
      if (l) l.push(ep); else local.set(k, [ep]);
    }
    const infos = new Map<string, PodInfo>();
    for (const [key, pod] of s.pods) {
      // NETPOL 23: hostNetwork pods are neither subjects nor peers; their IP is the node's.
      if (pod.spec?.hostNetwork) continue;
      const eps = local.get(key);
      // Terminated pods have released their IP, which may already belong to another pod
      // (completed Job pods stay in the API with their old podIP). A local one that
      // still has an endpoint holds its address until the CNI DEL.
      const phase = pod.status?.phase;
      if ((phase === 'Succeeded' || phase === 'Failed') && !eps) continue;
      const namespace = pod.metadata.namespace ?? namespaceOfKey(key);
      const nsLabels = this.labelsOfNamespace(namespace);
      const facts = this.c.podFacts(pod, namespace, s.namespaces.get(namespace), nsLabels);
      const group = this.groupOf(facts.key, namespace, pod.metadata.labels ?? {}, nsLabels);
      let ips = facts.ips;
      let cidrs = facts.cidrs;
      if (eps) {
        // The endpoint's address is authoritative for local pods (status may lag).
        ips = [...new Set(eps.map((e) => parseIpv4(e.ipv4)).filter((n): n is number => n !== undefined))];
        cidrs = ips.map((ip) => `${formatIpv4(ip)}/32`);
      }
      const rank = eps ? 0 : pod.metadata.deletionTimestamp ? 3 : phase === 'Running' ? 1 : 2;
      const info: PodInfo = { key, pod, ips, cidrs, group, rank };
      group.members.push(info);
      this.pods.push(info);
      if (eps) infos.set(key, info);
    }
    const out: { ep: LocalEndpoint; info: PodInfo }[] = [];
    for (const ep of s.endpoints) {
      const k = `${ep.podNamespace}/${ep.podName}`;
      let info = infos.get(k);
      if (!info) {
        const nsLabels = this.labelsOfNamespace(ep.podNamespace);
        const gk = labelSetKey(identityLabels(ep.podNamespace, {}, nsLabels));
        const group = this.groupOf(gk, ep.podNamespace, {}, nsLabels);
        const ip = parseIpv4(ep.ipv4);
        const ips = ip === undefined ? [] : [ip];
        info = { key: k, pod: undefined, ips, cidrs: ips.map((n) => `${formatIpv4(n)}/32`), group, rank: 0 };
        group.members.push(info);
        this.pods.push(info);
        infos.set(k, info);
      }
      out.push({ ep, info });
    }
    const ids = this.c.labelIdentities.sync(this.groups.keys());
    for (const g of this.groups.values()) g.id = ids.get(g.key)!;
    return out;
  }

  indexGroups(): void {
    this.groupList = [...this.groups.values()].sort((a, b) => a.id - b.id);
    for (const g of this.groupList) {
      let l = this.groupsByNs.get(g.namespace);
      if (!l) this.groupsByNs.set(g.namespace, (l = []));
      l.push(g);
      for (const [k, v] of Object.entries(g.podLabels)) {
        const ik = `${k}\u0000${v}`;
        let m = this.groupsByPodLabel.get(ik);
        if (!m) this.groupsByPodLabel.set(ik, (m = []));
        m.push(g);
      }
    }
  }

  /** Namespaces whose labels match a namespaceSelector (memoized). */
  namespacesMatching(sel: CompiledSelector): string[] {
    let out = this.nsMemo.get(sel.key);
    if (!out) {
      const names = new Set<string>([...this.s.namespaces.keys(), ...this.groupsByNs.keys()]);
      out = [...names].filter((n) => sel.matches(this.labelsOfNamespace(n))).sort();
      this.nsMemo.set(sel.key, out);
    }
    return out;
  }

  /** Groups a selector peer selects (NETPOL 8-10), sorted by identity; memoized. */
  selectGroups(policyNs: string, peer: Extract<ParsedPeer, { kind: 'select' }>): Group[] {
    const nsPart = peer.namespaceSelector ? `ns:${peer.namespaceSelector.key}` : `in:${policyNs}`;
    const memoKey = `${nsPart}\u0001${peer.podSelector?.key ?? '*'}`;
    let out = this.selectMemo.get(memoKey);
    if (out) return out;
    const namespaces = peer.namespaceSelector
      ? this.namespacesMatching(peer.namespaceSelector) : [policyNs];
    const ps = peer.podSelector;
    out = [];
    if (ps && ps.required.length > 0) {
      // Index: the smallest candidate list among the pairs every match must carry.
      let cands: Group[] | undefined;
      for (const [k, v] of ps.required) {
        const l = this.groupsByPodLabel.get(`${k}\u0000${v}`) ?? [];
        if (!cands || l.length < cands.length) cands = l;
      }
      const nsSet = new Set(namespaces);
      out = cands!.filter((g) => nsSet.has(g.namespace) && ps.matches(g.podLabels));
    } else {
      for (const n of namespaces) {
        for (const g of this.groupsByNs.get(n) ?? []) if (!ps || ps.matches(g.podLabels)) out.push(g);
      }
      if (namespaces.length > 1) out.sort((a, b) => a.id - b.id);
    }
    this.selectMemo.set(memoKey, out);
    return out;
  }

  /** Resolution of a named port over the pods of a group (NETPOL 17), memoized. */
  resolveGroup(g: Group, name: string, protoName: string): { uniform?: number; perPod: [number, number][] } {
    const mk = `${protoName}/${name}`;
    if (!g.named) g.named = new Map();
    let r = g.named.get(mk);
    if (r) return r;
    const perPod: [number, number][] = [];
    let uniform: number | undefined;
    let mixed = false;
    for (const m of g.members) {
      if (m.ips.length === 0) continue;
      const port = resolveNamedPort(m.pod, name, protoName);
      if (port === undefined) mixed = true;
      else {
        if (uniform === undefined && perPod.length === 0) uniform = port;
        else if (uniform !== port) mixed = true;
        for (const ip of m.ips) perPod.push([ip, port]);
      }
    }
    r = mixed || uniform === undefined ? { perPod } : { uniform, perPod: [] };
    g.named.set(mk, r);
    return r;
  }

  /** Pods whose IP is inside a prefix (sorted index built on first use). */
  podsIn(p: Prefix): { ip: number; info: PodInfo }[] {
    if (!this.podsByIp) {
      this.podsByIp = this.pods.flatMap((info) => info.ips.map((ip) => ({ ip, info })))
        .sort((a, b) => a.ip - b.ip);
    }
    const arr = this.podsByIp;
    let lo = 0;
    let hi = arr.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (arr[mid]!.ip < p.addr) lo = mid + 1; else hi = mid;
    }
    const last = prefixLast(p);
    const out: { ip: number; info: PodInfo }[] = [];
    for (let i = lo; i < arr.length && arr[i]!.ip <= last; i++) out.push(arr[i]!);
    return out;
  }

  compileDirection(
    ep: LocalEndpoint, info: PodInfo, dir: Direction, active: ParsedPolicy[],
    rules: Map<number, RuleOrigin>,
  ): PendingOverlay {
    const slots = new Map<string, Slot>();
    const elements: CidrElement<Allow>[] = [];
    for (const p of active) {
      for (const r of p.rules[dir]) {
        if (!rules.has(r.ruleId)) {
          rules.set(r.ruleId, { ruleId: r.ruleId, policy: p.key, direction: dir, ruleIndex: r.index });
        }
        this.compileRule(ep, info, dir, p, r, slots, elements);
      }
    }
    let prefixes: PendingOverlay['prefixes'] = [];
    if (elements.length) {
      const sig = JSON.stringify(elements.map((e) => [e.member, e.ports]));
      const hit = this.overlayMemo.get(sig);
      if (hit) prefixes = hit;
      else {
        prefixes = computeOverlay(elements).map((o) => ({ prefix: o.prefix, members: o.members, allows: o.ports }));
        this.overlayMemo.set(sig, prefixes);
      }
    }
    return { endpointId: ep.endpointId, direction: dir, slots, prefixes };
  }

  compileRule(
    ep: LocalEndpoint, info: PodInfo, dir: Direction, p: ParsedPolicy, r: ParsedRule,
    slots: Map<string, Slot>, elements: CidrElement<Allow>[],
  ): void {
    if (!r.ports) return;
    const id = ep.endpointId;
    const numeric: Allow[] = [];
    const named: Extract<PortSpec, { kind: 'named' }>[] = [];
    for (const spec of r.ports) {
      if (spec.kind === 'all') {
        numeric.push({ protocol: PROTO_ANY, port: 0, endPort: 0, ruleId: r.ruleId, http: undefined });
      } else if (spec.kind === 'number') {
        numeric.push({ protocol: spec.protocol, port: spec.port, endPort: spec.endPort, ruleId: r.ruleId, http: spec.http });
      } else if (dir === 'ingress') {
        // Ingress: the destination is the selected (local) pod itself.
        const port = resolveNamedPort(info.pod, spec.name, spec.protoName);
        if (port !== undefined) {
          numeric.push({ protocol: spec.protocol, port, endPort: port, ruleId: r.ruleId, http: spec.http });
        }
      } else {
        named.push(spec);
      }
    }
    const namedAllow = (spec: (typeof named)[number], port: number): Allow =>
      ({ protocol: spec.protocol, port, endPort: port, ruleId: r.ruleId, http: spec.http });
    /** Egress named ports towards one group: one entry if uniform, else per-pod /32s. */
    const namedToGroup = (g: Group) => {
      for (const spec of named) {
        const res = this.resolveGroup(g, spec.name, spec.protoName);
        if (res.uniform !== undefined) this.addSlot(slots, id, dir, g.id, namedAllow(spec, res.uniform));
        for (const [ip, port] of res.perPod) {
          elements.push({ member: `${formatIpv4(ip)}/32`, prefix: { addr: ip, len: 32 }, excepts: [], ports: [namedAllow(spec, port)] });
        }
      }
    };

    if (r.anyPeer) {
      for (const a of numeric) this.addSlot(slots, id, dir, IDENTITY_ANY, a);
      // A named port towards "any peer" can only mean pods: non-pod addresses have no
      // container ports, so they match nothing.
      if (named.length) for (const g of this.groupList) namedToGroup(g);
      return;
    }
    for (const peer of r.peers) {
      if (peer.kind === 'select') {
        for (const g of this.selectGroups(p.namespace, peer)) {
          for (const a of numeric) this.addSlot(slots, id, dir, g.id, a);
          if (named.length) namedToGroup(g);
        }
        continue;
      }
      if (numeric.length) {
        elements.push({ member: peer.member, prefix: peer.prefix, excepts: peer.excepts, ports: numeric });
      }
      for (const spec of named) {
        for (const { ip, info: pi } of this.podsIn(peer.prefix)) {
          if (peer.excepts.some((x) => prefixContainsAddr(x, ip))) continue;
          const port = resolveNamedPort(pi.pod, spec.name, spec.protoName);
          if (port === undefined) continue;
          elements.push({ member: `${formatIpv4(ip)}/32`, prefix: { addr: ip, len: 32 }, excepts: [], ports: [namedAllow(spec, port)] });
        }
      }
    }
  }

  addSlot(slots: Map<string, Slot>, endpointId: number, direction: Direction, peer: number, a: Allow): void {
    const entry: PolicyEntry = {
      endpointId, direction, peer, protocol: a.protocol, port: a.port, endPort: a.endPort,
      ruleId: a.ruleId, proxyPort: a.http ? this.c.l7ProxyPort : 0,
    };
    const k = entryKey.policy(entry);
    const cur = slots.get(k);
    if (!cur) {
      slots.set(k, { entry, http: a.http ? [...a.http] : undefined, ruleIds: new Set([a.ruleId]) });
      return;
    }
    cur.entry.ruleId = Math.min(cur.entry.ruleId, a.ruleId);
    cur.ruleIds.add(a.ruleId);
    // Union: an L3/L4 allow on the same peer and ports means every request is allowed.
    if (!cur.http || !a.http) {
      cur.http = undefined;
      cur.entry.proxyPort = 0;
    } else {
      cur.http.push(...a.http);
    }
  }

  /**
   * Emits the entries of one endpoint and direction. A redirecting entry fully covered by
   * a plain allow (same or any peer, same or any protocol, a port range containing its
   * own) loses its redirect: the union of "these requests" and "everything" is everything.
   */
  finishSlots(slots: Map<string, Slot>, policy: PolicyEntry[], l7: L7Rules[]): void {
    const plain: PolicyEntry[] = [];
    let redirects = false;
    for (const s of slots.values()) {
      if (s.http) redirects = true;
      else plain.push(s.entry);
    }
    for (const s of slots.values()) {
      const e = s.entry;
      if (s.http && redirects) {
        const covered = plain.some((q) =>
          (q.peer === IDENTITY_ANY || q.peer === e.peer)
          && (q.protocol === PROTO_ANY || (q.protocol === e.protocol
            && (q.port === 0 || (e.port !== 0 && q.port <= e.port && e.endPort <= q.endPort)))));
        if (covered) {
          e.proxyPort = 0;
          s.http = undefined;
        }
      }
      policy.push(e);
      if (s.http) {
        l7.push({
          endpointId: e.endpointId, direction: e.direction, peer: e.peer, protocol: e.protocol,
          port: e.port, endPort: e.endPort, proxyPort: e.proxyPort,
          ruleIds: [...s.ruleIds].sort(compareNum), http: s.http,
        });
      }
    }
  }

  /** Pod IPs -> label identity; node addresses -> host / remote-node. */
  buildIpcache(): IpcacheEntry[] {
    const byIp = new Map<number, PodInfo>();
    for (const info of this.pods) {
      for (const ip of info.ips) {
        const cur = byIp.get(ip);
        if (!cur || info.rank < cur.rank || (info.rank === cur.rank && info.key < cur.key)) {
          byIp.set(ip, info);
        }
      }
    }
    // Node addresses win over any pod claiming them; this node's over other nodes'.
    const nodes = new Map<number, number>();
    const node = (addr: string | undefined, id: number) => {
      const n = addr === undefined ? undefined : parseIpv4(addr);
      if (n === undefined || nodes.get(n) === IDENTITY_HOST) return;
      nodes.set(n, id);
    };
    for (const [name, n] of this.s.nodes) {
      const id = name === this.s.nodeName ? IDENTITY_HOST : IDENTITY_REMOTE_NODE;
      for (const a of n.status?.addresses ?? []) {
        if (a.type === 'InternalIP' || a.type === 'ExternalIP') node(a.address, id);
      }
    }
    for (const a of this.c.hostAddresses) node(a, IDENTITY_HOST);
    const ips = [...byIp.keys()];
    for (const ip of nodes.keys()) if (!byIp.has(ip)) ips.push(ip);
    ips.sort(compareNum);
    const out: IpcacheEntry[] = new Array(ips.length);
    for (let i = 0; i < ips.length; i++) {
      const ip = ips[i]!;
      const nodeId = nodes.get(ip);
      if (nodeId !== undefined) {
        out[i] = { cidr: `${formatIpv4(ip)}/32`, identity: nodeId };
      } else {
        const info = byIp.get(ip)!;
        out[i] = { cidr: info.cidrs[info.ips.indexOf(ip)]!, identity: info.group.id };
      }
    }
    return out;
  }
}

/** Sorts by a string key computed once per element. */
function sortByKey<T>(xs: T[], key: (e: T) => string): T[] {
  const keyed = xs.map((e) => ({ k: key(e), e }));
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  return keyed.map((x) => x.e);
}
