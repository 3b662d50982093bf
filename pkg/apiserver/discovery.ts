/**
 * Discovery documents: legacy (`/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`), aggregated
 * (`apidiscovery.k8s.io/v2` APIGroupDiscoveryList, which kubectl 1.32 asks for first), and
 * the OpenAPI v3 documents kubectl needs for `apply` without `--validate=false`.
 *
 * Why OpenAPI v3 and not v2: kubectl's field validation first asks whether the server
 * supports the `fieldValidation` query parameter, by looking for a PATCH operation of the
 * object's group-version-kind that declares that parameter in the OpenAPI v3 document of
 * its group-version. When it finds one it leaves validation to the server (which does it:
 * 422 for bad objects) and never fetches /openapi/v2, which is protobuf-only in kubectl.
 */
import { createHash } from 'node:crypto';
import type { Obj } from './json.ts';
import type { Registry, ResourceType } from './registry.ts';

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-palisade-lab',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'go1.23.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export const AGGREGATED_V2 = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

export function apiVersions(serverAddress: string): Obj {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function groupDoc(name: string, versions: string[]): Obj {
  const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: vs, preferredVersion: vs[0] };
}

export function apiGroupList(reg: Registry): Obj {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: reg.groups().map((g) => groupDoc(g.name, g.versions)) };
}

export function apiGroup(reg: Registry, group: string): Obj | undefined {
  const g = reg.groups().find((x) => x.name === group);
  return g ? { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(g.name, g.versions) } : undefined;
}

export function apiResourceList(reg: Registry, group: string, version: string): Obj {
  const resources: Obj[] = [];
  for (const t of reg.resources(group, version)) {
    const r: Obj = { name: t.plural, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs: t.verbs };
    if (t.shortNames.length) r.shortNames = t.shortNames;
    if (t.categories.length) r.categories = t.categories;
    resources.push(r);
    if (t.statusSubresource) {
      resources.push({ name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}

function discoveryResource(t: ResourceType): Obj {
  const r: Obj = {
    resource: t.plural,
    responseKind: { group: t.group, version: t.version, kind: t.kind },
    scope: t.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: t.singular,
    verbs: t.verbs,
  };
  if (t.shortNames.length) r.shortNames = t.shortNames;
  if (t.categories.length) r.categories = t.categories;
  if (t.statusSubresource) {
    r.subresources = [{ subresource: 'status', responseKind: { group: t.group, version: t.version, kind: t.kind }, verbs: ['get', 'patch', 'update'] }];
  }
  return r;
}

/** Aggregated discovery for `/api` (core group only) or `/apis` (every other group). */
export function aggregatedDiscovery(reg: Registry, core: boolean): Obj {
  const groups = core ? [{ name: '', versions: ['v1'] }] : reg.groups();
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: 'apidiscovery.k8s.io/v2',
    metadata: {},
    items: groups.map((g) => ({
      metadata: { name: g.name, creationTimestamp: null },
      versions: g.versions.map((v) => ({ version: v, resources: reg.resources(g.name, v).map(discoveryResource), freshness: 'Current' })),
    })),
  };
}

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

function schemaName(t: ResourceType): string {
  const g = t.group ? t.group.split('.').reverse().join('.') : 'io.k8s.api.core';
  return `${g}.${t.version}.${t.kind}`;
}

const FIELD_VALIDATION_PARAM = {
  name: 'fieldValidation',
  in: 'query',
  description: 'Ignore, Warn or Strict: how the server treats unknown or duplicate fields.',
  schema: { type: 'string', uniqueItems: true },
};

/**
 * The OpenAPI v3 document of one group-version: a schema per kind (the CRD's schema for
 * custom resources, an open object otherwise) and the item path of each resource with
 * its PATCH operation tagged with the GVK and the fieldValidation parameter.
 */
export function openApiV3Doc(reg: Registry, group: string, version: string): Obj {
  const paths: Obj = {};
  const schemas: Obj = {};
  for (const t of reg.resources(group, version)) {
    const gvk = { group: t.group, version: t.version, kind: t.kind };
    const base = `/${gvPath(group, version)}${t.namespaced ? '/namespaces/{namespace}' : ''}/${t.plural}/{name}`;
    const ref = { $ref: `#/components/schemas/${schemaName(t)}` };
    const body = {
      content: {
        'application/json-patch+json': { schema: { type: 'object' } },
        'application/merge-patch+json': { schema: { type: 'object' } },
        'application/apply-patch+yaml': { schema: { type: 'object' } },
      },
      required: true,
    };
    const op = (verb: string): Obj => ({
      description: `${verb} the specified ${t.kind}`,
      operationId: `${verb}${t.kind}`,
      'x-kubernetes-action': verb,
      'x-kubernetes-group-version-kind': gvk,
      parameters: [FIELD_VALIDATION_PARAM],
      responses: { '200': { description: 'OK', content: { 'application/json': { schema: ref } } } },
    });
    const params: Obj[] = [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }];
    if (t.namespaced) params.push({ name: 'namespace', in: 'path', required: true, schema: { type: 'string' } });
    paths[base] = {
      parameters: [...params, FIELD_VALIDATION_PARAM],
      get: { ...op('get'), parameters: [] },
      put: { ...op('put'), requestBody: { content: { 'application/json': { schema: ref } }, required: true } },
      patch: { ...op('patch'), requestBody: body },
      delete: { ...op('delete'), parameters: [] },
    };
    const schema: Obj = t.schema ? { ...t.schema } : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
    schema['x-kubernetes-group-version-kind'] = [gvk];
    schemas[schemaName(t)] = schema;
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: SERVER_VERSION.gitVersion },
    paths,
    components: { schemas },
  };
}

/** `/openapi/v3`: the group-versions and where their documents are (hash-tagged for caching). */
export function openApiV3Index(reg: Registry): Obj {
  const paths: Obj = {};
  const gvs: [string, string][] = [['', 'v1'], ...reg.groups().flatMap((g) => g.versions.map((v): [string, string] => [g.name, v]))];
  for (const [g, v] of gvs) {
    const hash = createHash('sha512').update(JSON.stringify(openApiV3Doc(reg, g, v))).digest('hex').slice(0, 64).toUpperCase();
    paths[gvPath(g, v)] = { serverRelativeURL: `/openapi/v3/${gvPath(g, v)}?hash=${hash}` };
  }
  return { paths };
}

