/**
 * The three patch formats of PATCH requests:
 * - JSON merge patch (RFC 7386, `application/merge-patch+json`);
 * - JSON patch (RFC 6902, `application/json-patch+json`);
 * - strategic merge patch (`application/strategic-merge-patch+json`), a subset of
 *   upstream's: maps merge recursively, `null` deletes a key, lists replace unless the
 *   field is declared mergeable in the kind's patch schema (by merge key, or as a set of
 *   primitives). Directives: `$patch: replace|delete|merge` on maps and list elements,
 *   `$retainKeys`, `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>` (see
 *   reorder()).
 * Each function returns a new document; the input is never modified.
 */
import { ApiError, badRequest } from './errors.ts';
import { clone, deepEqual, isObj, type Obj } from './json.ts';

/** `path -> merge key` for mergeable lists of objects, `path -> ''` for primitive sets. */
export type PatchSchema = Record<string, string>;

function patchFailed(message: string): ApiError {
  return new ApiError(422, 'Invalid', message);
}

// ---- RFC 7386 ----

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  const out: Obj = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// ---- RFC 6902 ----

function parsePointer(p: unknown): string[] {
  if (typeof p !== 'string') throw badRequest('json patch: path must be a string');
  if (p === '') return [];
  if (!p.startsWith('/')) throw patchFailed(`json patch: invalid pointer "${p}"`);
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: unknown, tokens: string[], op: string): { parent: unknown; last: string } {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObj(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw patchFailed(`${op} operation does not apply: doc is missing path: /${tokens.join('/')}`);
  }
  return { parent: cur, last: tokens[tokens.length - 1] as string };
}

function arrayIndex(a: unknown[], last: string, allowEnd: boolean, op: string): number {
  if (last === '-' && allowEnd) return a.length;
  if (!/^(0|[1-9][0-9]*)$/.test(last)) throw patchFailed(`${op} operation: invalid array index "${last}"`);
  const i = Number(last);
  if (i > a.length || (!allowEnd && i === a.length)) throw patchFailed(`${op} operation: array index ${i} out of bounds`);
  return i;
}

function getAt(doc: unknown, tokens: string[], op: string): unknown {
  let cur = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObj(cur) && Object.hasOwn(cur, t)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw patchFailed(`${op} operation does not apply: doc is missing path: /${tokens.join('/')}`);
  }
  return cur;
}

function addAt(doc: unknown, tokens: string[], value: unknown, op: string): unknown {
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true, op), 0, value);
  else if (isObj(parent)) parent[last] = value;
  else throw patchFailed(`${op} operation does not apply: doc is missing path: /${tokens.join('/')}`);
  return doc;
}

function removeAt(doc: unknown, tokens: string[], op: string): unknown {
  if (tokens.length === 0) throw patchFailed(`${op} operation: cannot remove the whole document`);
  const { parent, last } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, false, op), 1);
  else if (isObj(parent) && Object.hasOwn(parent, last)) delete parent[last];
  else throw patchFailed(`${op} operation does not apply: doc is missing path: /${tokens.join('/')}`);
  return doc;
}

/** Applies an RFC 6902 operation list; any failing operation fails the whole patch. */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('json patch: body must be an array of operations');
  let doc = clone(target);
  for (const raw of ops) {
    if (!isObj(raw)) throw badRequest('json patch: operation must be an object');
    const op = String(raw.op);
    const path = parsePointer(raw.path);
    switch (op) {
      case 'add':
        doc = addAt(doc, path, clone(raw.value), op);
        break;
      case 'remove':
        doc = removeAt(doc, path, op);
        break;
      case 'replace':
        getAt(doc, path, op);
        doc = path.length === 0 ? clone(raw.value) : addAt(removeAt(doc, path, op), path, clone(raw.value), op);
        break;
      case 'move': {
        const from = parsePointer(raw.from);
        const v = getAt(doc, from, op);
        doc = addAt(removeAt(doc, from, op), path, v, op);
        break;
      }
      case 'copy':
        doc = addAt(doc, path, clone(getAt(doc, parsePointer(raw.from), op)), op);
        break;
      case 'test':
        if (!deepEqual(getAt(doc, path, op), raw.value)) throw patchFailed(`testing value /${path.join('/')} failed`);
        break;
      default:
        throw badRequest(`json patch: unsupported operation "${op}"`);
    }
  }
  return doc;
}

// ---- strategic merge patch ----

const SET_ORDER = '$setElementOrder/';
const DELETE_PRIMITIVE = '$deleteFromPrimitiveList/';

/** Drops directive keys from a value that has no original to merge with. */
function stripDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((e) => !(isObj(e) && e.$patch === 'delete')).map(stripDirectives);
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith(SET_ORDER) || k.startsWith(DELETE_PRIMITIVE)) continue;
    if (x === null) continue;
    out[k] = stripDirectives(x);
  }
  return out;
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function smpMap(orig: Obj, patch: Obj, path: string, schema: PatchSchema): Obj | undefined {
  const directive = patch.$patch;
  if (directive === 'delete') return undefined;
  if (directive === 'replace') return stripDirectives(patch) as Obj;
  if (directive !== undefined && directive !== 'merge') throw badRequest(`strategic merge patch: unknown $patch directive "${String(directive)}"`);
  const out = clone(orig);
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith(SET_ORDER)) continue;
    if (k.startsWith(DELETE_PRIMITIVE)) {
      const field = k.slice(DELETE_PRIMITIVE.length);
      const cur = out[field];
      if (Array.isArray(v) && Array.isArray(cur)) out[field] = cur.filter((e) => !v.some((d) => deepEqual(d, e)));
      continue;
    }
    if (v === null) {
      delete out[k];
    } else if (isObj(v)) {
      const merged = smpMap(isObj(out[k]) ? (out[k] as Obj) : {}, v, join(path, k), schema);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else if (Array.isArray(v)) {
      out[k] = smpList(Array.isArray(out[k]) ? (out[k] as unknown[]) : [], v, join(path, k), schema);
    } else {
      out[k] = v;
    }
  }
  for (const [k, order] of Object.entries(patch)) {
    if (!k.startsWith(SET_ORDER) || !Array.isArray(order)) continue;
    const field = k.slice(SET_ORDER.length);
    if (Array.isArray(out[field])) out[field] = reorder(out[field] as unknown[], order, schema[join(path, field)]);
  }
  if (Array.isArray(patch.$retainKeys)) {
    const keep = new Set(patch.$retainKeys.map(String));
    for (const k of Object.keys(out)) if (!keep.has(k)) delete out[k];
  }
  return out;
}

/**
 * `$setElementOrder`: elements named in `order` come first, in that order; elements it
 * does not name (added by someone else) follow in their previous relative order.
 * Upstream interleaves those by their old neighbours; this is the simpler rule.
 */
function reorder(list: unknown[], order: unknown[], key: string | undefined): unknown[] {
  if (key === undefined) return list;
  const id = (e: unknown): unknown => (key === '' ? e : isObj(e) ? e[key] : undefined);
  const wanted = order.map((o) => (key === '' ? o : isObj(o) ? o[key] : undefined));
  const first: unknown[] = [];
  for (const w of wanted) {
    const e = list.find((x) => deepEqual(id(x), w));
    if (e !== undefined && !first.includes(e)) first.push(e);
  }
  return [...first, ...list.filter((e) => !first.includes(e))];
}

function smpList(orig: unknown[], patch: unknown[], path: string, schema: PatchSchema): unknown[] {
  if (patch.some((e) => isObj(e) && e.$patch === 'replace')) {
    return patch.filter((e) => !(isObj(e) && e.$patch === 'replace')).map(stripDirectives);
  }
  const key = schema[path];
  if (key === undefined) return stripDirectives(patch) as unknown[];
  if (key === '') {
    const out = clone(orig);
    for (const e of patch) if (!out.some((o) => deepEqual(o, e))) out.push(clone(e));
    return out;
  }
  const out = clone(orig);
  for (const e of patch) {
    if (!isObj(e)) throw badRequest(`strategic merge patch: ${path}: element is not an object`);
    if (!Object.hasOwn(e, key)) throw badRequest(`strategic merge patch: ${path}: element does not contain declared merge key "${key}"`);
    const at = out.findIndex((o) => isObj(o) && deepEqual(o[key], e[key]));
    if (e.$patch === 'delete') {
      if (at >= 0) out.splice(at, 1);
      continue;
    }
    const merged = smpMap(at >= 0 ? (out[at] as Obj) : {}, e, `${path}[]`, schema);
    if (at >= 0) {
      if (merged === undefined) out.splice(at, 1);
      else out[at] = merged;
    } else if (merged !== undefined) out.push(merged);
  }
  return out;
}

/** Applies a strategic merge patch under `schema` (see the module comment). */
export function strategicMergePatch(target: unknown, patch: unknown, schema: PatchSchema): unknown {
  if (!isObj(patch)) throw badRequest('strategic merge patch: body must be a JSON object');
  const out = smpMap(isObj(target) ? target : {}, patch, '', schema);
  return out ?? {};
}

/** Merge keys shared by every kind (object metadata). */
const META_SCHEMA: PatchSchema = {
  'metadata.finalizers': '',
  'metadata.ownerReferences': 'uid',
  'status.conditions': 'type',
};

const CONTAINER_FIELDS: PatchSchema = {
  ports: 'containerPort',
  env: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
};

function containers(prefix: string): PatchSchema {
  const out: PatchSchema = { [prefix]: 'name' };
  for (const [f, k] of Object.entries(CONTAINER_FIELDS)) out[`${prefix}[].${f}`] = k;
  return out;
}

/**
 * Patch schemas per kind, from the `patchStrategy`/`patchMergeKey` tags of the upstream
 * Go types for the fields Palisade and kubectl touch. Lists not named here replace.
 */
export const PATCH_SCHEMAS: Record<string, PatchSchema> = {
  Pod: {
    ...META_SCHEMA,
    ...containers('spec.containers'),
    ...containers('spec.initContainers'),
    ...containers('spec.ephemeralContainers'),
    'spec.volumes': 'name',
    'spec.imagePullSecrets': 'name',
    'spec.hostAliases': 'ip',
    'spec.readinessGates': 'conditionType',
    'status.podIPs': 'ip',
    'status.hostIPs': 'ip',
  },
  Service: { ...META_SCHEMA, 'spec.ports': 'port' },
  Node: { ...META_SCHEMA, 'status.addresses': 'type', 'spec.podCIDRs': '' },
  Namespace: { ...META_SCHEMA, 'spec.finalizers': '' },
  NetworkPolicy: META_SCHEMA,
  EndpointSlice: META_SCHEMA,
  Event: META_SCHEMA,
  ConfigMap: META_SCHEMA,
  Lease: META_SCHEMA,
  CustomResourceDefinition: META_SCHEMA,
};
