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
 * - conflicts between managers are NOT detected (every apply behaves as with
 *   `--force-conflicts`), and non-apply writes record no ownership.
 */
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
      else if (Object.keys(oldSub).length > 0 && Object.keys(keptSub).length > 0) removeStale(target[name], oldSub, keptSub);
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
export function applyConfiguration(current: KObject | undefined, config: KObject, manager: string, schema: PatchSchema, apiVersion: string): KObject {
  const cfg = clone(config);
  delete metaOf(cfg).managedFields;
  const set = fieldSet(cfg, schema);
  const all = entries(current);
  const mine = all.find((e) => e.manager === manager && e.operation === 'Apply');
  const others = all.filter((e) => e !== mine);
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
