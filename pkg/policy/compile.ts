/**
 * The policy compiler: a cluster snapshot in, the desired datapath state of this node out.
 * Pure: it reads only its argument, its own identity allocators and what it derived from
 * earlier snapshots (CompilerState, kept to recompute only what a change affects), does
 * no I/O and reads no clock; given the same snapshot and allocator state it returns the
 * same result as a fresh compiler would, with every list sorted by map key.
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
  PROTO_ANY, PROTO_TCP, type CidrEntry, type Direction, type EndpointEntry, type IpcacheEntry,
  type PolicyEntry,
} from '../datapath/types.ts';
import { entryKey } from '../datapath/diff.ts';
import {
  CidrIdentityAllocator, LabelIdentityAllocator, cidrSetKey, identityLabels, labelSetKey,
} from '../identity/allocator.ts';
import {
  IDENTITY_ANY, IDENTITY_CLUSTER_POD, IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_WORLD,
  isLabelIdentity,
} from '../identity/reserved.ts';
import { computeOverlay, type CidrElement } from './cidr-overlay.ts';
import {
  formatIpv4, formatPrefix, parseIpv4, prefixContainsAddr, prefixLast, type Prefix,
} from './ip.ts';
import { parsePolicy, type ParsedPeer, type ParsedPolicy, type ParsedRule } from './parse.ts';
import type { PortSpec } from './ports.ts';
import type { CompiledSelector } from './selector.ts';
import type {
  ClusterSnapshot, HttpRule, LocalEndpoint, Namespace, NetworkPolicy, Node, Pod,
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

/**
 * Compiles snapshots for one node. Keep one instance per agent: its identity allocators
 * keep numbers stable across compiles, and its state (CompilerState) makes a compile
 * incremental: only what a change affects is recomputed. Snapshot objects are treated as
 * immutable (as the store hands them out): a changed object must be a new object. The
 * maps of a snapshot may be reused and mutated between compiles (they are compared entry
 * by entry). Returned arrays and entries are shared with later results: never mutate them.
 */
export class PolicyCompiler {
  readonly l7ProxyPort: number;
  readonly hostAddresses: readonly string[];
  readonly labelIdentities: LabelIdentityAllocator;
  readonly cidrIdentities: CidrIdentityAllocator;
  readonly #parsed = new WeakMap<NetworkPolicy, ParsedPolicy>();
  readonly #state: CompilerState;

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
    this.#state = new CompilerState(this);
  }

  compile(snapshot: ClusterSnapshot): CompileResult {
    return this.#state.compile(snapshot);
  }

  /** @internal Parsed form of a policy, cached per object. */
  parsed(key: string, np: NetworkPolicy): ParsedPolicy {
    const hit = this.#parsed.get(np);
    if (hit && hit.key === key) return hit;
    const p = parsePolicy(key, np, { l7: true, l7ProxyPort: this.l7ProxyPort });
    this.#parsed.set(np, p);
    return p;
  }
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

/** Pods sharing one label set: the unit selectors and identities work on. */
interface Group {
  key: string;
  id: number;
  namespace: string;
  podLabels: Labels;
  nsLabels: Labels;
  /** Member pods by pod key. */
  members: Map<string, PodInfo>;
  /** Bumped whenever a member joins, leaves or changes (named-port resolutions then stale). */
  version: number;
  /** Named-port resolutions over the members, by `protocol/name`, for `version`. */
  named?: Map<string, NamedResolution>;
}

interface NamedResolution {
  uniform?: number;
  perPod: [number, number][];
}

interface PodInfo {
  /** `namespace/name`. */
  key: string;
  pod: Pod | undefined;
  namespace: string;
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
  /** The rule each `http` entry came from, same order (attribution per request). */
  httpRuleIds: number[] | undefined;
  ruleIds: Set<number>;
}

type OverlayPrefixes = { prefix: Prefix; members: string[]; allows: Allow[] }[];

/**
 * The groups one selector peer selects (NETPOL 8-10), sorted by identity. Kept across
 * compiles and updated as groups come and go; `groups` is replaced, never mutated, and
 * `version` changes with it.
 */
interface Selection {
  policyNs: string;
  podSelector: CompiledSelector | undefined;
  namespaceSelector: CompiledSelector | undefined;
  groups: Group[];
  version: number;
  /** Compile sequence number that last used it (unused ones are dropped). */
  used: number;
}

/** What the entries of one endpoint and direction were computed from. */
interface DirDeps {
  info: PodInfo;
  policies: ParsedPolicy[];
  selections: [Selection, number][];
  /** Groups whose named-port resolution was read, with their version. */
  groups: [Group, number][];
  /** `podsVersion` when every pod was read (named ports towards any peer or an ipBlock). */
  pods: number | undefined;
}

/** The compiled entries of one endpoint and direction: a block of the sorted output. */
interface DirResult {
  deps: DirDeps;
  /** `endpointId/direction/`: every entry key of the block starts with it. */
  prefix: string;
  /** CIDR identity set key of each overlay prefix ('' = no member: world). */
  setKeys: string[];
  /** The CIDR identity each set key had when the block was finished. */
  cidrIds: number[];
  policy: PolicyEntry[];
  cidrs: CidrEntry[];
  l7: L7Rules[];
}

/** A block being compiled: slots and overlay before CIDR identities are known. */
interface PendingDir {
  endpointId: number;
  direction: Direction;
  key: string;
  deps: DirDeps;
  slots: Map<string, Slot>;
  prefixes: OverlayPrefixes;
}

const sameList = <T>(a: readonly T[], b: readonly T[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

function depsValid(d: DirDeps, info: PodInfo, active: readonly ParsedPolicy[], podsVersion: number): boolean {
  return d.info === info && sameList(d.policies, active)
    && (d.pods === undefined || d.pods === podsVersion)
    && d.selections.every(([s, v]) => s.version === v)
    && d.groups.every(([g, v]) => g.version === v);
}

function selects(sel: Selection, g: Group): boolean {
  const nsOk = sel.namespaceSelector
    ? sel.namespaceSelector.matches(g.nsLabels) : g.namespace === sel.policyNs;
  return nsOk && (!sel.podSelector || sel.podSelector.matches(g.podLabels));
}

const byId = (a: Group, b: Group) => a.id - b.id;

/**
 * What the compiler keeps between compiles, all derived from the previous snapshot: pod
 * and group state (updated from the objects that changed, compared by identity), the
 * ipcache, selector matches, and the compiled block of every endpoint and direction with
 * what it was computed from. A compile recomputes only the blocks whose inputs changed.
 * `compile` returns exactly what a fresh compiler with the same allocator state would.
 */
class CompilerState {
  readonly c: PolicyCompiler;
  seq = 0;
  nodeName: string | undefined;
  readonly pods = new Map<string, Pod>();
  readonly namespaces = new Map<string, Namespace>();
  readonly nodes = new Map<string, Node>();
  readonly nsLabels = new Map<string, Labels>();
  /** Local endpoints of the previous compile by pod key, as an address signature. */
  local = new Map<string, { sig: string; eps: LocalEndpoint[] }>();
  readonly infos = new Map<string, PodInfo>();
  readonly infosByNs = new Map<string, Set<string>>();
  readonly groups = new Map<string, Group>();
  groupList: Group[] = [];
  readonly groupsByPodLabel = new Map<string, Group[]>();
  /** Bumped whenever any pod's information changes. */
  podsVersion = 0;
  labelsSynced = false;
  ipcache: IpcacheEntry[] = [];
  /** The entries of `ipcache` by address, reused when unchanged (the diff skips them). */
  ipcacheByIp = new Map<number, IpcacheEntry>();
  ipcacheStale = true;
  podsByIp: { ip: number; info: PodInfo }[] | undefined;
  readonly selections = new Map<string, Selection>();
  readonly parsed = new Map<string, ParsedPolicy>();
  policiesByNs = new Map<string, ParsedPolicy[]>();
  problems: PolicyProblem[] = [];
  readonly dirs = new Map<string, DirResult>();
  blocks: DirResult[] = [];
  out: { policy: PolicyEntry[]; cidrs: CidrEntry[]; l7: L7Rules[] } = { policy: [], cidrs: [], l7: [] };
  identities = new Map<number, Labels>();
  identitiesFor: { groupsVersion: number; cidr: string } | undefined;
  groupsVersion = 0;
  /** The snapshot maps last compared (skipped next time when `immutableMaps`). */
  readonly seenMaps = new Map<string, unknown>();

  constructor(c: PolicyCompiler) {
    this.c = c;
  }

  labelsOfNamespace(name: string): Labels {
    let l = this.nsLabels.get(name);
    if (!l) {
      const ns = this.namespaces.get(name);
      // NETPOL 12: the API server sets kubernetes.io/metadata.name on every namespace;
      // add it when an object arrives without it (or is not known yet).
      const own = ns?.metadata.labels ?? {};
      l = own[NS_NAME_LABEL] === name ? own : { ...own, [NS_NAME_LABEL]: name };
      this.nsLabels.set(name, l);
    }
    return l;
  }

  compile(s: ClusterSnapshot): CompileResult {
    this.seq++;
    this.updatePods(s);
    if (this.ipcacheStale) {
      this.ipcache = this.buildIpcache();
      this.ipcacheStale = false;
    }
    this.updatePolicies(s);

    const rules = new Map<number, RuleOrigin>();
    const summaries = new Map<number, EndpointPolicySummary>();
    const endpoints: EndpointEntry[] = [];
    const used: (DirResult | PendingDir)[] = [];
    const overlayMemo = new Map<string, OverlayPrefixes>();
    for (const ep of s.endpoints) {
      const info = this.infos.get(`${ep.podNamespace}/${ep.podName}`)!;
      const selecting = (this.policiesByNs.get(ep.podNamespace) ?? []).filter((p) =>
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
        for (const p of active) {
          for (const r of p.rules[dir]) {
            if (!rules.has(r.ruleId)) {
              rules.set(r.ruleId, { ruleId: r.ruleId, policy: p.key, direction: dir, ruleIndex: r.index });
            }
          }
        }
        const key = `${ep.endpointId}/${dir}/`;
        const hit = this.dirs.get(key);
        if (hit && depsValid(hit.deps, info, active, this.podsVersion)) {
          for (const [sel] of hit.deps.selections) sel.used = this.seq;
          used.push(hit);
        } else {
          used.push(this.compileDirection(ep, info, dir, active, key, overlayMemo));
        }
      }
      endpoints.push({
        ifindex: ep.ifindex,
        endpointId: ep.endpointId,
        identity: info.group.id,
        ipv4: ep.ipv4,
        ingressEnforced: enforced.ingress,
        egressEnforced: enforced.egress,
      });
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
    for (const [k, sel] of this.selections) if (sel.used !== this.seq) this.selections.delete(k);

    // CIDR identities, allocated once every endpoint's sets are known.
    const setKeys = new Set<string>();
    for (const u of used) {
      if ('slots' in u) {
        for (const p of u.prefixes) if (p.members.length) setKeys.add(cidrSetKey(p.members));
      } else {
        for (const k of u.setKeys) if (k) setKeys.add(k);
      }
    }
    const cidrIds = this.c.cidrIdentities.sync(setKeys);
    // A kept block whose CIDR identities were renumbered is compiled again (a set in use
    // keeps its number, so this is a safety net, not a path taken in practice).
    for (let i = 0; i < used.length; i++) {
      const u = used[i]!;
      if ('slots' in u || u.setKeys.every((k, j) => !k || cidrIds.get(k) === u.cidrIds[j])) continue;
      const ep = s.endpoints.find((e) => u.prefix.startsWith(`${e.endpointId}/`))!;
      const dir = u.prefix.slice(u.prefix.indexOf('/') + 1, -1) as Direction;
      used[i] = this.compileDirection(ep, u.deps.info, dir, u.deps.policies, u.prefix, overlayMemo);
    }
    const blocks = used.map((u) => ('slots' in u ? this.finish(u, cidrIds) : u));
    this.dirs.clear();
    for (const b of blocks) this.dirs.set(b.prefix, b);
    // Entry keys start with the block prefix, and no prefix is a prefix of another
    // (endpoint ids hold no '/'): sorted blocks concatenated are the sorted whole.
    blocks.sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
    if (!sameList(blocks, this.blocks)) {
      this.blocks = blocks;
      this.out = {
        policy: blocks.flatMap((b) => b.policy),
        cidrs: blocks.flatMap((b) => b.cidrs),
        l7: blocks.flatMap((b) => b.l7),
      };
    }

    const cidrSig = [...cidrIds].map(([k, id]) => `${id}=${k}`).join('\n');
    if (!this.identitiesFor || this.identitiesFor.groupsVersion !== this.groupsVersion
      || this.identitiesFor.cidr !== cidrSig) {
      const identities = new Map<number, Labels>();
      for (const g of this.groupList) identities.set(g.id, this.c.labelIdentities.labelsOf(g.id)!);
      for (const [k, id] of cidrIds) {
        identities.set(id, Object.fromEntries(k.split(';').map((m) => [m, 'ipblock'])));
      }
      this.identities = identities;
      this.identitiesFor = { groupsVersion: this.groupsVersion, cidr: cidrSig };
    }

    endpoints.sort((a, b) => a.ifindex - b.ifindex);
    const result: CompileResult = {
      revision: s.revision,
      state: { endpoints, ipcache: this.ipcache, policy: this.out.policy, cidrs: this.out.cidrs },
      rules,
      endpoints: summaries,
      identities: this.identities,
      problems: this.problems,
    };
    if (this.out.l7.length) result.l7 = this.out.l7;
    return result;
  }

  /** Parsed policies by namespace (sorted by key) and their problems, on change only. */
  updatePolicies(s: ClusterSnapshot): void {
    if (this.unchangedMap(s, 'policies', s.policies)) return;
    const touched: ParsedPolicy[] = [];
    for (const [key, np] of s.policies) {
      const p = this.c.parsed(key, np);
      const cur = this.parsed.get(key);
      if (cur !== p) {
        if (cur) touched.push(cur);
        touched.push(p);
        this.parsed.set(key, p);
      }
    }
    if (this.parsed.size !== s.policies.size) {
      for (const [key, p] of [...this.parsed]) {
        if (s.policies.has(key)) continue;
        touched.push(p);
        this.parsed.delete(key);
      }
    }
    if (!touched.length) return;
    // Only the namespaces of changed policies get new lists (sorted by key, so the
    // result does not depend on map order); problems only when a changed one has some.
    const byNs = new Map<string, ParsedPolicy[]>();
    const namespaces = new Set(touched.map((p) => p.namespace));
    for (const key of [...this.parsed.keys()].filter((k) => namespaces.has(this.parsed.get(k)!.namespace)).sort()) {
      const p = this.parsed.get(key)!;
      let list = byNs.get(p.namespace);
      if (!list) byNs.set(p.namespace, (list = []));
      list.push(p);
    }
    for (const ns of namespaces) {
      const list = byNs.get(ns);
      if (list) this.policiesByNs.set(ns, list);
      else this.policiesByNs.delete(ns);
    }
    if (touched.some((p) => p.problems.length)) {
      this.problems = [...this.parsed.keys()].sort().flatMap((k) => this.parsed.get(k)!.problems);
    }
  }

  /**
   * Brings pod, group and identity state up to the snapshot: only pods whose object,
   * namespace or local endpoints changed are looked at again.
   */
  updatePods(s: ClusterSnapshot): void {
    const changed = new Set<string>();
    if (s.nodeName !== this.nodeName) {
      this.nodeName = s.nodeName;
      this.ipcacheStale = true;
    }
    if (!this.unchangedMap(s, 'nodes', s.nodes) && diffMap(this.nodes, s.nodes).length) this.ipcacheStale = true;
    if (!this.unchangedMap(s, 'namespaces', s.namespaces)) {
      for (const name of diffMap(this.namespaces, s.namespaces)) {
        this.nsLabels.delete(name);
        for (const k of this.infosByNs.get(name) ?? []) changed.add(k);
      }
    }
    if (!this.unchangedMap(s, 'pods', s.pods)) for (const k of diffMap(this.pods, s.pods)) changed.add(k);
    const local = new Map<string, { sig: string; eps: LocalEndpoint[] }>();
    for (const ep of s.endpoints) {
      const k = `${ep.podNamespace}/${ep.podName}`;
      const l = local.get(k);
      if (l) {
        l.eps.push(ep);
        l.sig += `,${ep.ipv4}`;
      } else local.set(k, { sig: `${ep.podNamespace}|${ep.ipv4}`, eps: [ep] });
    }
    for (const [k, l] of local) if (this.local.get(k)?.sig !== l.sig) changed.add(k);
    for (const k of this.local.keys()) if (!local.has(k)) changed.add(k);
    this.local = local;

    const touched = new Set<Group>();
    const created = new Set<Group>();
    for (const k of changed) {
      const old = this.infos.get(k);
      if (old) {
        old.group.members.delete(k);
        touched.add(old.group);
        this.infos.delete(k);
        this.infosByNs.get(old.namespace)?.delete(k);
      }
      const info = this.podInfo(k, this.pods.get(k), local.get(k)?.eps, created);
      if (!info) continue;
      info.group.members.set(k, info);
      touched.add(info.group);
      this.infos.set(k, info);
      let set = this.infosByNs.get(info.namespace);
      if (!set) this.infosByNs.set(info.namespace, (set = new Set()));
      set.add(k);
    }
    if (changed.size) {
      this.podsVersion++;
      this.ipcacheStale = true;
      this.podsByIp = undefined;
    }
    const removed: Group[] = [];
    for (const g of touched) {
      g.version++;
      g.named = undefined;
      if (g.members.size > 0) continue;
      this.groups.delete(g.key);
      if (!created.delete(g)) removed.push(g);
    }
    if (!removed.length && !created.size && this.labelsSynced) return;

    const ids = this.c.labelIdentities.sync(this.groups.keys());
    this.labelsSynced = true;
    for (const g of this.groups.values()) g.id = ids.get(g.key)!;
    this.groupsVersion++;
    this.groupList = [...this.groups.values()].sort(byId);
    this.groupsByPodLabel.clear();
    for (const g of this.groupList) {
      for (const [k, v] of Object.entries(g.podLabels)) {
        const ik = `${k}\u0000${v}`;
        let m = this.groupsByPodLabel.get(ik);
        if (!m) this.groupsByPodLabel.set(ik, (m = []));
        m.push(g);
      }
    }
    const gone = new Set(removed);
    for (const sel of this.selections.values()) {
      const add = [...created].filter((g) => selects(sel, g));
      const keep = gone.size ? sel.groups.filter((g) => !gone.has(g)) : sel.groups;
      if (!add.length && keep.length === sel.groups.length) continue;
      sel.groups = add.length ? [...keep, ...add].sort(byId) : keep;
      sel.version++;
    }
  }

  /**
   * True when `map` is the one compared last time and the snapshot promises its maps are
   * immutable; records `map` as the last one seen either way.
   */
  unchangedMap(s: ClusterSnapshot, kind: string, map: unknown): boolean {
    const same = s.immutableMaps === true && this.seenMaps.get(kind) === map;
    this.seenMaps.set(kind, s.immutableMaps === true ? map : undefined);
    return same;
  }

  /** The compile's view of one pod (undefined: not a peer, not local). */
  podInfo(key: string, pod: Pod | undefined, eps: LocalEndpoint[] | undefined, created: Set<Group>): PodInfo | undefined {
    const phase = pod?.status?.phase;
    // NETPOL 23: hostNetwork pods are neither subjects nor peers; their IP is the node's.
    // Terminated pods have released their IP, which may already belong to another pod
    // (completed Job pods stay in the API with their old podIP). A local one that still
    // has an endpoint holds its address until the CNI DEL.
    if (pod && !pod.spec?.hostNetwork && !((phase === 'Succeeded' || phase === 'Failed') && !eps)) {
      const namespace = pod.metadata.namespace ?? namespaceOfKey(key);
      const nsLabels = this.labelsOfNamespace(namespace);
      const podLabels = pod.metadata.labels ?? {};
      const group = this.groupOf(labelSetKey(identityLabels(namespace, podLabels, nsLabels)),
        namespace, podLabels, nsLabels, created);
      // The endpoint's address is authoritative for local pods (status may lag).
      const ips = eps
        ? [...new Set(eps.map((e) => parseIpv4(e.ipv4)).filter((n): n is number => n !== undefined))]
        : podIpv4s(pod);
      const rank = eps ? 0 : pod.metadata.deletionTimestamp ? 3 : phase === 'Running' ? 1 : 2;
      return { key, pod, namespace, ips, cidrs: ips.map((ip) => `${formatIpv4(ip)}/32`), group, rank };
    }
    if (!eps) return undefined;
    // A local endpoint whose pod is unknown (or not a policy subject): label-less.
    const ep = eps[0]!;
    const nsLabels = this.labelsOfNamespace(ep.podNamespace);
    const group = this.groupOf(labelSetKey(identityLabels(ep.podNamespace, {}, nsLabels)),
      ep.podNamespace, {}, nsLabels, created);
    const ip = parseIpv4(ep.ipv4);
    const ips = ip === undefined ? [] : [ip];
    return { key, pod: undefined, namespace: ep.podNamespace, ips, cidrs: ips.map((n) => `${formatIpv4(n)}/32`), group, rank: 0 };
  }

  groupOf(key: string, namespace: string, podLabels: Labels, nsLabels: Labels, created: Set<Group>): Group {
    let g = this.groups.get(key);
    if (!g) {
      g = { key, id: 0, namespace, podLabels, nsLabels, members: new Map(), version: 0 };
      this.groups.set(key, g);
      created.add(g);
    }
    return g;
  }

  /** The Selection of a selector peer (cached across compiles, see Selection). */
  selection(policyNs: string, peer: Extract<ParsedPeer, { kind: 'select' }>): Selection {
    const nsPart = peer.namespaceSelector ? `ns:${peer.namespaceSelector.key}` : `in:${policyNs}`;
    const memoKey = `${nsPart}\u0001${peer.podSelector?.key ?? '*'}`;
    let sel = this.selections.get(memoKey);
    if (!sel) {
      sel = {
        policyNs, podSelector: peer.podSelector, namespaceSelector: peer.namespaceSelector,
        groups: [], version: 0, used: this.seq,
      };
      const ps = peer.podSelector;
      let cands: Group[] = this.groupList;
      if (ps && ps.required.length > 0) {
        // Index: the smallest candidate list among the pairs every match must carry.
        for (const [k, v] of ps.required) {
          const l = this.groupsByPodLabel.get(`${k}\u0000${v}`) ?? [];
          if (l.length < cands.length) cands = l;
        }
      }
      const s = sel;
      sel.groups = cands.filter((g) => selects(s, g));
      this.selections.set(memoKey, sel);
    }
    sel.used = this.seq;
    return sel;
  }

  /** Resolution of a named port over the pods of a group (NETPOL 17), memoized. */
  resolveGroup(g: Group, name: string, protoName: string): NamedResolution {
    const mk = `${protoName}/${name}`;
    if (!g.named) g.named = new Map();
    let r = g.named.get(mk);
    if (r) return r;
    const perPod: [number, number][] = [];
    let uniform: number | undefined;
    let mixed = false;
    for (const k of [...g.members.keys()].sort()) {
      const m = g.members.get(k)!;
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
      this.podsByIp = [...this.infos.values()].flatMap((info) => info.ips.map((ip) => ({ ip, info })))
        .sort((a, b) => a.ip - b.ip || (a.info.key < b.info.key ? -1 : a.info.key > b.info.key ? 1 : 0));
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
    ep: LocalEndpoint, info: PodInfo, dir: Direction, active: ParsedPolicy[], key: string,
    overlayMemo: Map<string, OverlayPrefixes>,
  ): PendingDir {
    const deps: DirDeps = { info, policies: active, selections: [], groups: [], pods: undefined };
    const slots = new Map<string, Slot>();
    const elements: CidrElement<Allow>[] = [];
    for (const p of active) {
      for (const r of p.rules[dir]) this.compileRule(ep, info, dir, p, r, slots, elements, deps);
    }
    let prefixes: OverlayPrefixes = [];
    if (elements.length) {
      const sig = JSON.stringify(elements.map((e) => [e.member, e.ports]));
      const hit = overlayMemo.get(sig);
      if (hit) prefixes = hit;
      else {
        prefixes = computeOverlay(elements).map((o) => ({ prefix: o.prefix, members: o.members, allows: o.ports }));
        overlayMemo.set(sig, prefixes);
      }
    }
    return { endpointId: ep.endpointId, direction: dir, key, deps, slots, prefixes };
  }

  compileRule(
    ep: LocalEndpoint, info: PodInfo, dir: Direction, p: ParsedPolicy, r: ParsedRule,
    slots: Map<string, Slot>, elements: CidrElement<Allow>[], deps: DirDeps,
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
      deps.groups.push([g, g.version]);
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
      if (named.length) {
        deps.pods = this.podsVersion;
        for (const g of this.groupList) namedToGroup(g);
      }
      return;
    }
    for (const peer of r.peers) {
      if (peer.kind === 'select' && peer.namespaceSelector?.empty && (!peer.podSelector || peer.podSelector.empty)) {
        // Every pod of the cluster (NETPOL 9): one "any pod" entry per port instead of one
        // per label identity. Named ports still resolve per destination group.
        for (const a of numeric) this.addSlot(slots, id, dir, IDENTITY_CLUSTER_POD, a);
        if (named.length) {
          deps.pods = this.podsVersion;
          for (const g of this.groupList) namedToGroup(g);
        }
        continue;
      }
      if (peer.kind === 'select') {
        const sel = this.selection(p.namespace, peer);
        deps.selections.push([sel, sel.version]);
        for (const g of sel.groups) {
          for (const a of numeric) this.addSlot(slots, id, dir, g.id, a);
          if (named.length) namedToGroup(g);
        }
        continue;
      }
      if (numeric.length) {
        elements.push({ member: peer.member, prefix: peer.prefix, excepts: peer.excepts, ports: numeric });
      }
      if (named.length) deps.pods = this.podsVersion;
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
      slots.set(k, {
        entry, http: a.http ? [...a.http] : undefined, httpRuleIds: a.http?.map(() => a.ruleId), ruleIds: new Set([a.ruleId]),
      });
      return;
    }
    cur.entry.ruleId = Math.min(cur.entry.ruleId, a.ruleId);
    cur.ruleIds.add(a.ruleId);
    // Union: an L3/L4 allow on the same peer and ports means every request is allowed.
    if (!cur.http || !a.http) {
      cur.http = undefined;
      cur.httpRuleIds = undefined;
      cur.entry.proxyPort = 0;
    } else {
      cur.http.push(...a.http);
      cur.httpRuleIds!.push(...a.http.map(() => a.ruleId));
    }
  }

  /** Turns a pending block into sorted entries, given the CIDR identities. */
  finish(w: PendingDir, cidrIds: ReadonlyMap<string, number>): DirResult {
    const cidrs: CidrEntry[] = [];
    const setKeys: string[] = [];
    const ids: number[] = [];
    for (const p of w.prefixes) {
      const k = p.members.length ? cidrSetKey(p.members) : '';
      const id = k ? cidrIds.get(k)! : IDENTITY_WORLD;
      setKeys.push(k);
      ids.push(id);
      cidrs.push({ endpointId: w.endpointId, direction: w.direction, cidr: formatPrefix(p.prefix), identity: id });
      if (id === IDENTITY_WORLD) continue;
      for (const a of p.allows) this.addSlot(w.slots, w.endpointId, w.direction, id, a);
    }
    const policy: PolicyEntry[] = [];
    const l7: L7Rules[] = [];
    finishSlots(w.slots, policy, l7);
    return {
      deps: w.deps, prefix: w.key, setKeys, cidrIds: ids,
      policy: sortByKey(policy, entryKey.policy),
      cidrs: sortByKey(cidrs, entryKey.cidrs),
      l7: l7.length > 1 ? sortByKey(l7, (e) => entryKey.policy(e as unknown as PolicyEntry)) : l7,
    };
  }

  /** Pod IPs -> label identity; node addresses -> host / remote-node. */
  buildIpcache(): IpcacheEntry[] {
    const byIp = new Map<number, PodInfo>();
    for (const info of this.infos.values()) {
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
    for (const [name, n] of this.nodes) {
      const id = name === this.nodeName ? IDENTITY_HOST : IDENTITY_REMOTE_NODE;
      for (const a of n.status?.addresses ?? []) {
        if (a.type === 'InternalIP' || a.type === 'ExternalIP') node(a.address, id);
      }
    }
    for (const a of this.c.hostAddresses) node(a, IDENTITY_HOST);
    const ips = [...byIp.keys()];
    for (const ip of nodes.keys()) if (!byIp.has(ip)) ips.push(ip);
    ips.sort(compareNum);
    const out: IpcacheEntry[] = new Array(ips.length);
    const prev = this.ipcacheByIp;
    const next = new Map<number, IpcacheEntry>();
    for (let i = 0; i < ips.length; i++) {
      const ip = ips[i]!;
      const nodeId = nodes.get(ip);
      const identity = nodeId ?? byIp.get(ip)!.group.id;
      let e = prev.get(ip);
      if (!e || e.identity !== identity) {
        const info = nodeId === undefined ? byIp.get(ip)! : undefined;
        e = { cidr: info ? info.cidrs[info.ips.indexOf(ip)]! : `${formatIpv4(ip)}/32`, identity };
      }
      out[i] = e;
      next.set(ip, e);
    }
    this.ipcacheByIp = next;
    return out;
  }
}

/**
 * Brings `mine` (the objects last seen) to `theirs`, comparing objects by identity (a
 * changed object is a new object); returns the keys that changed.
 */
function diffMap<T>(mine: Map<string, T>, theirs: ReadonlyMap<string, T>): string[] {
  const out: string[] = [];
  for (const [k, v] of theirs) {
    if (mine.get(k) !== v) {
      out.push(k);
      mine.set(k, v);
    }
  }
  // Every key of `theirs` is in `mine` now: a larger `mine` holds deleted ones.
  if (mine.size !== theirs.size) {
    for (const k of [...mine.keys()]) {
      if (!theirs.has(k)) {
        mine.delete(k);
        out.push(k);
      }
    }
  }
  return out;
}

/** Inclusive TCP port ranges (1..65535): what a plain allow of one peer opens. */
type PortRanges = [number, number][];

/** `[lo, hi]` minus `cover` (any order, may overlap): the uncovered pieces, ascending. */
function subtractRanges(lo: number, hi: number, cover: PortRanges): PortRanges {
  const out: PortRanges = [];
  let cur = lo;
  for (const [a, b] of [...cover].sort((x, y) => x[0] - y[0])) {
    if (b < cur) continue;
    if (a > hi) break;
    if (a > cur) out.push([cur, a - 1]);
    cur = Math.max(cur, b + 1);
    if (cur > hi) return out;
  }
  if (cur <= hi) out.push([cur, hi]);
  return out;
}

/**
 * Emits the entries of one endpoint and direction, with the L7 records of those that
 * redirect.
 *
 * Union (docs/l7.md): where a plain L3/L4 allow applies, every request is allowed, so a
 * redirecting entry never keeps the ports a plain allow covers for the same peers: the
 * same peer, any peer, and any pod for a pod peer (the plain entry is found by the same
 * or a later lookup of bpf/lib/policy.h, which takes a plain entry over a redirecting
 * one). Fully covered: it is left out (the plain entries allow it all and name the
 * rule that does). Partly covered: it is cut to the
 * uncovered port ranges (one entry per piece, merged with an equal-keyed redirecting
 * entry). So within one peer, redirecting and plain TCP entries never overlap and the
 * policy map's longest-prefix match cannot prefer a redirect where a plain allow
 * applies. Plain allows reached through the CIDR lookup are the datapath's part.
 */
function finishSlots(slots: Map<string, Slot>, policy: PolicyEntry[], l7: L7Rules[]): void {
  const plain = new Map<number, PortRanges>();
  let redirects = false;
  for (const s of slots.values()) {
    if (s.http) {
      redirects = true;
      continue;
    }
    const e = s.entry;
    let range: [number, number] | undefined;
    if (e.protocol === PROTO_ANY || (e.protocol === PROTO_TCP && e.port === 0)) range = [1, 65535];
    else if (e.protocol === PROTO_TCP) range = [e.port, e.endPort];
    if (!range) continue;
    const l = plain.get(e.peer);
    if (l) l.push(range); else plain.set(e.peer, [range]);
  }
  const out = new Map<string, Slot>();
  for (const s of slots.values()) {
    const e = s.entry;
    if (!s.http || !redirects) {
      policy.push(e);
      continue;
    }
    const cover = [...(plain.get(e.peer) ?? [])];
    if (e.peer !== IDENTITY_ANY) cover.push(...(plain.get(IDENTITY_ANY) ?? []));
    if (isLabelIdentity(e.peer)) cover.push(...(plain.get(IDENTITY_CLUSTER_POD) ?? []));
    // http rules need TCP (parse.ts): a redirecting entry is TCP, port 0 = every port.
    const lo = e.port === 0 ? 1 : e.port;
    const hi = e.port === 0 ? 65535 : e.endPort;
    const rest = cover.length ? subtractRanges(lo, hi, cover) : [[lo, hi] as [number, number]];
    // Fully covered: the plain entries already allow all of it, and they name the rule
    // that lets every request through.
    if (rest.length === 0) continue;
    const whole = rest.length === 1 && rest[0]![0] === lo && rest[0]![1] === hi;
    const pieces = whole ? [e] : rest.map(([a, b]) => ({ ...e, port: a, endPort: b }));
    for (const piece of pieces) {
      const k = entryKey.policy(piece);
      const cur = out.get(k);
      if (!cur) {
        out.set(k, { entry: piece, http: [...s.http], httpRuleIds: [...s.httpRuleIds!], ruleIds: new Set(s.ruleIds) });
        continue;
      }
      cur.entry.ruleId = Math.min(cur.entry.ruleId, piece.ruleId);
      for (const id of s.ruleIds) cur.ruleIds.add(id);
      cur.http!.push(...s.http);
      cur.httpRuleIds!.push(...s.httpRuleIds!);
    }
  }
  for (const s of out.values()) {
    const e = s.entry;
    policy.push(e);
    l7.push({
      endpointId: e.endpointId, direction: e.direction, peer: e.peer, protocol: e.protocol,
      port: e.port, endPort: e.endPort, proxyPort: e.proxyPort,
      ruleIds: [...s.ruleIds].sort(compareNum), http: s.http!, httpRuleIds: s.httpRuleIds,
    });
  }
}

/** Sorts by a string key computed once per element. */
function sortByKey<T>(xs: T[], key: (e: T) => string): T[] {
  const keyed = xs.map((e) => ({ k: key(e), e }));
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  return keyed.map((x) => x.e);
}
