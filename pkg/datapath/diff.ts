/**
 * Desired-vs-applied diff at the level of map entries: the fewest upserts and deletes
 * that turn `applied` into `desired`. Pure.
 */
import type {
  CidrEntry, DatapathChange, DatapathState, EndpointEntry, IpcacheEntry, PolicyEntry,
} from './types.ts';

/** The map key of each entry kind, as a string: two entries with one key are one map slot. */
export const entryKey = {
  endpoints: (e: EndpointEntry) => `${e.ifindex}`,
  ipcache: (e: IpcacheEntry) => e.cidr,
  policy: (e: PolicyEntry) =>
    `${e.endpointId}/${e.direction}/${e.peer}/${e.protocol}/${e.port}-${e.endPort}`,
  cidrs: (e: CidrEntry) => `${e.endpointId}/${e.direction}/${e.cidr}`,
} as const;

type Kind = keyof typeof entryKey;
const kinds: Kind[] = ['endpoints', 'ipcache', 'policy', 'cidrs'];

function sameValue(a: object, b: object): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => (a as Record<string, unknown>)[k] === (b as Record<string, unknown>)[k]);
}

function diffKind<T extends object>(key: (e: T) => string, desired: T[], applied: T[]) {
  const have = new Map(applied.map((e) => [key(e), e]));
  const want = new Map(desired.map((e) => [key(e), e]));
  const upsert: T[] = [];
  const del: T[] = [];
  for (const [k, e] of want) {
    const cur = have.get(k);
    if (!cur || !sameValue(cur, e)) upsert.push(e);
  }
  for (const [k, e] of have) if (!want.has(k)) del.push(e);
  return { upsert, del };
}

export function diffState(desired: DatapathState, applied: DatapathState): DatapathChange {
  const change: DatapathChange = {
    upsert: { endpoints: [], ipcache: [], policy: [], cidrs: [] },
    delete: { endpoints: [], ipcache: [], policy: [], cidrs: [] },
  };
  for (const kind of kinds) {
    const { upsert, del } = diffKind(
      entryKey[kind] as (e: object) => string, desired[kind], applied[kind]);
    (change.upsert[kind] as object[]) = upsert;
    (change.delete[kind] as object[]) = del;
  }
  return change;
}

export function changeSize(c: DatapathChange): number {
  return kinds.reduce((n, k) => n + c.upsert[k].length + c.delete[k].length, 0);
}
