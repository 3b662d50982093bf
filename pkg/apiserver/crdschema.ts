/**
 * Structural-schema handling for custom resources, the subset of what the real server does
 * with a CRD version's openAPIV3Schema that clients can observe: unknown fields are pruned
 * (unless `x-kubernetes-preserve-unknown-fields`), nulls in non-nullable fields are
 * dropped, `default`s are filled in, and `type`,
 * `required`, `enum`, `minimum`/`maximum`, `pattern`, `minItems`/`maxItems` and
 * `x-kubernetes-int-or-string` are checked. CEL rules (`x-kubernetes-validations`),
 * formats and list-type uniqueness are not evaluated.
 */
import { cause, type StatusCause } from './errors.ts';
import { clone, isObj, type KObject, type Obj } from './json.ts';
import type { ResourceType } from './registry.ts';

const ROOT_KEEP = new Set(['apiVersion', 'kind', 'metadata']);

function typeOk(schema: Obj, v: unknown): boolean {
  if (schema['x-kubernetes-int-or-string'] === true) return typeof v === 'string' || Number.isInteger(v);
  switch (schema.type) {
    case 'object':
      return isObj(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    default:
      return true;
  }
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  if (Number.isInteger(v)) return 'integer';
  return typeof v === 'object' ? 'object' : typeof v;
}

/** Prunes and defaults `v` in place (objects) and returns the causes found under `path`. */
function walk(schema: Obj, v: unknown, path: string, out: StatusCause[], root: boolean, pruned: string[]): void {
  if (v === null) {
    if (schema.nullable !== true) out.push(cause.typeInvalid(path, v, `must be of type ${String(schema.type ?? 'object')}`));
    return;
  }
  if (!typeOk(schema, v)) {
    out.push(cause.typeInvalid(path, v, `must be of type ${String(schema.type)}; got ${typeName(v)}`));
    return;
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => e === v)) {
    out.push(cause.notSupported(path, v, schema.enum.map(String)));
  }
  if (typeof v === 'number') {
    if (typeof schema.minimum === 'number' && v < schema.minimum) out.push(cause.invalid(path, v, `should be greater than or equal to ${schema.minimum}`));
    if (typeof schema.maximum === 'number' && v > schema.maximum) out.push(cause.invalid(path, v, `should be less than or equal to ${schema.maximum}`));
  }
  if (typeof v === 'string') {
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(v)) out.push(cause.invalid(path, v, `should match '${schema.pattern}'`));
    if (typeof schema.maxLength === 'number' && v.length > schema.maxLength) out.push(cause.invalid(path, v, `may not be more than ${schema.maxLength} characters`));
    if (typeof schema.minLength === 'number' && v.length < schema.minLength) out.push(cause.invalid(path, v, `should be at least ${schema.minLength} chars long`));
  }
  if (Array.isArray(v)) {
    if (typeof schema.maxItems === 'number' && v.length > schema.maxItems) out.push(cause.invalid(path, v.length, `must have at most ${schema.maxItems} items`));
    if (typeof schema.minItems === 'number' && v.length < schema.minItems) out.push(cause.invalid(path, v.length, `should have at least ${schema.minItems} items`));
    if (isObj(schema.items)) v.forEach((e, i) => walk(schema.items as Obj, e, `${path}[${i}]`, out, false, pruned));
    return;
  }
  if (!isObj(v)) return;
  const props = isObj(schema.properties) ? schema.properties : undefined;
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  const additional = isObj(schema.additionalProperties) ? schema.additionalProperties : undefined;
  if (props) {
    for (const [k, ps] of Object.entries(props)) {
      if (!isObj(ps)) continue;
      // Upstream prunes a null in a field that is not nullable, then defaults it.
      if (v[k] === null && ps.nullable !== true) delete v[k];
      if (v[k] === undefined && ps.default !== undefined) v[k] = clone(ps.default);
    }
  }
  for (const k of Object.keys(v)) {
    if (root && ROOT_KEEP.has(k)) continue;
    const sub = props && isObj(props[k]) ? (props[k] as Obj) : additional;
    const field = path ? `${path}.${k}` : k;
    if (sub) walk(sub, v[k], field, out, false, pruned);
    else if (!preserve && schema.additionalProperties !== true && (props || schema.type === 'object')) {
      delete v[k];
      pruned.push(field);
    }
  }
  if (Array.isArray(schema.required)) {
    for (const r of schema.required) {
      if (typeof r === 'string' && v[r] === undefined) out.push(cause.required(path ? `${path}.${r}` : r));
    }
  }
}

/**
 * Prunes, defaults and validates a custom resource against its version's schema (in
 * place). Returns the causes of a 422 (empty when the object is acceptable) and the
 * paths of the pruned fields (for `fieldValidation=Strict|Warn`).
 */
export function validateCustomResource(t: ResourceType, o: KObject): { causes: StatusCause[]; pruned: string[] } {
  const causes: StatusCause[] = [];
  const pruned: string[] = [];
  if (t.schema) walk(t.schema, o, '', causes, true, pruned);
  return { causes, pruned };
}
