/**
 * The resource types the server serves: the built-in kinds Palisade uses plus every
 * CustomResourceDefinition created at run time. A type is one (group, version, plural);
 * all versions of a group+plural share one storage key (the server does no conversion
 * between CRD versions beyond rewriting apiVersion, which matches `conversion: None`).
 */
import { cause, type StatusCause } from './errors.ts';
import { isObj, objAt, strAt, type Obj } from './json.ts';

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
  format?: string;
}

export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  verbs: string[];
  /** Has a `/status` subresource: main-resource writes keep the stored status. */
  statusSubresource: boolean;
  /** A custom resource (served from a CRD). */
  custom: boolean;
  /** CRD additionalPrinterColumns for this version (custom resources only). */
  printerColumns?: PrinterColumn[];
  /** CRD openAPIV3Schema for this version (custom resources only). */
  schema?: Obj;
  /** Field paths accepted in fieldSelector besides metadata.name/namespace. */
  selectableFields?: string[];
}

export const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export function apiVersionOf(t: ResourceType): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

/** Storage identity shared by every version of one resource. */
export function storageKey(t: { group: string; plural: string }): string {
  return `${t.group}/${t.plural}`;
}

function builtin(
  group: string,
  version: string,
  kind: string,
  plural: string,
  namespaced: boolean,
  extra: Partial<ResourceType> = {},
): ResourceType {
  return {
    group,
    version,
    kind,
    listKind: `${kind}List`,
    plural,
    singular: kind.toLowerCase(),
    namespaced,
    shortNames: [],
    categories: [],
    verbs: ALL_VERBS,
    statusSubresource: false,
    custom: false,
    ...extra,
  };
}

/** Built-in kinds, in the versions kubectl 1.32 and client-node 2.x use. */
export function builtinTypes(): ResourceType[] {
  const nsVerbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
  return [
    builtin('', 'v1', 'Namespace', 'namespaces', false, { shortNames: ['ns'], statusSubresource: true, verbs: nsVerbs, selectableFields: ['status.phase'] }),
    builtin('', 'v1', 'Pod', 'pods', true, {
      shortNames: ['po'],
      categories: ['all'],
      statusSubresource: true,
      selectableFields: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName',
        'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.nominatedNodeName'],
    }),
    builtin('', 'v1', 'Node', 'nodes', false, { shortNames: ['no'], statusSubresource: true, selectableFields: ['spec.unschedulable'] }),
    builtin('', 'v1', 'Service', 'services', true, {
      shortNames: ['svc'],
      categories: ['all'],
      statusSubresource: true,
      verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
      selectableFields: ['spec.clusterIP', 'spec.type'],
    }),
    builtin('', 'v1', 'Event', 'events', true, {
      shortNames: ['ev'],
      selectableFields: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid',
        'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason',
        'reportingComponent', 'source', 'type'],
    }),
    builtin('', 'v1', 'ConfigMap', 'configmaps', true, { shortNames: ['cm'] }),
    builtin('networking.k8s.io', 'v1', 'NetworkPolicy', 'networkpolicies', true, { shortNames: ['netpol'] }),
    builtin('discovery.k8s.io', 'v1', 'EndpointSlice', 'endpointslices', true),
    builtin('apiextensions.k8s.io', 'v1', 'CustomResourceDefinition', 'customresourcedefinitions', false, {
      shortNames: ['crd', 'crds'],
      categories: ['api-extensions'],
      statusSubresource: true,
    }),
    builtin('coordination.k8s.io', 'v1', 'Lease', 'leases', true),
  ];
}

/** Registered types, indexed for routing and discovery. */
export class Registry {
  /** `group/version` -> plural -> type */
  private readonly byGV = new Map<string, Map<string, ResourceType>>();

  constructor(types: ResourceType[] = builtinTypes()) {
    for (const t of types) this.add(t);
  }

  add(t: ResourceType): void {
    const gv = `${t.group}/${t.version}`;
    let m = this.byGV.get(gv);
    if (!m) {
      m = new Map();
      this.byGV.set(gv, m);
    }
    m.set(t.plural, t);
  }

  /** Removes every version of group+plural (used when a CRD is deleted). */
  removeResource(group: string, plural: string): void {
    for (const [gv, m] of this.byGV) {
      const t = m.get(plural);
      if (t && t.group === group) m.delete(plural);
      if (m.size === 0) this.byGV.delete(gv);
    }
  }

  lookup(group: string, version: string, plural: string): ResourceType | undefined {
    return this.byGV.get(`${group}/${version}`)?.get(plural);
  }

  /** Type for an object's apiVersion and kind. */
  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/', 2) : ['', apiVersion];
    for (const t of this.byGV.get(`${group}/${version}`)?.values() ?? []) if (t.kind === kind) return t;
    return undefined;
  }

  hasGroupVersion(group: string, version: string): boolean {
    return this.byGV.has(`${group}/${version}`);
  }

  resources(group: string, version: string): ResourceType[] {
    return [...(this.byGV.get(`${group}/${version}`)?.values() ?? [])];
  }

  /** Groups (excluding core) with their versions, built-ins first, in stable order. */
  groups(): { name: string; versions: string[] }[] {
    const out = new Map<string, string[]>();
    for (const gv of this.byGV.keys()) {
      const [g, v] = gv.split('/') as [string, string];
      if (!g) continue;
      const vs = out.get(g) ?? [];
      vs.push(v);
      out.set(g, vs);
    }
    return [...out].map(([name, versions]) => ({ name, versions: sortVersions(versions) }));
  }

  all(): ResourceType[] {
    return [...this.byGV.values()].flatMap((m) => [...m.values()]);
  }
}

/**
 * Kubernetes version priority: GA > beta > alpha, higher numbers first
 * (v1 > v1beta2 > v1beta1 > v1alpha1). The first one is the preferred version.
 */
export function sortVersions(vs: string[]): string[] {
  const rank = (v: string): [number, number, number] => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [0, 0, 0];
    const stage = m[2] === 'alpha' ? 1 : m[2] === 'beta' ? 2 : 3;
    return [stage, Number(m[1]), Number(m[3] ?? 0)];
  };
  return [...vs].sort((a, b) => {
    const ra = rank(a);
    const rb = rank(b);
    for (let i = 0; i < 3; i++) if (ra[i] !== rb[i]) return (rb[i] as number) - (ra[i] as number);
    return a.localeCompare(b);
  });
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Checks the parts of a CRD the server depends on; returns the causes of a 422. */
export function validateCrd(crd: Obj): StatusCause[] {
  const causes: StatusCause[] = [];
  const spec = objAt(crd.spec);
  const names = objAt(spec.names);
  const group = strAt(spec.group);
  const plural = strAt(names.plural);
  if (!group) causes.push(cause.required('spec.group'));
  else if (!group.includes('.')) causes.push(cause.invalid('spec.group', group, 'should be a domain with at least one dot'));
  if (!plural) causes.push(cause.required('spec.names.plural'));
  else if (!DNS1123_LABEL.test(plural)) causes.push(cause.invalid('spec.names.plural', plural, 'a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\''));
  if (!strAt(names.kind)) causes.push(cause.required('spec.names.kind'));
  if (!strAt(names.listKind) && !strAt(names.kind)) causes.push(cause.required('spec.names.listKind'));
  const scope = spec.scope;
  if (scope !== 'Namespaced' && scope !== 'Cluster') causes.push(cause.notSupported('spec.scope', scope, ['Cluster', 'Namespaced']));
  const name = strAt(objAt(crd.metadata).name);
  if (group && plural && name !== `${plural}.${group}`) {
    causes.push(cause.invalid('metadata.name', name, `must be spec.names.plural+"."+spec.group`));
  }
  const versions = Array.isArray(spec.versions) ? spec.versions : [];
  if (versions.length === 0) causes.push(cause.required('spec.versions'));
  let storage = 0;
  versions.forEach((v, i) => {
    const vo = objAt(v);
    if (!strAt(vo.name)) causes.push(cause.required(`spec.versions[${i}].name`));
    if (vo.storage === true) storage++;
  });
  if (versions.length > 0 && storage !== 1) {
    causes.push(cause.invalid('spec.versions', storage, 'must have exactly one version marked as storage version'));
  }
  return causes;
}

/** The resource types a (validated) CRD serves, one per served version. */
export function typesFromCrd(crd: Obj): ResourceType[] {
  const spec = objAt(crd.spec);
  const names = objAt(spec.names);
  const kind = strAt(names.kind) ?? '';
  const out: ResourceType[] = [];
  for (const v of Array.isArray(spec.versions) ? spec.versions : []) {
    const vo = objAt(v);
    if (vo.served === false) continue;
    const subresources = objAt(vo.subresources);
    const cols = Array.isArray(vo.additionalPrinterColumns) ? vo.additionalPrinterColumns.filter(isObj) : [];
    const t: ResourceType = {
      group: strAt(spec.group) ?? '',
      version: strAt(vo.name) ?? '',
      kind,
      listKind: strAt(names.listKind) ?? `${kind}List`,
      plural: strAt(names.plural) ?? '',
      singular: strAt(names.singular) ?? kind.toLowerCase(),
      namespaced: spec.scope === 'Namespaced',
      shortNames: Array.isArray(names.shortNames) ? names.shortNames.filter((s): s is string => typeof s === 'string') : [],
      categories: Array.isArray(names.categories) ? names.categories.filter((s): s is string => typeof s === 'string') : [],
      verbs: ALL_VERBS,
      statusSubresource: isObj(subresources.status),
      custom: true,
      printerColumns: cols.map((c) => ({
        name: strAt(c.name) ?? '',
        type: strAt(c.type) ?? 'string',
        jsonPath: strAt(c.jsonPath) ?? '',
        ...(strAt(c.description) ? { description: strAt(c.description) } : {}),
        ...(typeof c.priority === 'number' ? { priority: c.priority } : {}),
        ...(strAt(c.format) ? { format: strAt(c.format) } : {}),
      })),
    };
    const schema = objAt(vo.schema).openAPIV3Schema;
    if (isObj(schema)) t.schema = schema;
    const sel = Array.isArray(vo.selectableFields) ? vo.selectableFields.filter(isObj) : [];
    if (sel.length > 0) t.selectableFields = sel.map((s) => String(s.jsonPath ?? '').replace(/^\./, ''));
    out.push(t);
  }
  return out;
}
