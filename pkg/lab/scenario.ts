/**
 * The scenario file model (shared/SCENARIOS.md): parsing and validation.
 *
 * Contract: `parseScenario(text)` reads YAML 1.2 (JSON is YAML) and returns a fully
 * validated, defaulted `Scenario`, or throws a `ScenarioError` whose message names the
 * offending field with its path (`steps[1].probes[0].prot`). Unknown fields are errors,
 * so a typo never passes silently. Kubernetes objects inside `apply`/`services` are only
 * checked for their kind and name: their content is the API server's business.
 */
import { parse as parseYaml } from 'yaml';
import { parseMatrix, type Matrix } from './matrix.ts';

export type Protocol = 'TCP' | 'UDP';

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol: Protocol | 'SCTP';
}

export interface PodDecl {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** Node index; undefined = round-robin. */
  node?: number;
  ports: ContainerPort[];
}

export interface HttpRequestSpec {
  method: string;
  path: string;
  headers: Record<string, string>;
}

export interface ProbeSpec {
  port: number;
  protocol: Protocol;
  http?: HttpRequestSpec;
}

export interface ExpectSpec extends ProbeSpec {
  matrix: Matrix;
}

/** A Kubernetes object as written in the scenario (plain JSON). */
export type KubeObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> } & Record<string, unknown>;
};

export interface ObjectRef {
  kind: string;
  name: string;
  namespace?: string;
  apiVersion?: string;
}

export type ProbeTarget = 'pod' | 'service';

export interface Step {
  name: string;
  apply: KubeObject[];
  delete: ObjectRef[];
  /** Explicit probes; undefined = every port/protocol a pod of the step serves. */
  probes?: ProbeSpec[];
  target: ProbeTarget;
  expect: ExpectSpec[];
}

export interface Scenario {
  name?: string;
  nodes?: number;
  /**
   * Extension: also probe to and from `outside/host`, a host outside the cluster on the
   * lab bridge (serving TCP and UDP 80 and 81), for ipBlock and world cases.
   */
  outside?: boolean;
  namespaces: Record<string, Record<string, string>>;
  pods: PodDecl[];
  services: KubeObject[];
  steps: Step[];
}

/** Kinds `apply` accepts, with their default apiVersion. */
export const APPLY_KINDS: Readonly<Record<string, string>> = {
  NetworkPolicy: 'networking.k8s.io/v1',
  PalisadeNetworkPolicy: 'palisade.dev/v1alpha1',
  Namespace: 'v1',
  Pod: 'v1',
  Service: 'v1',
};

/** A scenario that cannot be run as written. `path` locates the field. */
export class ScenarioError extends Error {
  readonly code = 'PAL_LAB_SCENARIO';
  readonly path: string;
  constructor(path: string, message: string) {
    super(path ? `${path}: ${message}` : message);
    this.name = 'ScenarioError';
    this.path = path;
  }
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function at(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

function obj(v: unknown, path: string, allowed: readonly string[]): Obj {
  if (!isObj(v)) throw new ScenarioError(path, 'must be a mapping');
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) {
      throw new ScenarioError(path, `unknown field "${k}" (allowed: ${allowed.join(', ')})`);
    }
  }
  return v;
}

function str(v: unknown, path: string): string {
  if (typeof v !== 'string' || v === '') throw new ScenarioError(path, 'must be a non-empty string');
  return v;
}

function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ScenarioError(path, `must be an integer in ${min}..${max}`);
  }
  return v;
}

function list(v: unknown, path: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ScenarioError(path, 'must be a list');
  return v;
}

/** Label maps: scalar values become strings (YAML 1.2 reads `1` as a number). */
function labels(v: unknown, path: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw new ScenarioError(path, 'must be a mapping of label -> value');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val === 'string') out[k] = val;
    else if (typeof val === 'number' || typeof val === 'boolean') out[k] = String(val);
    else if (val === null) out[k] = '';
    else throw new ScenarioError(at(path, k), 'label value must be a string');
  }
  return out;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function dnsName(v: unknown, path: string): string {
  const s = str(v, path);
  if (s.length > 63 || !DNS_LABEL.test(s)) {
    throw new ScenarioError(path, `"${s}" is not a valid name (lowercase letters, digits, '-')`);
  }
  return s;
}

function protocol(v: unknown, path: string, allowSctp: boolean): Protocol | 'SCTP' {
  const p = v === undefined ? 'TCP' : v;
  if (p === 'TCP' || p === 'UDP' || (allowSctp && p === 'SCTP')) return p;
  const allowed = allowSctp ? 'TCP, UDP or SCTP' : 'TCP or UDP (this kernel has no SCTP sockets)';
  throw new ScenarioError(path, `must be ${allowed}`);
}

function containerPort(v: unknown, path: string): ContainerPort {
  const o = obj(v, path, ['name', 'containerPort', 'protocol']);
  const out: ContainerPort = {
    containerPort: int(o.containerPort, at(path, 'containerPort'), 1, 65535),
    protocol: protocol(o.protocol, at(path, 'protocol'), true),
  };
  if (o.name !== undefined) out.name = str(o.name, at(path, 'name'));
  return out;
}

function pod(v: unknown, path: string): PodDecl {
  const o = obj(v, path, ['namespace', 'name', 'labels', 'node', 'ports']);
  const out: PodDecl = {
    namespace: dnsName(o.namespace, at(path, 'namespace')),
    name: dnsName(o.name, at(path, 'name')),
    labels: labels(o.labels, at(path, 'labels')),
    ports: list(o.ports, at(path, 'ports')).map((p, i) => containerPort(p, at(at(path, 'ports'), i))),
  };
  if (o.node !== undefined) out.node = int(o.node, at(path, 'node'), 0, 63);
  return out;
}

function http(v: unknown, path: string): HttpRequestSpec {
  const o = obj(v, path, ['method', 'path', 'headers']);
  const method = o.method === undefined ? 'GET' : str(o.method, at(path, 'method'));
  if (!/^[A-Z]+$/.test(method)) throw new ScenarioError(at(path, 'method'), 'must be an HTTP method');
  const p = o.path === undefined ? '/' : str(o.path, at(path, 'path'));
  if (!p.startsWith('/') || /\s/.test(p)) {
    throw new ScenarioError(at(path, 'path'), 'must start with "/" and contain no spaces');
  }
  const headers = labels(o.headers, at(path, 'headers'));
  for (const [k, val] of Object.entries(headers)) {
    if (!/^[A-Za-z0-9-]+$/.test(k) || /[\r\n]/.test(val)) {
      throw new ScenarioError(at(at(path, 'headers'), k), 'invalid header');
    }
  }
  return { method, path: p, headers };
}

function probe(v: unknown, path: string, extra: readonly string[] = []): ProbeSpec {
  const o = obj(v, path, ['port', 'protocol', 'http', ...extra]);
  const p = protocol(o.protocol, at(path, 'protocol'), false) as Protocol;
  const out: ProbeSpec = { port: int(o.port, at(path, 'port'), 1, 65535), protocol: p };
  if (o.http !== undefined) {
    if (p !== 'TCP') throw new ScenarioError(at(path, 'http'), 'HTTP probes need protocol TCP');
    out.http = http(o.http, at(path, 'http'));
  }
  return out;
}

function kubeObject(v: unknown, path: string): KubeObject {
  if (!isObj(v)) throw new ScenarioError(path, 'must be a Kubernetes object');
  const kind = str(v.kind, at(path, 'kind'));
  const defaultVersion = APPLY_KINDS[kind];
  if (defaultVersion === undefined) {
    throw new ScenarioError(at(path, 'kind'), `unsupported kind "${kind}" (supported: ${Object.keys(APPLY_KINDS).join(', ')})`);
  }
  const apiVersion = v.apiVersion === undefined ? defaultVersion : str(v.apiVersion, at(path, 'apiVersion'));
  if (!isObj(v.metadata)) throw new ScenarioError(at(path, 'metadata'), 'must be a mapping');
  const metadata = v.metadata;
  dnsName(metadata.name, at(at(path, 'metadata'), 'name'));
  if (kind === 'Namespace') {
    if (metadata.namespace !== undefined) {
      throw new ScenarioError(at(at(path, 'metadata'), 'namespace'), 'a Namespace has no namespace');
    }
  } else {
    dnsName(metadata.namespace, at(at(path, 'metadata'), 'namespace'));
  }
  if (metadata.labels !== undefined) {
    metadata.labels = labels(metadata.labels, at(at(path, 'metadata'), 'labels'));
  }
  return { ...v, apiVersion, kind, metadata } as KubeObject;
}

function objectRef(v: unknown, path: string): ObjectRef {
  const o = obj(v, path, ['kind', 'name', 'namespace', 'apiVersion']);
  const kind = str(o.kind, at(path, 'kind'));
  if (APPLY_KINDS[kind] === undefined) {
    throw new ScenarioError(at(path, 'kind'), `unsupported kind "${kind}"`);
  }
  const out: ObjectRef = { kind, name: dnsName(o.name, at(path, 'name')) };
  if (kind !== 'Namespace') out.namespace = dnsName(o.namespace, at(path, 'namespace'));
  else if (o.namespace !== undefined) throw new ScenarioError(at(path, 'namespace'), 'a Namespace has no namespace');
  if (o.apiVersion !== undefined) out.apiVersion = str(o.apiVersion, at(path, 'apiVersion'));
  return out;
}

function step(v: unknown, path: string, index: number): Step {
  const o = obj(v, path, ['name', 'apply', 'delete', 'probes', 'target', 'expect']);
  const target = o.target === undefined ? 'pod' : o.target;
  if (target !== 'pod' && target !== 'service') {
    throw new ScenarioError(at(path, 'target'), 'must be "pod" or "service"');
  }
  const out: Step = {
    name: o.name === undefined ? `step ${index + 1}` : str(o.name, at(path, 'name')),
    apply: list(o.apply, at(path, 'apply')).map((x, i) => kubeObject(x, at(at(path, 'apply'), i))),
    delete: list(o.delete, at(path, 'delete')).map((x, i) => objectRef(x, at(at(path, 'delete'), i))),
    target,
    expect: list(o.expect, at(path, 'expect')).map((x, i) => {
      const p = at(at(path, 'expect'), i);
      const e = probe(x, p, ['matrix']);
      let matrix: Matrix;
      try {
        matrix = parseMatrix(str((x as Obj).matrix, at(p, 'matrix')));
      } catch (err) {
        if (err instanceof ScenarioError) throw err;
        throw new ScenarioError(at(p, 'matrix'), (err as Error).message);
      }
      const spec: ExpectSpec = { port: e.port, protocol: e.protocol, matrix };
      if (e.http) spec.http = e.http;
      return spec;
    }),
  };
  if (o.probes !== undefined) {
    out.probes = list(o.probes, at(path, 'probes')).map((x, i) => probe(x, at(at(path, 'probes'), i)));
  }
  return out;
}

/** Validates an already parsed document (YAML or JSON). */
export function validateScenario(doc: unknown): Scenario {
  const o = obj(doc, '', ['name', 'nodes', 'outside', 'namespaces', 'pods', 'services', 'steps']);
  const namespaces: Record<string, Record<string, string>> = {};
  if (o.namespaces !== undefined && o.namespaces !== null) {
    if (!isObj(o.namespaces)) throw new ScenarioError('namespaces', 'must be a mapping of name -> labels');
    for (const [ns, l] of Object.entries(o.namespaces)) {
      dnsName(ns, at('namespaces', ns));
      namespaces[ns] = labels(l, at('namespaces', ns));
    }
  }
  const out: Scenario = {
    namespaces,
    pods: list(o.pods, 'pods').map((p, i) => pod(p, at('pods', i))),
    services: list(o.services, 'services').map((s, i) => kubeObject(s, at('services', i))),
    steps: list(o.steps, 'steps').map((s, i) => step(s, at('steps', i), i)),
  };
  if (o.name !== undefined) out.name = str(o.name, 'name');
  if (o.nodes !== undefined) out.nodes = int(o.nodes, 'nodes', 1, 16);
  if (o.outside !== undefined) {
    if (typeof o.outside !== 'boolean') throw new ScenarioError('outside', 'must be true or false');
    out.outside = o.outside;
  }
  const seen = new Set<string>();
  out.pods.forEach((p, i) => {
    const key = `${p.namespace}/${p.name}`;
    if (seen.has(key)) throw new ScenarioError(at('pods', i), `duplicate pod ${key}`);
    seen.add(key);
    if (namespaces[p.namespace] === undefined) namespaces[p.namespace] = {};
  });
  if (out.outside && seen.has('outside/host')) {
    throw new ScenarioError('outside', 'the pod outside/host is reserved for the outside host');
  }
  out.services.forEach((s, i) => {
    if (s.kind !== 'Service') throw new ScenarioError(at(at('services', i), 'kind'), 'must be Service');
  });
  return out;
}

/** Parses a scenario file's text (YAML 1.2 or JSON). */
export function parseScenario(text: string): Scenario {
  let doc: unknown;
  try {
    doc = parseYaml(text, { version: '1.2', schema: 'core', uniqueKeys: true });
  } catch (err) {
    throw new ScenarioError('', `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return validateScenario(doc);
}

/** Node index of every declared pod: explicit `node`, else round-robin over the nodes. */
export function placePods(pods: readonly PodDecl[], nodes: number): number[] {
  let next = 0;
  return pods.map((p) => {
    if (p.node !== undefined) {
      if (p.node >= nodes) throw new ScenarioError('', `pod ${p.namespace}/${p.name} asks for node ${p.node} but the lab has ${nodes}`);
      return p.node;
    }
    return next++ % nodes;
  });
}
