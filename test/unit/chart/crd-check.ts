/**
 * Offline checks for CustomResourceDefinitions, so a CRD that a real API server would
 * reject (non-structural schema, misused x-kubernetes-* extensions, printer columns that
 * point nowhere) fails a unit test here, where no kube-apiserver exists.
 *
 * `structuralErrors` follows the rules in the Kubernetes documentation "Specifying a
 * structural schema" (apiextensions.k8s.io/v1). `validateValue` is a small OpenAPI v3
 * value validator covering the keywords our CRDs use, to show what a CRD accepts.
 */

/** The subset of an OpenAPI v3 schema node our CRDs use (plus anything else, to flag). */
export interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  anyOf?: Schema[];
  allOf?: Schema[];
  oneOf?: Schema[];
  not?: Schema;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxItems?: number;
  format?: string;
  nullable?: boolean;
  default?: unknown;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: string;
  [k: string]: unknown;
}

const KNOWN_KEYS = new Set([
  'type', 'description', 'properties', 'additionalProperties', 'items', 'required', 'enum',
  'anyOf', 'allOf', 'oneOf', 'not', 'minimum', 'maximum', 'minLength', 'maxLength',
  'maxItems', 'minItems', 'format', 'nullable', 'default', 'pattern',
  'x-kubernetes-int-or-string', 'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type',
  'x-kubernetes-embedded-resource', 'x-kubernetes-validations',
]);
const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);
const SCALARS = new Set(['string', 'integer', 'number', 'boolean']);

function isIntOrStringPattern(list: Schema[] | undefined): boolean {
  if (!list || list.length !== 2) return false;
  const types = list.map((s) => s.type).sort();
  return types[0] === 'integer' && types[1] === 'string' &&
    list.every((s) => Object.keys(s).length === 1);
}

/** Everything that makes `schema` non-structural or misuses an extension, as `path: reason`. */
export function structuralErrors(schema: Schema, path = '$'): string[] {
  const errs: string[] = [];
  const err = (m: string) => errs.push(`${path}: ${m}`);

  for (const k of Object.keys(schema)) if (!KNOWN_KEYS.has(k)) err(`unknown keyword ${k}`);

  const intOrString = schema['x-kubernetes-int-or-string'] === true;
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  if (intOrString) {
    if (schema.type !== undefined) err('x-kubernetes-int-or-string must not set type');
    const junctor = schema.anyOf ?? schema.allOf;
    if (junctor && !isIntOrStringPattern(junctor)) {
      err('x-kubernetes-int-or-string allows only anyOf [{type: integer}, {type: string}]');
    }
  } else if (schema.type === undefined) {
    if (!preserve) err('missing type');
  } else if (!TYPES.has(schema.type)) {
    err(`bad type ${schema.type}`);
  }

  for (const j of ['anyOf', 'allOf', 'oneOf'] as const) {
    const list = schema[j];
    if (!list) continue;
    if (intOrString && j !== 'oneOf' && isIntOrStringPattern(list)) continue;
    list.forEach((s, i) => errs.push(...junctorErrors(s, `${path}.${j}[${i}]`)));
  }
  if (schema.not) errs.push(...junctorErrors(schema.not, `${path}.not`));

  if (schema.properties && schema.additionalProperties !== undefined) {
    err('properties and additionalProperties are mutually exclusive');
  }
  if (schema.additionalProperties === false) err('additionalProperties: false is not allowed');
  if ((schema.properties || typeof schema.additionalProperties === 'object') &&
      schema.type !== 'object') err('properties on a non-object');
  if (schema.items && schema.type !== 'array') err('items on a non-array');
  if (schema.type === 'array' && !schema.items) err('array without items');

  for (const r of schema.required ?? []) {
    if (!schema.properties?.[r]) err(`required field ${r} is not a property`);
  }

  const listType = schema['x-kubernetes-list-type'];
  if (listType !== undefined) {
    if (schema.type !== 'array') err('x-kubernetes-list-type on a non-array');
    if (!['atomic', 'set', 'map'].includes(listType)) err(`bad x-kubernetes-list-type ${listType}`);
    if (listType === 'set' && !SCALARS.has(schema.items?.type ?? '')) {
      err('x-kubernetes-list-type set needs scalar items');
    }
    if (listType === 'map') {
      const keys = schema['x-kubernetes-list-map-keys'] ?? [];
      if (keys.length === 0) err('x-kubernetes-list-type map needs x-kubernetes-list-map-keys');
      if (schema.items?.type !== 'object') err('x-kubernetes-list-type map needs object items');
      for (const key of keys) {
        const p = schema.items?.properties?.[key];
        if (!p) err(`list-map key ${key} is not an item property`);
        else if (!SCALARS.has(p.type ?? '')) err(`list-map key ${key} must be scalar`);
        if (!(schema.items?.required ?? []).includes(key) && p?.default === undefined) {
          err(`list-map key ${key} must be required or defaulted`);
        }
      }
    }
  }
  if (schema['x-kubernetes-list-map-keys'] !== undefined && listType !== 'map') {
    err('x-kubernetes-list-map-keys without x-kubernetes-list-type map');
  }
  const mapType = schema['x-kubernetes-map-type'];
  if (mapType !== undefined) {
    if (schema.type !== 'object') err('x-kubernetes-map-type on a non-object');
    if (!['atomic', 'granular'].includes(mapType)) err(`bad x-kubernetes-map-type ${mapType}`);
  }

  for (const [name, p] of Object.entries(schema.properties ?? {})) {
    errs.push(...structuralErrors(p, `${path}.${name}`));
  }
  if (typeof schema.additionalProperties === 'object') {
    errs.push(...structuralErrors(schema.additionalProperties, `${path}.*`));
  }
  if (schema.items) errs.push(...structuralErrors(schema.items, `${path}[]`));
  return errs;
}

/** Inside allOf/anyOf/oneOf/not only value validations may appear (no type, description...). */
function junctorErrors(s: Schema, path: string): string[] {
  const banned = ['type', 'description', 'default', 'additionalProperties', 'nullable',
    'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string'];
  return banned.filter((k) => k in s).map((k) => `${path}: ${k} is not allowed inside a junctor`);
}

/** The root schema rules: metadata may constrain only name/generateName. */
export function rootErrors(root: Schema): string[] {
  const errs: string[] = [];
  if (root.type !== 'object') errs.push('$: root must be type object');
  const meta = root.properties?.metadata;
  if (meta) {
    const extra = Object.keys(meta).filter((k) => k !== 'type' && k !== 'properties');
    if (extra.length > 0) errs.push(`$.metadata: only type/properties allowed, got ${extra.join(',')}`);
    for (const k of Object.keys(meta.properties ?? {})) {
      if (k !== 'name' && k !== 'generateName') errs.push(`$.metadata.${k}: not allowed`);
    }
  }
  return errs;
}

/** Resolves a printer column's simple JSONPath (`.a.b`) against the schema. */
export function jsonPathInSchema(root: Schema, jsonPath: string): boolean {
  if (jsonPath === '.metadata.creationTimestamp' || jsonPath === '.metadata.name' ||
      jsonPath === '.metadata.namespace') return true;
  if (!/^(\.[A-Za-z][A-Za-z0-9]*)+$/.test(jsonPath)) return false;
  let node: Schema | undefined = root;
  for (const part of jsonPath.slice(1).split('.')) {
    node = node?.properties?.[part];
    if (!node) return false;
  }
  return true;
}

/**
 * Validates `value` against `schema` the way the API server would for the keywords above.
 * Returns `path: reason` strings; empty when valid. Unknown fields are reported as the
 * API server would prune them (reported here so tests can see typos).
 */
export function validateValue(schema: Schema, value: unknown, path = '$'): string[] {
  const errs: string[] = [];
  const err = (m: string) => errs.push(`${path}: ${m}`);
  if (schema['x-kubernetes-int-or-string']) {
    if (!(Number.isInteger(value) || typeof value === 'string')) err('must be an integer or a string');
    return errs;
  }
  switch (schema.type) {
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        err('must be an object');
        return errs;
      }
      const obj = value as Record<string, unknown>;
      for (const r of schema.required ?? []) if (!(r in obj)) err(`${r} is required`);
      for (const [k, v] of Object.entries(obj)) {
        const p = schema.properties?.[k] ??
          (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
        if (p) errs.push(...validateValue(p, v, `${path}.${k}`));
        else if (schema.properties && !schema['x-kubernetes-preserve-unknown-fields']) {
          err(`unknown field ${k}`);
        }
      }
      break;
    }
    case 'array':
      if (!Array.isArray(value)) { err('must be an array'); return errs; }
      if (schema.maxItems !== undefined && value.length > schema.maxItems) err(`at most ${schema.maxItems} items`);
      value.forEach((v, i) => { if (schema.items) errs.push(...validateValue(schema.items, v, `${path}[${i}]`)); });
      break;
    case 'string':
      if (typeof value !== 'string') { err('must be a string'); return errs; }
      if (schema.minLength !== undefined && value.length < schema.minLength) err(`at least ${schema.minLength} characters`);
      break;
    case 'integer':
      if (!Number.isInteger(value)) { err('must be an integer'); return errs; }
      break;
    case 'boolean':
      if (typeof value !== 'boolean') err('must be a boolean');
      break;
  }
  if (schema.enum && !schema.enum.includes(value)) err(`must be one of ${schema.enum.join(', ')}`);
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) err(`must be >= ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) err(`must be <= ${schema.maximum}`);
  }
  return errs;
}
