/**
 * Plain-JSON helpers shared by the lab API server. Objects travel as parsed JSON; these
 * helpers give typed access without pretending the wire data has a fixed shape.
 */

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The value at `v` as an object, or an empty object when it is not one. */
export function objAt(v: unknown): Obj {
  return isObj(v) ? v : {};
}

export function strAt(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function clone<T>(v: T): T {
  return structuredClone(v);
}

/** Structural equality of two JSON values (key order ignored). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

/** Object metadata with the fields the server reads; other fields pass through untouched. */
export interface Meta extends Obj {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
}

/** A Kubernetes object as the server stores it. */
export interface KObject extends Obj {
  apiVersion?: string;
  kind?: string;
  metadata: Meta;
}

/** `o.metadata`, created when missing so that callers can write into it. */
export function metaOf(o: Obj): Meta {
  if (!isObj(o.metadata)) o.metadata = {};
  return o.metadata as Meta;
}

/**
 * Reads a dotted field path (`spec.nodeName`, `metadata.labels.app`). Returns undefined
 * when any step is missing or not an object.
 */
export function getPath(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const part of path.split('.')) {
    if (!isObj(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

/** Time in the RFC 3339 form Kubernetes uses for timestamps (seconds precision, UTC). */
export function rfc3339(d: Date = new Date()): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
