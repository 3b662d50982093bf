/**
 * The service maps of bpf/lib/service.h as the Linux datapath drives them: opened from
 * their pins (shape-checked), written from a ServiceTable plan, read back for a restart,
 * and the per-CPU counters summed through the helper.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createMapRef, MapType, objGet, RawMap, type MapRef } from 'bpf';
import { DatapathError } from '../codec.ts';
import {
  decodeNat, serviceCounterSlots, serviceLayouts, serviceMapNames, ServiceTable, type NatEntry,
} from '../service-codec.ts';
import type { ServiceCounters, ServiceEntry } from '../types.ts';
import { runOk } from './exec.ts';
import { deleteMany, readAll, setMany } from './maps.ts';

type ServiceMapName = keyof typeof serviceMapNames;

const shapes: Record<ServiceMapName, [MapType, number, number]> = {
  frontends: [MapType.HASH, serviceLayouts.svc_key.size, serviceLayouts.svc_value.size],
  backends: [MapType.HASH, 4, serviceLayouts.svc_backend.size],
  nat: [MapType.LRU_HASH, serviceLayouts.svc_nat_key.size, serviceLayouts.svc_nat_value.size],
  affinity: [MapType.LRU_HASH, serviceLayouts.svc_affinity_key.size, serviceLayouts.svc_affinity_value.size],
  frags: [MapType.LRU_HASH, serviceLayouts.svc_frag_key.size, serviceLayouts.svc_frag_value.size],
  counters: [MapType.PERCPU_ARRAY, 4, 8],
};

export const ERR_SERVICES = 'PAL_DATAPATH_SERVICES';

export class LinuxServiceMaps {
  readonly #mapsDir: string;
  readonly #refs = new Map<ServiceMapName, MapRef>();
  readonly #maps = new Map<ServiceMapName, RawMap>();
  #table = new ServiceTable();

  constructor(mapsDir: string) {
    this.#mapsDir = mapsDir;
  }

  /** Opens every pin and rebuilds the applied table from the maps. */
  open(): void {
    this.close();
    try {
      for (const name of Object.keys(serviceMapNames) as ServiceMapName[]) {
        const pin = join(this.#mapsDir, serviceMapNames[name]);
        if (!existsSync(pin)) throw new Error(`map ${pin} missing (programs older than this build: reload them)`);
        const ref = createMapRef(objGet(pin), { transfer: true });
        this.#refs.set(name, ref);
        const [t, k, v] = shapes[name];
        if (ref.type !== t || ref.keySize !== k || ref.valueSize !== v) {
          throw new Error(`map ${pin} has type/key/value ${ref.type}/${ref.keySize}/${ref.valueSize}, expected ${t}/${k}/${v}`);
        }
        if (name !== 'counters') this.#maps.set(name, new RawMap(ref));
      }
    } catch (e) {
      this.close();
      throw new DatapathError(ERR_SERVICES, `opening service maps: ${(e as Error).message}`, { cause: e });
    }
    this.#table = ServiceTable.fromMaps(readAll(this.#map('frontends')), readAll(this.#map('backends')));
  }

  close(): void {
    for (const r of this.#refs.values()) {
      try { r.close(); } catch { /* already closed */ }
    }
    this.#refs.clear();
    this.#maps.clear();
  }

  #map(name: ServiceMapName): RawMap {
    const m = this.#maps.get(name);
    if (!m) throw new DatapathError(ERR_SERVICES, 'service maps not open');
    return m;
  }

  /** Makes the frontends exactly `desired` (add before delete). */
  apply(desired: readonly ServiceEntry[]): void {
    const { writes, commit } = this.#table.plan(desired);
    try {
      setMany(this.#map('backends'), writes.backendsSet);
      setMany(this.#map('frontends'), writes.frontendsSet);
      deleteMany(this.#map('frontends'), writes.frontendsDelete);
      deleteMany(this.#map('backends'), writes.backendsDelete);
    } catch (e) {
      // Part of it may be in: the kernel's view is the truth for the next plan.
      this.#table = ServiceTable.fromMaps(readAll(this.#map('frontends')), readAll(this.#map('backends')));
      throw new DatapathError(ERR_SERVICES, `applying services: ${(e as Error).message}`, { cause: e });
    }
    commit();
  }

  entries(): ServiceEntry[] {
    return this.#table.entries();
  }

  nat(): NatEntry[] {
    return [...readAll(this.#map('nat'))].map(([k, v]) => decodeNat(k, v));
  }

  /** Sums the per-CPU counters through the helper (the `bpf` package cannot). */
  async counters(helper: string): Promise<ServiceCounters> {
    const out = await runOk('reading service counters', helper,
      ['counters', join(this.#mapsDir, serviceMapNames.counters)]);
    const slots = out.trim().split('\n').map(Number);
    const c = {} as ServiceCounters;
    serviceCounterSlots.forEach((name, i) => { c[name] = slots[i] ?? 0; });
    return c;
  }
}
