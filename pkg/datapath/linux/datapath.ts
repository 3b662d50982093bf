/**
 * The Linux datapath: the programs of bpf/ attached to pods' host-side veths, and their
 * pinned maps, driven from Node.
 *
 * Layout under `<bpffsRoot>/palisade/`:
 *   maps/pal_*               every map, shared by both programs (libbpf pin-by-name)
 *   progs/from_pod, to_pod   the loaded programs
 *   links/<ifindex>-ingress  tcx links (…-egress), pinned so they outlive the agent
 *
 * Loading and tcx attachment go through bin/palisade-bpf (libbpf + raw bpf syscall), kept
 * running as one persistent `palisade-bpf serve` process for attach/detach (./helper-server.ts);
 * map reads and writes go through the npm `bpf` package on the pinned maps. Everything
 * that must survive an agent restart is pinned, and `init()` re-opens it: programs are
 * reloaded only when the object file is newer than the pinned program, and conntrack is
 * never touched, so established flows keep flowing across restarts and upgrades.
 * See docs/datapath.md.
 */
import { existsSync, promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { RawMap, RawQueueMap, type MapRef } from 'bpf';

import {
  DatapathError, counterIndex, decodeCidr, decodeCt, decodeEndpoint,
  decodeConfig, decodeFlowEvent, decodeIpcache, decodePolicy, dropReasonCodes, encodeCidrKey, encodeConfig,
  encodeEndpointKey, encodeEndpointValue, encodeIdentityValue, encodeIpcacheKey,
  encodePolicyKeys, mapNames, type CtEntry,
} from '../codec.ts';
import { entryKey } from '../diff.ts';
import {
  emptyState, type Datapath, type DatapathChange, type DatapathCounters, type DatapathState,
  type Direction, type DropReason, type FlowEvent,
} from '../types.ts';
import { EventHub } from './events.ts';
import { LinuxServiceMaps } from './services.ts';
import type { NatEntry } from '../service-codec.ts';
import type { ServiceCounters, ServiceEntry } from '../types.ts';
import { repoRoot, runOk, type RunResult } from './exec.ts';
import { KeyedMutex } from '../../ipam/mutex.ts';
import { HelperServer } from './helper-server.ts';
import {
  allMaps, checkPinnedShapes, deleteMany, ensureBpffs, openPinned, readAll, setMany, type MapName,
} from './maps.ts';
import { PolicyKeyIndex, type MapWrites } from './policy-index.ts';

export { ensureBpffs };

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface LinuxDatapathOptions {
  /** bpffs mount point; mounted by init() when nothing is mounted there. Default /sys/fs/bpf. */
  bpffsRoot?: string;
  /** Directory of from_pod.o and to_pod.o. Default <repo>/bpf/out. */
  objDir?: string;
  /** The native helper. Default <repo>/bin/palisade-bpf. */
  helperPath?: string;
  /** Reload the programs even when the pinned ones are as new as the objects. */
  reload?: boolean;
  /** How often events() polls the kernel queue. Default 100 ms. */
  eventPollMs?: number;
  /**
   * Attach with clsact even where the kernel has tcx. A tcx attach waits for two RCU
   * grace periods per hook with the RTNL lock held (and deleting a device with tcx links
   * two more), which is most of a pod ADD's latency; clsact waits for none. Used by the
   * agent's `--attach clsact` and to test the fallback. Default false (tcx first).
   */
  forceClsact?: boolean;
  /**
   * Network namespace (a name under /run/netns) whose interfaces attach/detach work on,
   * when it is not the agent's own (tests and tools driving a node namespace from
   * outside). Maps and programs are not per namespace, so only attachment changes.
   */
  netns?: string;
  log?: LogFn;
}

export const ERR_DATAPATH_INIT = 'PAL_DATAPATH_INIT';
export const ERR_DATAPATH_ATTACH = 'PAL_DATAPATH_ATTACH';
export const ERR_DATAPATH_APPLY = 'PAL_DATAPATH_APPLY';
export const ERR_DATAPATH_CLOSED = 'PAL_DATAPATH_CLOSED';

/** The programs, by attach point: hook on the host-side veth -> program name. */
const programs = [
  { name: 'from_pod', hook: 'ingress' },
  { name: 'to_pod', hook: 'egress' },
] as const;

export class LinuxDatapath implements Datapath {
  readonly bpffsRoot: string;
  readonly dir: string;
  private readonly objDir: string;
  private readonly helper: string;
  private readonly reload: boolean;
  private readonly forceClsact: boolean;
  /** The mode of the last successful attach (or relink at init); see attachMode(). */
  private lastAttachMode?: 'tcx' | 'clsact';
  private readonly netns?: string;
  private readonly log: LogFn;

  private refs = new Map<MapName, MapRef>();
  private maps = new Map<MapName, RawMap>();
  private events_?: RawQueueMap;
  private policyIndex = new PolicyKeyIndex();
  /** ClusterIP translation maps (bpf/lib/service.h, docs/services.md). */
  private services?: LinuxServiceMaps;
  private initialized?: Promise<void>;
  private closed = false;
  /** Serializes apply: each one sees the previous one's result. */
  private chain: Promise<unknown> = Promise.resolve();
  /**
   * attach/detach are serialized per ifindex only: interfaces of different pods proceed
   * concurrently (a tcx attach waits ~2 RCU grace periods in the kernel; queueing every
   * pod behind every other one made 10 concurrent ADDs wait for ten of them).
   */
  /** Serializes attach/detach per ifindex; different interfaces proceed in parallel. */
  private readonly ifLocks = new KeyedMutex();
  private readonly server: HelperServer;
  private readonly hub: EventHub;
  /** epoch ms - monotonic ms, to convert kernel timestamps. */
  private readonly monoOffsetMs = Date.now() - Number(process.hrtime.bigint() / 1000000n);

  constructor(opts: LinuxDatapathOptions = {}) {
    const root = repoRoot();
    this.bpffsRoot = resolve(opts.bpffsRoot ?? '/sys/fs/bpf');
    this.dir = join(this.bpffsRoot, 'palisade');
    this.objDir = resolve(opts.objDir ?? join(root, 'bpf', 'out'));
    this.helper = resolve(opts.helperPath ?? join(root, 'bin', 'palisade-bpf'));
    this.reload = opts.reload ?? false;
    this.forceClsact = opts.forceClsact ?? false;
    if (opts.netns !== undefined && !/^[\w.-]+$/.test(opts.netns)) {
      throw new DatapathError(ERR_DATAPATH_INIT, `bad netns name ${JSON.stringify(opts.netns)}`);
    }
    this.netns = opts.netns;
    this.log = opts.log ?? (() => {});
    this.server = new HelperServer(this.helper, this.netns ? ['nsenter', `--net=/run/netns/${this.netns}`, '--'] : []);
    this.hub = new EventHub(async () => {
      await this.init();
      const q = this.events_!;
      const toEpoch = (ns: bigint) => this.monoOffsetMs + Number(ns / 1000n) / 1000;
      return { pop: () => { const b = q.pop(); return b && decodeFlowEvent(b, toEpoch); } };
    }, opts.eventPollMs ?? 100, (err) => this.log('warn', 'reading datapath events', { error: err.message }));
  }

  /** One palisade-bpf request (attach, detach, gc-links, ifname, info), inside `netns`. */
  private helperCall(args: string[]): Promise<RunResult> {
    return this.server.call(args);
  }

  private path(kind: 'maps' | 'progs' | 'links', name: string): string {
    return join(this.dir, kind, name);
  }

  // ---- init ---------------------------------------------------------------------------

  init(): Promise<void> {
    if (this.closed) return Promise.reject(new DatapathError(ERR_DATAPATH_CLOSED, 'datapath is closed'));
    this.initialized ??= this.doInit().catch((e: unknown) => {
      this.initialized = undefined;
      this.closeMaps();
      throw e instanceof DatapathError ? e
        : new DatapathError(ERR_DATAPATH_INIT, `initializing datapath: ${(e as Error).message}`, { cause: e });
    });
    return this.initialized;
  }

  private async doInit(): Promise<void> {
    if (!existsSync(this.helper)) throw new Error(`helper ${this.helper} not found (run 'make build')`);
    await ensureBpffs(this.bpffsRoot);
    for (const d of ['maps', 'progs', 'links']) await fs.mkdir(join(this.dir, d), { recursive: true });

    // Pins left by a build with other layouts would make the load fail deep in libbpf,
    // or worse, be read with the wrong codec: refuse them first, naming the fix.
    checkPinnedShapes(join(this.dir, 'maps'), this.dir);

    let reloaded = false;
    for (const p of programs) {
      const obj = join(this.objDir, `${p.name}.o`);
      if (!existsSync(obj)) throw new Error(`program object ${obj} not found (run 'make build-bpf')`);
      const pin = this.path('progs', p.name);
      if (!this.reload && existsSync(pin) && !(await this.objectIsNewer(obj, pin))) continue;
      await runOk(`loading ${p.name}`, this.helper, ['load', obj, pin, join(this.dir, 'maps')]);
      reloaded = true;
      this.log('info', 'datapath program loaded', { program: p.name, pin });
    }
    this.openMaps();
    // Links of interfaces deleted without a detach (a crashed pod) still hold a program.
    const gc = await this.helperCall(['gc-links', join(this.dir, 'links')]);
    if (gc.code !== 0) this.log('warn', 'datapath link cleanup failed', { error: gc.stderr.trim() });
    else if (Number(gc.stdout) > 0) this.log('info', 'datapath removed stale links', { count: Number(gc.stdout) });
    // An existing link keeps running the program it was created with until told
    // otherwise: move every pinned link to the freshly loaded program.
    if (reloaded) await this.relinkAll();
    this.policyIndex = new PolicyKeyIndex();
    for (const e of this.dumpPolicy()) this.policyIndex.upsert(e);
  }

  /** True when `obj` was modified after the pinned program was loaded. */
  private async objectIsNewer(obj: string, pin: string): Promise<boolean> {
    const info = await this.helperCall(['info', pin]);
    if (info.code !== 0) return true;
    const loadedAt = Number(info.stdout.trim().split(/\s+/)[1]);
    const mtime = (await fs.stat(obj)).mtimeMs;
    return !(loadedAt >= mtime);
  }

  private openMaps(): void {
    this.services = new LinuxServiceMaps(join(this.dir, 'maps'));
    this.services.open();
    for (const name of allMaps) {
      const ref = openPinned(join(this.dir, 'maps'), name, this.dir);
      this.refs.set(name, ref);
      if (name === 'events') this.events_ = new RawQueueMap(ref);
      else this.maps.set(name, new RawMap(ref));
    }
  }

  private closeMaps(): void {
    this.services?.close();
    this.services = undefined;
    for (const ref of this.refs.values()) {
      try { ref.close(); } catch { /* already closed */ }
    }
    this.refs.clear();
    this.maps.clear();
    this.events_ = undefined;
  }

  private map(name: MapName): RawMap {
    const m = this.maps.get(name);
    if (!m) throw new DatapathError(ERR_DATAPATH_INIT, 'datapath not initialized: call init() first');
    return m;
  }

  private async relinkAll(): Promise<void> {
    const names = await fs.readdir(join(this.dir, 'links')).catch(() => [] as string[]);
    for (const n of names) {
      const m = /^(\d+)-(ingress|egress)$/.exec(n);
      if (!m) continue;
      const prog = programs.find((p) => p.hook === m[2])!;
      const r = await this.helperCall(['attach', m[1]!, m[2]!, this.path('progs', prog.name),
        this.path('links', n)]);
      if (r.code !== 0) this.log('warn', 'datapath relink failed', { link: n, error: r.stderr.trim() });
      else this.lastAttachMode = 'tcx';
    }
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => {});
    return next;
  }

  // ---- apply / dump ----------------------------------------------------------------------

  apply(change: DatapathChange): Promise<void> {
    return this.serialize(async () => {
      await this.init();
      this.doApply(change);
    });
  }

  private doApply(change: DatapathChange): void {
    // Encode everything first: a bad entry throws here, before any map is touched.
    const up = change.upsert;
    const del = change.delete;
    const epSet = up.endpoints.map((e) => [encodeEndpointKey(e.ifindex), encodeEndpointValue(e)] as [Buffer, Buffer]);
    const ipSet = up.ipcache.map((e) => [encodeIpcacheKey(e.cidr), encodeIdentityValue(e.identity)] as [Buffer, Buffer]);
    const cidrSet = up.cidrs.map((e) => [encodeCidrKey(e), encodeIdentityValue(e.identity)] as [Buffer, Buffer]);
    const epDel = del.endpoints.map((e) => encodeEndpointKey(e.ifindex));
    const ipDel = del.ipcache.map((e) => encodeIpcacheKey(e.cidr));
    const cidrDel = del.cidrs.map((e) => encodeCidrKey(e));
    for (const e of [...up.policy, ...del.policy]) encodePolicyKeys(e);

    // Deleting an entry that is also upserted in this change would undo the upsert.
    const upPolicy = new Set(up.policy.map(entryKey.policy));
    const polWrites: MapWrites = { set: [], delete: [] };
    for (const e of up.policy) this.policyIndex.upsert(e, polWrites);
    const polDel: MapWrites = { set: [], delete: [] };
    for (const e of del.policy) if (!upPolicy.has(entryKey.policy(e))) this.policyIndex.remove(e, polDel);

    try {
      // Add before delete. Within the upserts, the endpoint goes last so that an
      // enforcing endpoint never runs without its allow entries.
      setMany(this.map('ipcache'), ipSet);
      setMany(this.map('cidrs'), cidrSet);
      setMany(this.map('policy'), polWrites.set);
      setMany(this.map('endpoints'), epSet);
      deleteMany(this.map('endpoints'), epDel);
      setMany(this.map('policy'), polDel.set);
      deleteMany(this.map('policy'), polDel.delete);
      deleteMany(this.map('cidrs'), cidrDel);
      deleteMany(this.map('ipcache'), ipDel);
    } catch (e) {
      // The index may now be ahead of the map; rebuild it from the kernel's view.
      this.policyIndex = new PolicyKeyIndex();
      for (const p of this.dumpPolicy()) this.policyIndex.upsert(p);
      throw new DatapathError(ERR_DATAPATH_APPLY, `applying datapath change: ${(e as Error).message}`, { cause: e });
    } finally {
      // After the writes, also after a partial failure: every cached forward verdict
      // is re-judged against the maps as they now are (NETPOL 25).
      this.bumpGeneration();
    }
  }

  /** The config map's policy generation (see struct ct_value in bpf/lib/maps.h). */
  private bumpGeneration(): void {
    const m = this.map('config');
    const k = Buffer.alloc(4);
    const cur = m.get(k);
    const gen = cur ? decodeConfig(cur).policyGeneration : 0;
    m.set(k, encodeConfig((gen + 1) >>> 0));
  }

  /** Current policy generation (tests, inspection). */
  async policyGeneration(): Promise<number> {
    await this.init();
    const v = this.map('config').get(Buffer.alloc(4));
    return v ? decodeConfig(v).policyGeneration : 0;
  }

  async dump(): Promise<DatapathState> {
    await this.init();
    const s = emptyState();
    for (const [k, v] of readAll(this.map('endpoints'))) s.endpoints.push(decodeEndpoint(k, v));
    for (const [k, v] of readAll(this.map('ipcache'))) {
      const e = decodeIpcache(k, v);
      if (e) s.ipcache.push(e);
    }
    for (const [k, v] of readAll(this.map('cidrs'))) {
      const e = decodeCidr(k, v);
      if (e) s.cidrs.push(e);
    }
    s.policy = this.dumpPolicy();
    return s;
  }

  /** Policy entries rebuilt from the map: one per distinct (key fields, value range). */
  private dumpPolicy(): ReturnType<PolicyKeyIndex['values']> {
    const seen = new Map<string, ReturnType<typeof decodePolicy>>();
    for (const [k, v] of readAll(this.map('policy'))) {
      const e = decodePolicy(k, v);
      seen.set(entryKey.policy(e), e);
    }
    return [...seen.values()];
  }

  /** Conntrack entries (inspection and tests; not part of the desired state). */
  async conntrack(): Promise<CtEntry[]> {
    await this.init();
    return [...readAll(this.map('conntrack'))].map(([k, v]) => decodeCt(k, v));
  }

  // ---- services (docs/services.md) -------------------------------------------------------

  /** Makes the translated ClusterIP frontends exactly `services` (add before delete). */
  applyServices(services: readonly ServiceEntry[]): Promise<void> {
    return this.serialize(async () => {
      await this.init();
      this.services!.apply(services);
    });
  }

  /** The frontends as applied (rebuilt from the maps after a restart). */
  async dumpServices(): Promise<ServiceEntry[]> {
    await this.init();
    return this.services!.entries();
  }

  /** The translation table (inspection and tests). */
  async serviceNat(): Promise<NatEntry[]> {
    await this.init();
    return this.services!.nat();
  }

  async serviceCounters(): Promise<ServiceCounters> {
    await this.init();
    return this.services!.counters(this.helper);
  }

  // ---- attach / detach -----------------------------------------------------------------

  attach(ifindex: number): Promise<void> {
    if (!Number.isInteger(ifindex) || ifindex <= 0) {
      return Promise.reject(new DatapathError(ERR_DATAPATH_ATTACH, `attaching: bad ifindex ${ifindex}`));
    }
    return this.ifLocks.run(String(ifindex), async () => {
      await this.init();
      if (!this.forceClsact) {
        // Both hooks in one helper request.
        const args = ['attach', String(ifindex)];
        for (const p of programs) args.push(p.hook, this.path('progs', p.name), this.path('links', `${ifindex}-${p.hook}`));
        const r = await this.helperCall(args);
        if (r.code === 0) {
          // An interface attached with clsact before (the agent ran with --attach clsact):
          // the filters go once the links are in place, so enforcement never lapses.
          await this.helperCall(['tc-detach', String(ifindex), ...programs.map((p) => p.hook)]);
          this.lastAttachMode = 'tcx';
          return;
        }
        if (r.code !== 3) {
          throw new DatapathError(ERR_DATAPATH_ATTACH,
            `attaching to ifindex ${ifindex}: ${r.stderr.trim() || `exit ${r.code}`}`);
        }
        this.log('info', 'tcx unavailable, using clsact', { ifindex });
      }
      // clsact + a direct-action filter at a fixed prio/handle (idempotent replace),
      // both hooks in one helper request (libbpf's bpf_tc_* over netlink).
      const args = ['tc-attach', String(ifindex)];
      for (const p of programs) args.push(p.hook, this.path('progs', p.name));
      const r = await this.helperCall(args);
      if (r.code !== 0) {
        throw new DatapathError(ERR_DATAPATH_ATTACH,
          `attaching to ifindex ${ifindex} with clsact: ${r.stderr.trim() || `exit ${r.code}`}`);
      }
      // tcx links from an earlier run in tcx mode would run the programs a second time:
      // release them now that the filters are in place.
      for (const p of programs) {
        const link = this.path('links', `${ifindex}-${p.hook}`);
        if (!existsSync(link)) continue;
        const d = await this.helperCall(['detach', link]);
        if (d.code !== 0) this.log('warn', 'releasing a tcx link after switching to clsact failed', { link, error: d.stderr });
      }
      this.lastAttachMode = 'clsact';
    });
  }

  /** Datapath.attachMode: `clsact` also when tcx was asked for and the kernel has none. */
  attachMode(): 'tcx' | 'clsact' | undefined {
    return this.lastAttachMode;
  }

  detach(ifindex: number): Promise<void> {
    if (!Number.isInteger(ifindex) || ifindex <= 0) return Promise.resolve();
    return this.ifLocks.run(String(ifindex), async () => {
      let hadLink = false;
      const links = programs.map((p) => this.path('links', `${ifindex}-${p.hook}`));
      for (const link of links) if (existsSync(link)) hadLink = true;
      // Both hooks at once: each detach of a live tcx link waits for grace periods.
      const rs = await Promise.all(links.map((link) => this.helperCall(['detach', link])));
      for (const r of rs) {
        if (r.code !== 0) {
          throw new DatapathError(ERR_DATAPATH_ATTACH, `detaching ifindex ${ifindex}: ${r.stderr.trim()}`);
        }
      }
      if (hadLink) return;
      // Maybe attached with clsact; a missing interface or filter means done.
      const r = await this.helperCall(['tc-detach', String(ifindex), ...programs.map((p) => p.hook)]);
      if (r.code !== 0) {
        throw new DatapathError(ERR_DATAPATH_ATTACH, `detaching ifindex ${ifindex} (clsact): ${r.stderr.trim()}`);
      }
    });
  }

  // ---- events / counters ------------------------------------------------------------------

  /**
   * Drop and new-flow records as they arrive. Every iterator gets every record read after
   * it started (the kernel queue is read once and fanned out). Ends on close().
   */
  events(): AsyncIterable<FlowEvent> {
    return { [Symbol.asyncIterator]: () => this.hub.subscribe() };
  }

  /** Sums the per-CPU counters (through the helper: the `bpf` package cannot). */
  async counters(): Promise<DatapathCounters> {
    await this.init();
    const out = await runOk('reading counters', this.helper, ['counters', this.path('maps', mapNames.counters)]);
    const slots = out.trim().split('\n').map(Number);
    const read = (i: number): number => slots[i] ?? 0;
    const result: DatapathCounters = {
      allowed: { ingress: 0, egress: 0 },
      dropped: { ingress: {}, egress: {} },
    };
    for (const d of ['ingress', 'egress'] as Direction[]) {
      result.allowed[d] = read(counterIndex(d));
      for (const r of Object.keys(dropReasonCodes) as DropReason[]) {
        const n = read(counterIndex(d, r));
        if (n > 0) result.dropped[d][r] = n;
      }
    }
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.hub.close();
    await this.chain.catch(() => {});
    await this.ifLocks.settled();
    await this.server.close();
    this.closeMaps();
    this.initialized = undefined;
  }
}
