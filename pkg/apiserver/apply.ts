/**
 * Server-side apply (`PATCH` with `application/apply-patch+yaml`), a subset of upstream's:
 *
 * - each field manager's applied fields are recorded in `metadata.managedFields` (an
 *   `operation: Apply` entry in the FieldsV1 format: `f:<field>`, `k:{<merge key>}` for
 *   elements of keyed lists, `v:<value>` for set-like lists of primitives);
 * - applying merges the configuration into the live object (strategic-merge rules for
 *   built-in kinds, maps merge and lists replace for custom resources);
 * - fields the same manager applied before and no longer applies are removed, unless
 *   another manager's apply still owns them;
 * - a field another manager's apply owns and this configuration sets to a different
 *   value is a 409 Conflict (`Apply failed with N conflicts: ...`), unless `force` is set,
 *   which moves the field to this manager;
 * - non-apply writes (PUT, other patches) record no ownership, so they never cause
 *   conflicts (upstream would report conflicts with their managers too).
 */
import { ApiError, type StatusCause } from './errors.ts';
import { clone, deepEqual, isObj, metaOf, rfc3339, type KObject, type Obj } from './json.ts';
import { strategicMergePatch, type PatchSchema } from './patch.ts';

/** Fields apply does not take ownership of (identity and server-owned metadata). */
const UNTRACKED = new Set(['apiVersion', 'kind', 'metadata.name', 'metadata.namespace', 'metadata.resourceVersion',
  'metadata.managedFields', 'metadata.uid', 'metadata.creationTimestamp', 'metadata.generation']);

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** The FieldsV1 set of an apply configuration. */
export function fieldSet(v: unknown, schema: PatchSchema, path = ''): Obj {
  const out: Obj = {};
  if (!isObj(v)) return out;
  for (const [k, x] of Object.entries(v)) {
    const p = join(path, k);
    if (UNTRACKED.has(p) || x === null || x === undefined) continue;
    if (isObj(x)) {
      out[`f:${k}`] = fieldSet(x, schema, p);
    } else if (Array.isArray(x)) {
      const key = schema[p];
      if (key === '') {
        const set: Obj = {};
        for (const e of x) set[`v:${JSON.stringify(e)}`] = {};
        out[`f:${k}`] = set;
      } else if (key) {
        const set: Obj = {};
        for (const e of x) {
          if (!isObj(e) || e[key] === undefined) continue;
          set[`k:${JSON.stringify({ [key]: e[key] })}`] = { '.': {}, ...fieldSet(e, schema, `${p}[]`) };
        }
        out[`f:${k}`] = set;
      } else {
        out[`f:${k}`] = {};
      }
    } else {
      out[`f:${k}`] = {};
    }
  }
  return out;
}

function union(sets: Obj[]): Obj {
  const out: Obj = {};
  for (const s of sets) {
    for (const [k, v] of Object.entries(s)) {
      out[k] = isObj(out[k]) && isObj(v) ? union([out[k] as Obj, v]) : isObj(v) ? clone(v) : {};
    }
  }
  return out;
}

/** Removes from `target` what `old` owned and neither `keep` set owns any longer. */
function removeStale(target: unknown, old: Obj, keep: Obj): void {
  for (const [k, sub] of Object.entries(old)) {
    if (k === '.') continue;
    const kept = keep[k];
    const oldSub = isObj(sub) ? sub : {};
    const keptSub = isObj(kept) ? kept : undefined;
    if (k.startsWith('f:') && isObj(target)) {
      const name = k.slice(2);
      if (!keptSub) delete target[name];
      // Still kept, but maybe only as a (map) field: sub-fields only `old` owned go.
      else if (Object.keys(oldSub).length > 0) removeStale(target[name], oldSub, keptSub);
    } else if ((k.startsWith('k:') || k.startsWith('v:')) && Array.isArray(target)) {
      const want: unknown = JSON.parse(k.slice(2));
      const at = k.startsWith('k:')
        ? target.findIndex((e) => isObj(e) && isObj(want) && Object.entries(want).every(([wk, wv]) => deepEqual(e[wk], wv)))
        : target.findIndex((e) => deepEqual(e, want));
      if (at < 0) continue;
      if (!keptSub) target.splice(at, 1);
      else removeStale(target[at], oldSub, keptSub);
    }
  }
}

/** Paths (as lists of FieldsV1 keys) of the leaf fields of a set. */
function leaves(set: Obj, prefix: string[] = []): string[][] {
  const out: string[][] = [];
  for (const [k, v] of Object.entries(set)) {
    if (k === '.' || k.startsWith('v:')) continue;
    const sub = isObj(v) ? v : {};
    const children = Object.keys(sub).filter((c) => c !== '.');
    if (children.length === 0) out.push([...prefix, k]);
    else out.push(...leaves(sub, [...prefix, k]));
  }
  return out;
}

/** True when `set` owns the leaf at `path` itself (not only fields below it). */
function owns(set: Obj, path: string[]): boolean {
  let cur: unknown = set;
  for (const k of path) {
    if (!isObj(cur) || !Object.hasOwn(cur, k)) return false;
    cur = cur[k];
  }
  return isObj(cur) && Object.keys(cur).every((k) => k === '.');
}

/** Removes a leaf from a set, and parents the removal leaves empty. */
function disown(set: Obj, path: string[]): void {
  const [head, ...rest] = path;
  if (head === undefined || !isObj(set[head])) return;
  if (rest.length === 0) {
    delete set[head];
    return;
  }
  const sub = set[head] as Obj;
  disown(sub, rest);
  if (Object.keys(sub).filter((k) => k !== '.').length === 0) delete set[head];
}

function valueAt(o: unknown, path: string[]): unknown {
  let cur = o;
  for (const k of path) {
    if (k.startsWith('f:')) cur = isObj(cur) ? cur[k.slice(2)] : undefined;
    else if (k.startsWith('k:') && Array.isArray(cur)) {
      const want = JSON.parse(k.slice(2)) as Obj;
      cur = cur.find((e) => isObj(e) && Object.entries(want).every(([wk, wv]) => deepEqual(e[wk], wv)));
    } else cur = undefined;
    if (cur === undefined) return undefined;
  }
  return cur;
}

/** `.spec.containers[name="c"].image`, as upstream prints field paths in conflicts. */
function pathString(path: string[]): string {
  return path
    .map((k) => {
      if (k.startsWith('f:')) return `.${k.slice(2)}`;
      const o = JSON.parse(k.slice(2)) as Obj;
      return `[${Object.entries(o).map(([ok, ov]) => `${ok}=${JSON.stringify(ov)}`).join(',')}]`;
    })
    .join('');
}

interface ManagedFieldsEntry extends Obj {
  manager: string;
  operation: string;
  fieldsV1?: Obj;
}

function entries(o: KObject | undefined): ManagedFieldsEntry[] {
  const mf = o?.metadata.managedFields;
  return Array.isArray(mf) ? (mf.filter((e) => isObj(e) && typeof e.manager === 'string') as ManagedFieldsEntry[]) : [];
}

/**
 * The object that results from `manager` applying `config` to `current` (undefined:
 * the object does not exist yet). The caller stores it with the usual create/update rules.
 */
export function applyConfiguration(
  current: KObject | undefined,
  config: KObject,
  manager: string,
  schema: PatchSchema,
  apiVersion: string,
  force = false,
): KObject {
  const cfg = clone(config);
  delete metaOf(cfg).managedFields;
  const set = fieldSet(cfg, schema);
  const all = clone(entries(current));
  const mine = all.find((e) => e.manager === manager && e.operation === 'Apply');
  const others = all.filter((e) => e !== mine);
  if (current) {
    const causes: StatusCause[] = [];
    for (const other of others) {
      if (other.operation !== 'Apply' || !isObj(other.fieldsV1)) continue;
      for (const path of leaves(set)) {
        const want = valueAt(cfg, path);
        // Maps are never atomic here: an empty map in the configuration claims nothing.
        if (isObj(want) || !owns(other.fieldsV1, path) || deepEqual(valueAt(current, path), want)) continue;
        if (force) disown(other.fieldsV1, path);
        else causes.push({ reason: 'FieldManagerConflict', message: `conflict with "${other.manager}"`, field: pathString(path) });
      }
    }
    if (causes.length > 0) {
      const list = causes.map((c) => `${c.message}: ${c.field}`).join('\n');
      const n = causes.length === 1 ? '1 conflict' : `${causes.length} conflicts`;
      throw new ApiError(409, 'Conflict', `Apply failed with ${n}: ${list}`, { causes });
    }
  }
  let result: KObject;
  if (!current) {
    result = cfg;
  } else {
    const base = clone(current);
    if (mine && isObj(mine.fieldsV1)) {
      const othersApplied = union(others.filter((e) => e.operation === 'Apply').map((e) => (isObj(e.fieldsV1) ? e.fieldsV1 : {})));
      removeStale(base, mine.fieldsV1, union([set, othersApplied]));
    }
    result = strategicMergePatch(base, cfg, schema) as KObject;
  }
  metaOf(result).managedFields = [
    ...others,
    { manager, operation: 'Apply', apiVersion, time: rfc3339(), fieldsType: 'FieldsV1', fieldsV1: set },
  ];
  return result;
}
