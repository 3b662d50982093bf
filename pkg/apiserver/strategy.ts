/**
 * Per-kind behaviour the real API server applies on writes and that Palisade relies on:
 * defaulting (NetworkPolicy policyTypes and port protocols, Service targetPort and
 * ClusterIP, Pod port protocols, Namespace name label), status resets on create, and the
 * validation that turns bad objects into 422 Invalid. Only the rules listed here are
 * implemented; everything else is stored as given.
 */
import { isIP } from 'node:net';
import { cause, type StatusCause } from './errors.ts';
import { isObj, metaOf, objAt, strAt, type KObject, type Obj } from './json.ts';
import type { ResourceType } from './registry.ts';
import { validateCrd } from './registry.ts';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const PATH_SEGMENT = /^[^/%]+$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];

/** Allocates Service ClusterIPs from one IPv4 CIDR, lowest free address first. */
export class ClusterIpAllocator {
  private readonly base: number;
  private readonly size: number;
  private readonly used = new Set<number>();

  constructor(cidr: string) {
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
    if (!m || isIP(m[1] as string) !== 4 || Number(m[2]) > 30 || Number(m[2]) < 8) {
      throw new Error(`invalid service cidr "${cidr}": want an IPv4 prefix between /8 and /30`);
    }
    const bits = Number(m[2]);
    this.size = 2 ** (32 - bits);
    this.base = ipToInt(m[1] as string) & ~(this.size - 1) >>> 0;
  }

  contains(ip: string): boolean {
    if (isIP(ip) !== 4) return false;
    const n = ipToInt(ip);
    return n > this.base && n < this.base + this.size - 1;
  }

  /** Marks `ip` used; false when it is outside the range or taken. */
  claim(ip: string): boolean {
    if (!this.contains(ip)) return false;
    const n = ipToInt(ip);
    if (this.used.has(n)) return false;
    this.used.add(n);
    return true;
  }

  allocate(): string | undefined {
    for (let off = 1; off < this.size - 1; off++) {
      const n = (this.base + off) >>> 0;
      if (!this.used.has(n)) {
        this.used.add(n);
        return intToIp(n);
      }
    }
    return undefined;
  }

  release(ip: string): void {
    if (isIP(ip) === 4) this.used.delete(ipToInt(ip));
  }
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
}

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

export interface StrategyContext {
  clusterIps: ClusterIpAllocator;
}

function arr(v: unknown): Obj[] {
  return Array.isArray(v) ? v.filter(isObj) : [];
}

function defaultProtocol(ports: unknown): void {
  for (const p of arr(ports)) if (p.protocol === undefined) p.protocol = 'TCP';
}

/** Defaulting done on create and on every update (upstream runs defaulters on decode). */
export function applyDefaults(t: ResourceType, o: KObject): void {
  if (t.custom) return;
  const spec = objAt(o.spec);
  switch (t.kind) {
    case 'Namespace': {
      const meta = metaOf(o);
      // Upstream sets this immutable label on every namespace (since 1.21) so that
      // namespaceSelector can select a namespace by name.
      meta.labels = { ...(meta.labels ?? {}), 'kubernetes.io/metadata.name': meta.name ?? '' };
      if (!isObj(o.spec)) o.spec = {};
      const nsSpec = o.spec as Obj;
      if (!Array.isArray(nsSpec.finalizers)) nsSpec.finalizers = ['kubernetes'];
      break;
    }
    case 'Pod': {
      if (!isObj(o.spec)) return;
      for (const list of ['containers', 'initContainers', 'ephemeralContainers']) {
        for (const c of arr(spec[list])) defaultProtocol(c.ports);
      }
      spec.restartPolicy ??= 'Always';
      spec.dnsPolicy ??= 'ClusterFirst';
      spec.schedulerName ??= 'default-scheduler';
      spec.terminationGracePeriodSeconds ??= 30;
      break;
    }
    case 'Service': {
      if (!isObj(o.spec)) o.spec = {};
      const s = o.spec as Obj;
      s.type ??= 'ClusterIP';
      s.sessionAffinity ??= 'None';
      if (s.type !== 'ExternalName') {
        s.internalTrafficPolicy ??= 'Cluster';
      }
      for (const p of arr(s.ports)) {
        p.protocol ??= 'TCP';
        // Upstream: an absent targetPort means "the same as port".
        if (p.targetPort === undefined) p.targetPort = p.port;
      }
      break;
    }
    case 'NetworkPolicy': {
      if (!isObj(o.spec)) o.spec = {};
      const s = o.spec as Obj;
      if (!isObj(s.podSelector)) s.podSelector = {};
      // Upstream default: Ingress always; Egress only when egress rules are present.
      if (!Array.isArray(s.policyTypes) || s.policyTypes.length === 0) {
        s.policyTypes = Array.isArray(s.egress) && s.egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
      }
      for (const r of arr(s.ingress)) defaultProtocol(r.ports);
      for (const r of arr(s.egress)) defaultProtocol(r.ports);
      break;
    }
    case 'EndpointSlice':
      defaultProtocol(o.ports);
      break;
    default:
      break;
  }
}

/**
 * Create-time changes beyond defaulting: status resets (upstream ignores the status of
 * a created Pod, Service, custom resource with a status subresource), ClusterIP
 * allocation, CRD acceptance. Returns causes when the create must fail.
 */
export function prepareForCreate(t: ResourceType, o: KObject, ctx: StrategyContext): StatusCause[] {
  switch (t.kind) {
    case 'Namespace':
      o.status = { phase: 'Active' };
      return [];
    case 'Pod':
      o.status = { phase: 'Pending', qosClass: 'BestEffort' };
      return [];
    case 'Service':
      o.status = { loadBalancer: {} };
      return allocateClusterIp(objAt(o.spec), ctx);
    case 'CustomResourceDefinition':
      if (!t.custom) {
        const spec = objAt(o.spec);
        const storage = arr(spec.versions).find((v) => v.storage === true);
        o.status = {
          acceptedNames: spec.names,
          conditions: [
            { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found' },
            { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted' },
          ],
          storedVersions: storage ? [storage.name] : [],
        };
        return [];
      }
      break;
    default:
      break;
  }
  if (t.custom && t.statusSubresource) delete o.status;
  return [];
}

function allocateClusterIp(spec: Obj, ctx: StrategyContext): StatusCause[] {
  if (spec.type === 'ExternalName') return [];
  const want = spec.clusterIP;
  if (want === 'None') {
    spec.clusterIPs = ['None'];
    return [];
  }
  if (typeof want === 'string' && want !== '') {
    if (!ctx.clusterIps.contains(want)) {
      return [cause.invalid('spec.clusterIPs', [want], 'failed to allocate IP: the provided IP is not in the valid range')];
    }
    if (!ctx.clusterIps.claim(want)) {
      return [cause.invalid('spec.clusterIPs', [want], `failed to allocate IP ${want}: provided IP is already allocated`)];
    }
  } else {
    const ip = ctx.clusterIps.allocate();
    if (!ip) return [cause.invalid('spec.clusterIPs', [], 'failed to allocate IP: range is full')];
    spec.clusterIP = ip;
  }
  spec.clusterIPs = [spec.clusterIP];
  spec.ipFamilies ??= ['IPv4'];
  spec.ipFamilyPolicy ??= 'SingleStack';
  return [];
}

/** Update-time rules: immutable fields carried over or rejected. */
export function prepareForUpdate(t: ResourceType, next: KObject, prev: KObject): StatusCause[] {
  if (t.kind === 'Service' && !t.custom) {
    const ns = objAt(next.spec);
    const ps = objAt(prev.spec);
    // A write that omits the allocated address keeps it, as kubectl's patches rely on.
    if (ns.clusterIP === undefined && ps.clusterIP !== undefined) {
      ns.clusterIP = ps.clusterIP;
      ns.clusterIPs = ps.clusterIPs;
    }
    if (ns.clusterIPs === undefined && ps.clusterIPs !== undefined && ns.clusterIP === ps.clusterIP) ns.clusterIPs = ps.clusterIPs;
    if (ns.ipFamilies === undefined && ps.ipFamilies !== undefined) ns.ipFamilies = ps.ipFamilies;
    if (ns.ipFamilyPolicy === undefined && ps.ipFamilyPolicy !== undefined) ns.ipFamilyPolicy = ps.ipFamilyPolicy;
    if (ns.clusterIP !== ps.clusterIP) return [cause.invalid('spec.clusterIPs[0]', ns.clusterIP, 'may not change once set')];
  }
  if (t.kind === 'CustomResourceDefinition' && !t.custom) {
    if (objAt(next.spec).scope !== objAt(prev.spec).scope) return [cause.invalid('spec.scope', objAt(next.spec).scope, 'field is immutable')];
    if (objAt(next.spec).group !== objAt(prev.spec).group) return [cause.invalid('spec.group', objAt(next.spec).group, 'field is immutable')];
  }
  return [];
}

/** Releases resources held by a deleted object (ClusterIPs). */
export function onDeleted(t: ResourceType, o: KObject, ctx: StrategyContext): void {
  if (t.kind === 'Service' && !t.custom) {
    const ip = strAt(objAt(o.spec).clusterIP);
    if (ip && ip !== 'None') ctx.clusterIps.release(ip);
  }
}

function validateName(t: ResourceType, name: string): StatusCause[] {
  let re = DNS1123_SUBDOMAIN;
  let what = 'a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character';
  if (!t.custom && t.kind === 'Namespace') {
    re = DNS1123_LABEL;
    what = 'a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\', and must start and end with an alphanumeric character';
  } else if (!t.custom && t.kind === 'Service') {
    re = DNS1035_LABEL;
    what = 'a DNS-1035 label must consist of lower case alphanumeric characters or \'-\', start with an alphabetic character, and end with an alphanumeric character';
  } else if (!t.custom && (t.kind === 'Event' || t.kind === 'ConfigMap' || t.kind === 'Lease')) {
    re = PATH_SEGMENT;
    what = 'may not contain \'/\' or \'%\'';
  }
  const max = t.kind === 'Namespace' || t.kind === 'Service' ? 63 : 253;
  if (!re.test(name) || name.length > max) return [cause.invalid('metadata.name', name, what)];
  return [];
}

function validateLabels(labels: unknown): StatusCause[] {
  if (labels === undefined) return [];
  if (!isObj(labels)) return [cause.typeInvalid('metadata.labels', labels, 'must be a map of strings')];
  const out: StatusCause[] = [];
  for (const [k, v] of Object.entries(labels)) {
    const slash = k.lastIndexOf('/');
    const prefix = slash >= 0 ? k.slice(0, slash) : '';
    const name = slash >= 0 ? k.slice(slash + 1) : k;
    if ((slash >= 0 && !DNS1123_SUBDOMAIN.test(prefix)) || !LABEL_NAME.test(name) || name.length > 63) {
      out.push(cause.invalid('metadata.labels', k, 'name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\', and must start and end with an alphanumeric character'));
    }
    if (typeof v !== 'string') out.push(cause.typeInvalid(`metadata.labels`, v, 'label values must be strings'));
    else if (!LABEL_VALUE.test(v) || v.length > 63) {
      out.push(cause.invalid('metadata.labels', v, 'a valid label must be an empty string or consist of alphanumeric characters, \'-\', \'_\' or \'.\', and must start and end with an alphanumeric character'));
    }
  }
  return out;
}

function validPort(p: unknown): boolean {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
}

interface Cidr {
  family: 4 | 6;
  base: bigint;
  bits: number;
}

function ipToBig(ip: string): bigint {
  if (isIP(ip) === 4) return BigInt(ipToInt(ip));
  // Expand "::" and parse eight 16-bit groups (an embedded IPv4 tail is converted first).
  let s = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = ipToInt(v4[1] as string);
    s = `${s.slice(0, -v4[1]!.length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function parseCidr(v: string): Cidr | undefined {
  const m = /^(.+)\/(\d+)$/.exec(v);
  const fam = m ? isIP(m[1] as string) : 0;
  if (!m || fam === 0) return undefined;
  const bits = Number(m[2]);
  if (bits > (fam === 4 ? 32 : 128)) return undefined;
  return { family: fam as 4 | 6, base: ipToBig(m[1] as string), bits };
}

/** True when `inner` lies inside `outer` and is smaller than it. */
function strictSubset(inner: Cidr, outer: Cidr): boolean {
  if (inner.family !== outer.family || inner.bits <= outer.bits) return false;
  const width = inner.family === 4 ? 32 : 128;
  const shift = BigInt(width - outer.bits);
  return inner.base >> shift === outer.base >> shift;
}

function validateCidr(field: string, v: unknown): StatusCause[] {
  if (typeof v !== 'string' || v === '') return [cause.required(field)];
  if (!parseCidr(v)) return [cause.invalid(field, v, 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)')];
  return [];
}

const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

/** Named ports: at most 15 characters, lowercase alphanumerics and '-', at least one letter, no '--'. */
function validPortName(n: string): boolean {
  return IANA_SVC_NAME.test(n) && /[a-z]/.test(n) && !n.includes('--');
}

const PORT_NAME_MSG = 'must contain only lowercase alphanumerics and \'-\', at most 15 characters, at least one letter, and no \'--\'';

function validatePolicyPorts(field: string, ports: unknown): StatusCause[] {
  const out: StatusCause[] = [];
  arr(ports).forEach((p, i) => {
    const f = `${field}[${i}]`;
    if (p.protocol !== undefined && !PROTOCOLS.includes(p.protocol as string)) out.push(cause.notSupported(`${f}.protocol`, p.protocol, PROTOCOLS));
    if (typeof p.port === 'string') {
      if (!validPortName(p.port)) out.push(cause.invalid(`${f}.port`, p.port, PORT_NAME_MSG));
    } else if (p.port !== undefined && !validPort(p.port)) out.push(cause.invalid(`${f}.port`, p.port, 'must be between 1 and 65535, inclusive'));
    if (p.endPort !== undefined) {
      if (typeof p.port !== 'number') out.push(cause.required(`${f}.port`));
      else if (typeof p.endPort !== 'number' || p.endPort < p.port) out.push(cause.invalid(`${f}.endPort`, p.endPort, 'must be greater than or equal to `port`'));
    }
  });
  return out;
}

const SELECTOR_OPS = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/** metav1.LabelSelector checks: operators, values presence, label syntax. */
function validateSelector(field: string, sel: unknown): StatusCause[] {
  if (sel === undefined) return [];
  if (!isObj(sel)) return [cause.typeInvalid(field, sel, 'must be a label selector')];
  const out: StatusCause[] = [];
  if (sel.matchLabels !== undefined) {
    out.push(...validateLabels(sel.matchLabels).map((c) => ({ ...c, field: `${field}.matchLabels` })));
  }
  arr(sel.matchExpressions).forEach((e, i) => {
    const f = `${field}.matchExpressions[${i}]`;
    const values = Array.isArray(e.values) ? e.values : [];
    if (typeof e.key !== 'string' || e.key === '') out.push(cause.required(`${f}.key`));
    if (!SELECTOR_OPS.includes(e.operator as string)) out.push(cause.notSupported(`${f}.operator`, e.operator, SELECTOR_OPS));
    else if ((e.operator === 'In' || e.operator === 'NotIn') && values.length === 0) {
      out.push(cause.required(`${f}.values`));
    } else if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && values.length > 0) {
      out.push(cause.forbidden(`${f}.values`, 'may not be specified when `operator` is \'Exists\' or \'DoesNotExist\''));
    }
  });
  return out;
}

function validatePeers(field: string, peers: unknown): StatusCause[] {
  const out: StatusCause[] = [];
  arr(peers).forEach((p, i) => {
    const f = `${field}[${i}]`;
    const n = ['podSelector', 'namespaceSelector', 'ipBlock'].filter((k) => p[k] !== undefined).length;
    if (n === 0) out.push(cause.required(`${f}`));
    out.push(...validateSelector(`${f}.podSelector`, p.podSelector));
    out.push(...validateSelector(`${f}.namespaceSelector`, p.namespaceSelector));
    if (p.ipBlock !== undefined) {
      if (p.podSelector !== undefined || p.namespaceSelector !== undefined) out.push(cause.forbidden(f, 'may not specify both ipBlock and another peer'));
      const ib = objAt(p.ipBlock);
      const cidrCauses = validateCidr(`${f}.ipBlock.cidr`, ib.cidr);
      out.push(...cidrCauses);
      const outer = cidrCauses.length === 0 ? parseCidr(ib.cidr as string) : undefined;
      (Array.isArray(ib.except) ? ib.except : []).forEach((e, j) => {
        const ef = `${f}.ipBlock.except[${j}]`;
        const ec = validateCidr(ef, e);
        out.push(...ec);
        const inner = ec.length === 0 ? parseCidr(e as string) : undefined;
        if (outer && inner && !strictSubset(inner, outer)) out.push(cause.invalid(ef, e, 'must be a strict subset of `cidr`'));
      });
    }
  });
  return out;
}

/** Kind-specific checks (beyond names and labels). */
function validateKind(t: ResourceType, o: KObject): StatusCause[] {
  const spec = objAt(o.spec);
  const out: StatusCause[] = [];
  switch (t.kind) {
    case 'Pod': {
      const cs = arr(spec.containers);
      if (cs.length === 0) out.push(cause.required('spec.containers'));
      const seen = new Set<string>();
      cs.forEach((c, i) => {
        const f = `spec.containers[${i}]`;
        if (typeof c.name !== 'string' || c.name === '') out.push(cause.required(`${f}.name`));
        else if (seen.has(c.name)) out.push(cause.duplicate(`${f}.name`, c.name));
        else seen.add(c.name);
        if (typeof c.image !== 'string' || c.image === '') out.push(cause.required(`${f}.image`));
        arr(c.ports).forEach((p, j) => {
          if (!validPort(p.containerPort)) out.push(cause.invalid(`${f}.ports[${j}].containerPort`, p.containerPort, 'must be between 1 and 65535, inclusive'));
          if (!PROTOCOLS.includes(p.protocol as string)) out.push(cause.notSupported(`${f}.ports[${j}].protocol`, p.protocol, PROTOCOLS));
          if (p.name !== undefined && (typeof p.name !== 'string' || !validPortName(p.name))) out.push(cause.invalid(`${f}.ports[${j}].name`, p.name, PORT_NAME_MSG));
        });
      });
      break;
    }
    case 'Service': {
      const ports = arr(spec.ports);
      const types = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
      if (!types.includes(spec.type as string)) out.push(cause.notSupported('spec.type', spec.type, types));
      if (ports.length === 0 && spec.type !== 'ExternalName' && spec.clusterIP !== 'None') out.push(cause.required('spec.ports'));
      const names = new Set<string>();
      ports.forEach((p, i) => {
        const f = `spec.ports[${i}]`;
        if (!validPort(p.port)) out.push(cause.invalid(`${f}.port`, p.port, 'must be between 1 and 65535, inclusive'));
        if (!PROTOCOLS.includes(p.protocol as string)) out.push(cause.notSupported(`${f}.protocol`, p.protocol, PROTOCOLS));
        if (typeof p.targetPort === 'number' && !validPort(p.targetPort)) out.push(cause.invalid(`${f}.targetPort`, p.targetPort, 'must be between 1 and 65535, inclusive'));
        if (ports.length > 1 && !p.name) out.push(cause.required(`${f}.name`));
        if (typeof p.name === 'string') {
          if (names.has(p.name)) out.push(cause.duplicate(`${f}.name`, p.name));
          names.add(p.name);
        }
      });
      break;
    }
    case 'NetworkPolicy': {
      const pt = Array.isArray(spec.policyTypes) ? spec.policyTypes : [];
      pt.forEach((p, i) => {
        if (p !== 'Ingress' && p !== 'Egress') out.push(cause.notSupported(`spec.policyTypes[${i}]`, p, ['Ingress', 'Egress']));
      });
      out.push(...validateSelector('spec.podSelector', spec.podSelector));
      arr(spec.ingress).forEach((r, i) => {
        out.push(...validatePolicyPorts(`spec.ingress[${i}].ports`, r.ports));
        out.push(...validatePeers(`spec.ingress[${i}].from`, r.from));
      });
      arr(spec.egress).forEach((r, i) => {
        out.push(...validatePolicyPorts(`spec.egress[${i}].ports`, r.ports));
        out.push(...validatePeers(`spec.egress[${i}].to`, r.to));
      });
      break;
    }
    case 'EndpointSlice': {
      const types = ['IPv4', 'IPv6', 'FQDN'];
      if (!types.includes(o.addressType as string)) out.push(cause.notSupported('addressType', o.addressType, types));
      arr(o.endpoints).forEach((e, i) => {
        if (!Array.isArray(e.addresses) || e.addresses.length === 0) out.push(cause.required(`endpoints[${i}].addresses`));
      });
      break;
    }
    case 'CustomResourceDefinition':
      out.push(...validateCrd(o));
      break;
    default:
      break;
  }
  return out;
}

/** All validation for a built-in object about to be stored; custom resources are checked by crdschema. */
export function validate(t: ResourceType, o: KObject): StatusCause[] {
  const meta = metaOf(o);
  const out: StatusCause[] = [];
  if (!meta.name) out.push(cause.required('metadata.name'));
  else out.push(...validateName(t, meta.name));
  out.push(...validateLabels(meta.labels));
  if (meta.annotations !== undefined && !isObj(meta.annotations)) out.push(cause.typeInvalid('metadata.annotations', meta.annotations, 'must be a map of strings'));
  if (!t.custom) out.push(...validateKind(t, o));
  return out;
}
