/**
 * The pinned maps as the Linux datapath opens them: their expected shapes (from the
 * codec), opening with a shape check, and the read/write loops over `RawMap`.
 */
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { createMapRef, MapType, objGet, type MapRef, type RawMap } from 'bpf';
import { layouts, mapNames } from '../codec.ts';
import { runOk } from './exec.ts';

export type MapName = keyof typeof mapNames;

/** Expected type and key/value sizes of every map (checked whenever a pin is opened). */
export const mapShapes: Record<MapName, [MapType, number, number]> = {
  endpoints: [MapType.HASH, layouts.endpoint_key.size, layouts.endpoint_value.size],
  ipcache: [MapType.LPM_TRIE, layouts.ipcache_key.size, layouts.ipcache_value.size],
  policy: [MapType.LPM_TRIE, layouts.policy_key.size, layouts.policy_value.size],
  cidrs: [MapType.LPM_TRIE, layouts.cidr_key.size, layouts.cidr_value.size],
  conntrack: [MapType.LRU_HASH, layouts.ct_key.size, layouts.ct_value.size],
  fragments: [MapType.LRU_HASH, layouts.frag_key.size, layouts.frag_value.size],
  events: [MapType.QUEUE, 0, layouts.flow_event.size],
  counters: [MapType.PERCPU_ARRAY, 4, 8],
  config: [MapType.ARRAY, 4, layouts.config_value.size],
};

export const allMaps = Object.keys(mapNames) as MapName[];

/**
 * Opens the pinned map `name` under `mapsDir` and checks its shape. A pin of another
 * layout is refused with the fix in the message, never read with the wrong codec.
 */
export function openPinned(mapsDir: string, name: MapName, removeHint: string): MapRef {
  const pin = join(mapsDir, mapNames[name]);
  let ref: MapRef;
  try {
    ref = createMapRef(objGet(pin), { transfer: true });
  } catch (e) {
    throw new Error(`opening map ${pin}: ${(e as Error).message}`, { cause: e });
  }
  const [t, k, v] = mapShapes[name];
  if (ref.type !== t || ref.keySize !== k || ref.valueSize !== v) {
    ref.close();
    throw new Error(`map ${pin} has type/key/value ${ref.type}/${ref.keySize}/${ref.valueSize}, ` +
      `this build expects ${t}/${k}/${v} (pins of another version: detach pods and remove ${removeHint})`);
  }
  return ref;
}

/** Checks the shape of every map already pinned under `mapsDir` (missing ones are fine). */
export function checkPinnedShapes(mapsDir: string, removeHint: string): void {
  for (const name of allMaps) {
    if (existsSync(join(mapsDir, mapNames[name]))) openPinned(mapsDir, name, removeHint).close();
  }
}

/** Batch update when the map type has it (hash), one by one otherwise (LPM trie). */
export function setMany(m: RawMap, entries: [Buffer, Buffer][]): void {
  if (entries.length === 0) return;
  if (entries.length > 1) {
    try {
      m.setBatch(entries);
      return;
    } catch {
      // Not supported for this map type: fall through to single updates.
    }
  }
  for (const [k, v] of entries) m.set(k, v);
}

/** Deletes; a key that is already gone is not an error (apply is idempotent). */
export function deleteMany(m: RawMap, keys: Buffer[]): void {
  for (const k of keys) m.delete(k);
}

export function* readAll(m: RawMap): Generator<[Buffer, Buffer]> {
  for (const [k, v] of m.entries()) yield [Buffer.from(k), Buffer.from(v)];
}

/** Mounts bpffs at `root` unless `root` already is on a bpffs. */
export async function ensureBpffs(root: string): Promise<void> {
  // The mount point itself or a directory inside one: nothing to do.
  const BPF_FS_MAGIC = 0xcafe4a11;
  const st = await fs.statfs(root).catch(() => undefined);
  if (st && Number(st.type) === BPF_FS_MAGIC) return;
  await fs.mkdir(root, { recursive: true });
  await runOk(`mounting bpffs at ${root}`, 'mount', ['-t', 'bpf', 'bpf', root]);
}
