/**
 * The endpoint lifecycle: what CNI ADD, DEL, CHECK and GC do on the node, and how the
 * agent picks its endpoints up again after a restart.
 *
 * ADD, per attachment (container id + ifname), serialized per attachment:
 *   lease an address (its write runs on) and record `creating` ▶ veth pair + addresses +
 *   routes ▶ attach the programs to the host veth ▶ register the endpoint through the
 *   realizer (in Kubernetes mode it resolves once the pod's policy is in the datapath) ▶
 *   the lease on disk ▶ record `ready`. Any failure undoes every step already taken, in
 *   reverse.
 * DEL removes the datapath entries, the veth, the programs' attachment and the lease;
 * it succeeds when any of them is already gone. Different attachments proceed
 * concurrently; the IPAM picks addresses synchronously and batches its writes.
 *
 * Per-phase timings of every ADD and DEL go to the debug log (`--log-level debug`).
 */
import { access } from 'node:fs/promises';
import type { Attachment } from '../cni/request.ts';
import type { Datapath } from '../datapath/types.ts';
import { IpamExhaustedError, type Ipam } from '../ipam/ipam.ts';
import { KeyedMutex } from '../ipam/mutex.ts';
import { EndpointError } from './errors.ts';
import { HOST_IF_PREFIX, hostIfName, POD_GATEWAY, vethMacs } from './names.ts';
import type { PodLinkSpec, PodNetwork } from './podnet.ts';
import { attachmentKey, type EndpointRecord, type EndpointStore } from './store.ts';
import type { EndpointRealizer, LocalEndpoint } from './types.ts';

/** `debug` carries per-phase timings of ADD/DEL (dropped unless --log-level debug). */
export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** Milliseconds per named phase of one operation, for the debug log. */
class PhaseTimer {
  private readonly start = performance.now();
  private t = this.start;
  readonly phases: Record<string, number> = {};

  /** The phases and their wall-clock total. */
  report(): Record<string, number> {
    return { ...this.phases, total: +(performance.now() - this.start).toFixed(2) };
  }

  /** Records the time since the previous mark under `name`. */
  mark(name: string): void {
    const now = performance.now();
    this.phases[name] = +(now - this.t).toFixed(2);
    this.t = now;
  }
}

export interface AddRequest {
  containerId: string;
  ifName: string;
  netns: string;
  network: string;
  cniVersion: string;
  /** MTU from the network config; the manager's default when absent. */
  mtu?: number;
  pod: { namespace: string; name: string; uid: string };
}

export interface EndpointManagerOptions {
  ipam: Ipam;
  podnet: PodNetwork;
  datapath: Datapath;
  realizer: EndpointRealizer;
  store: EndpointStore;
  defaultMtu: number;
  /** How long ADD waits for the realizer (policy in the datapath); default 60 s. */
  realizeTimeoutMs?: number;
  log?: LogFn;
  /** Whether a netns path exists; injectable for tests. */
  netnsExists?: (path: string) => Promise<boolean>;
}

export interface RestoreReport {
  restored: number;
  removed: string[];
  leasesReleased: string[];
  linksRemoved: string[];
  failed: string[];
}

const MAX_ENDPOINT_ID = 0xffff;

async function pathExists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EndpointError('PAL_REALIZE_TIMEOUT',
      `${what}: not realized within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function msg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class EndpointManager {
  private readonly o: Required<Omit<EndpointManagerOptions, 'log' | 'netnsExists'>>
    & Pick<EndpointManagerOptions, 'log'>;
  private readonly netnsExists: (p: string) => Promise<boolean>;
  private readonly locks = new KeyedMutex();
  /** Endpoint ids taken by an ADD in flight (or by a realizer call that timed out). */
  private readonly reservedIds = new Set<number>();

  constructor(opts: EndpointManagerOptions) {
    this.o = { realizeTimeoutMs: 60_000, ...opts };
    this.netnsExists = opts.netnsExists ?? pathExists;
  }

  private log(level: 'debug' | 'info' | 'warn' | 'error', m: string, fields?: Record<string, unknown>): void {
    this.o.log?.(level, m, fields);
  }

  list(): EndpointRecord[] {
    return this.o.store.list().filter((r) => r.state === 'ready');
  }

  toLocalEndpoint(r: EndpointRecord): LocalEndpoint {
    return {
      endpointId: r.endpointId, ifindex: r.ifindex, ifname: r.hostIfName,
      containerId: r.containerId, podNamespace: r.podNamespace, podName: r.podName,
      podUid: r.podUid || undefined, ipv4: r.ipv4,
    };
  }

  private spec(r: EndpointRecord): PodLinkSpec {
    return {
      hostIfName: r.hostIfName, hostMac: r.hostMac, podIfName: r.ifName, podMac: r.podMac,
      netns: r.netns, mtu: r.mtu, ipv4: r.ipv4, gateway: r.gateway,
    };
  }

  private allocateId(): number {
    const used = new Set([...this.o.store.list().map((r) => r.endpointId), ...this.reservedIds]);
    for (let id = 1; id <= MAX_ENDPOINT_ID; id++) {
      if (!used.has(id)) {
        this.reservedIds.add(id);
        return id;
      }
    }
    throw new EndpointError('PAL_INTERNAL', 'no free endpoint id');
  }

  /**
   * ADD. Idempotent: an attachment that is already set up (its host veth still exists)
   * gets its existing record back. Rejects with EndpointError; nothing is left behind.
   */
  add(req: AddRequest): Promise<EndpointRecord> {
    return this.locks.run(attachmentKey(req.containerId, req.ifName), () => this.addLocked(req));
  }

  private async addLocked(req: AddRequest): Promise<EndpointRecord> {
    const timer = new PhaseTimer();
    const existing = this.o.store.get(req.containerId, req.ifName);
    if (existing) {
      if (existing.state === 'ready') {
        const link = await this.o.podnet.hostLink(existing.hostIfName).catch(() => undefined);
        if (link && link.ifindex === existing.ifindex) return existing;
        this.log('warn', 'endpoint record without its veth, setting up again',
          { containerId: req.containerId, ifName: req.ifName });
      }
      await this.removeLocked(existing.containerId, existing.ifName);
    }
    if (!(await this.netnsExists(req.netns))) {
      throw new EndpointError('PAL_UNKNOWN_CONTAINER', `network namespace ${req.netns} does not exist`);
    }
    const undo: { what: string; run: () => Promise<unknown> }[] = [];
    let idToFree: number | undefined;
    timer.mark('precheck');
    try {
      let reserved: { ip: string; persisted: Promise<void> };
      try {
        reserved = this.o.ipam.reserve({ containerId: req.containerId, ifName: req.ifName, network: req.network });
      } catch (err) {
        if (err instanceof IpamExhaustedError) {
          throw new EndpointError('PAL_IPAM_EXHAUSTED', 'allocating an address', err.message, { cause: err });
        }
        throw new EndpointError('PAL_INTERNAL', 'allocating an address', msg(err), { cause: err });
      }
      const ip = reserved.ip;
      undo.push({ what: 'releasing the address', run: () => this.o.ipam.release(req.containerId, req.ifName) });
      const endpointId = this.allocateId();
      idToFree = endpointId;
      const macs = vethMacs(req.containerId, req.ifName);
      const record: EndpointRecord = {
        state: 'creating', containerId: req.containerId, ifName: req.ifName,
        network: req.network, netns: req.netns, cniVersion: req.cniVersion,
        podNamespace: req.pod.namespace, podName: req.pod.name, podUid: req.pod.uid,
        endpointId, ipv4: ip, gateway: POD_GATEWAY,
        hostIfName: hostIfName(req.containerId, req.ifName), hostMac: macs.host, podMac: macs.pod,
        mtu: req.mtu ?? this.o.defaultMtu, ifindex: 0, createdAt: new Date().toISOString(),
      };
      // The `creating` record is written before any kernel object exists (an agent
      // crash after this point is undone on the next start). The lease's fsync runs on
      // meanwhile and is awaited before ADD reports success: the address is only
      // reported once it is durable; if the agent dies first, the `creating` record
      // undoes the attachment and the lease is released or was never written.
      const leased = reserved.persisted;
      leased.catch(() => undefined);
      undo.push({ what: 'removing the record', run: () => this.o.store.remove(req.containerId, req.ifName) });
      try {
        await this.o.store.save(record);
      } catch (err) {
        throw new EndpointError('PAL_INTERNAL', 'recording the endpoint', msg(err), { cause: err });
      }
      timer.mark('record');
      // Programs are attached while the pod's side is configured; detach is idempotent
      // and succeeds for a link that is gone, so it is on the undo list from here on.
      let attachedIfindex = 0;
      undo.push({ what: 'detaching programs', run: () => attachedIfindex ? this.o.datapath.detach(attachedIfindex) : Promise.resolve() });
      let info;
      try {
        info = await this.o.podnet.setup(this.spec(record), {
          phases: timer.phases,
          onHostLink: async (ifindex) => {
            attachedIfindex = ifindex;
            const t0 = performance.now();
            try {
              await this.o.datapath.attach(ifindex);
            } catch (err) {
              throw new EndpointError('PAL_DATAPATH', `attaching programs to ${record.hostIfName}`, msg(err), { cause: err });
            } finally {
              // Overlaps the pod side of podnet; reported apart from the phase sequence.
              timer.phases.attachOverlapped = +(performance.now() - t0).toFixed(2);
            }
          },
        });
      } catch (err) {
        if (err instanceof EndpointError) throw err;
        throw new EndpointError('PAL_INTERFACE', 'setting up the pod interface', msg(err), { cause: err });
      }
      undo.push({ what: 'deleting the veth', run: () => this.o.podnet.teardown(record.hostIfName) });
      timer.mark('interface');
      record.ifindex = info.hostIfindex;
      const ep = this.toLocalEndpoint(record);
      const realized = this.o.realizer.upsertEndpoint(ep);
      undo.push({ what: 'removing the endpoint entries', run: () => this.o.realizer.removeEndpoint(endpointId) });
      try {
        await withTimeout(realized, this.o.realizeTimeoutMs, `endpoint ${endpointId}`);
      } catch (err) {
        if (err instanceof EndpointError) {
          // The realizer may still finish later: keep the id reserved until it has, and
          // remove what it wrote then.
          idToFree = undefined;
          void realized.catch(() => undefined)
            .then(() => this.o.realizer.removeEndpoint(endpointId)).catch(() => undefined)
            .finally(() => this.reservedIds.delete(endpointId));
          throw err;
        }
        throw new EndpointError('PAL_DATAPATH', 'registering the endpoint', msg(err), { cause: err });
      }
      timer.mark('realize');
      try {
        await leased;
      } catch (err) {
        throw new EndpointError('PAL_INTERNAL', 'allocating an address', msg(err), { cause: err });
      }
      timer.mark('leaseDurable');
      record.state = 'ready';
      try {
        await this.o.store.save(record);
      } catch (err) {
        throw new EndpointError('PAL_INTERNAL', 'recording the endpoint', msg(err), { cause: err });
      }
      timer.mark('recordReady');
      this.log('debug', 'endpoint add timings (ms)', { containerId: req.containerId, ...timer.report() });
      this.log('info', 'endpoint added', {
        containerId: req.containerId, ifName: req.ifName, endpointId, ip, hostIfName: record.hostIfName,
        ifindex: record.ifindex,
      });
      return record;
    } catch (err) {
      for (const step of undo.reverse()) {
        try {
          await step.run();
        } catch (undoErr) {
          this.log('error', `undoing a failed ADD: ${step.what}`, { containerId: req.containerId, error: msg(undoErr) });
        }
      }
      throw err instanceof EndpointError ? err
        : new EndpointError('PAL_INTERNAL', 'adding the endpoint', msg(err), { cause: err });
    } finally {
      if (idToFree !== undefined) this.reservedIds.delete(idToFree);
    }
  }

  /** DEL. Succeeds when the attachment, its veth, its netns or its lease is already gone. */
  del(containerId: string, ifName: string): Promise<void> {
    return this.locks.run(attachmentKey(containerId, ifName), () => this.removeLocked(containerId, ifName));
  }

  private async removeLocked(containerId: string, ifName: string): Promise<void> {
    const timer = new PhaseTimer();
    const rec = this.o.store.get(containerId, ifName);
    const name = rec?.hostIfName ?? hostIfName(containerId, ifName);
    try {
      if (rec) await this.o.realizer.removeEndpoint(rec.endpointId);
    } catch (err) {
      throw new EndpointError('PAL_DATAPATH', 'removing the endpoint entries', msg(err), { cause: err });
    }
    timer.mark('unrealize');
    // The veth goes first, the programs' detach after: deleting the device makes its tcx
    // links defunct, and releasing a defunct link costs nothing, while detaching a live
    // one waits for two RCU grace periods per hook under the RTNL lock (~30 ms here,
    // stalling every other pod's netlink work). The veth itself waits for its own grace
    // periods either way. Traffic stops with the device, so the order is safe.
    const [deleted] = await Promise.allSettled([this.o.podnet.teardown(name)]);
    timer.mark('interface');
    const [detached] = await Promise.allSettled([
      rec?.ifindex && deleted.status === 'fulfilled' ? this.o.datapath.detach(rec.ifindex) : Promise.resolve(),
    ]);
    timer.mark('detach');
    if (deleted.status === 'rejected') {
      throw new EndpointError('PAL_INTERFACE', `deleting veth ${name}`, msg(deleted.reason), { cause: deleted.reason });
    }
    if (detached.status === 'rejected') {
      // The veth is gone, and its programs with it; what may remain is the datapath's
      // bookkeeping of the attachment. Failing DEL for that would leave the pod's
      // teardown stuck on something that no longer carries traffic.
      this.log('warn', 'detaching programs failed after the veth was deleted; continuing',
        { containerId, ifName, ifindex: rec?.ifindex, error: msg(detached.reason) });
    }
    try {
      await Promise.all([
        this.o.ipam.release(containerId, ifName),
        rec ? this.o.store.remove(containerId, ifName) : Promise.resolve(),
      ]);
    } catch (err) {
      throw new EndpointError('PAL_INTERNAL', 'releasing the address', msg(err), { cause: err });
    }
    timer.mark('release');
    this.log('debug', 'endpoint del timings (ms)', { containerId, ifName, ...timer.report() });
    if (rec) this.log('info', 'endpoint removed', { containerId, ifName, endpointId: rec.endpointId, ip: rec.ipv4 });
  }

  /**
   * CHECK: the attachment exists, `prevAddresses` (from prevResult) includes its address,
   * and the veth, address, routes and neighbour are all in place.
   */
  check(containerId: string, ifName: string, netns: string, prevAddresses: string[]): Promise<void> {
    return this.locks.run(attachmentKey(containerId, ifName), async () => {
      const rec = this.o.store.get(containerId, ifName);
      if (!rec || rec.state !== 'ready') {
        throw new EndpointError('PAL_UNKNOWN_CONTAINER', `no endpoint for ${containerId}/${ifName}`);
      }
      const problems: string[] = [];
      if (netns && netns !== rec.netns) problems.push(`netns is ${netns}, ADD used ${rec.netns}`);
      if (!prevAddresses.includes(rec.ipv4)) problems.push(`prevResult does not list ${rec.ipv4}`);
      problems.push(...await this.o.podnet.check(this.spec(rec)));
      const link = await this.o.podnet.hostLink(rec.hostIfName).catch(() => undefined);
      if (link && link.ifindex !== rec.ifindex) {
        problems.push(`host veth ${rec.hostIfName} has ifindex ${link.ifindex}, recorded ${rec.ifindex}`);
      }
      if (problems.length > 0) {
        throw new EndpointError('PAL_CHECK_FAILED', problems[0]!, problems.join('; '));
      }
    });
  }

  /**
   * GC (CNI 1.1): removes this network's attachments that are not in `valid`, then
   * leases and host veths no record explains. Attachments with an operation in flight
   * are left alone.
   */
  async gc(network: string, valid: Attachment[]): Promise<string[]> {
    const keep = new Set(valid.map((a) => attachmentKey(a.containerID, a.ifname)));
    const removed: string[] = [];
    const failures: string[] = [];
    for (const r of this.o.store.list()) {
      const key = attachmentKey(r.containerId, r.ifName);
      if (r.network !== network || keep.has(key) || this.locks.busy().has(key)) continue;
      try {
        await this.del(r.containerId, r.ifName);
        removed.push(key);
      } catch (err) {
        failures.push(`${key}: ${msg(err)}`);
      }
    }
    for (const l of this.o.ipam.leases()) {
      const key = attachmentKey(l.containerId, l.ifName);
      if (l.network !== network || keep.has(key) || this.locks.busy().has(key)) continue;
      if (this.o.store.get(l.containerId, l.ifName)) continue;
      await this.o.ipam.release(l.containerId, l.ifName);
      removed.push(`lease ${l.ip} (${key})`);
    }
    removed.push(...await this.removeOrphanLinks());
    if (failures.length > 0) {
      throw new EndpointError('PAL_INTERNAL', `gc: ${failures.length} attachment(s) not removed`, failures.join('; '));
    }
    if (removed.length > 0) this.log('info', 'gc removed', { network, removed });
    return removed;
  }

  /** Host veths with our prefix that no record names (a crash between create and record). */
  private async removeOrphanLinks(): Promise<string[]> {
    // List links before reading the records: a veth an ADD creates meanwhile already
    // has its `creating` record, so it is never mistaken for an orphan.
    const links = await this.o.podnet.listHostLinks(HOST_IF_PREFIX);
    const named = new Set(this.o.store.list().map((r) => r.hostIfName));
    const out: string[] = [];
    for (const name of links) {
      if (named.has(name)) continue;
      await this.o.podnet.teardown(name);
      out.push(`veth ${name}`);
    }
    return out;
  }

  /**
   * Startup, in two phases so that a control plane can learn the restored endpoints
   * before it starts (its first reconcile then keeps their entries):
   *
   * `beginRestore` loads the records, re-attaches the programs to every host veth that
   * still exists (idempotent; the pinned maps kept traffic flowing meanwhile) and
   * registers those endpoints with the realizer without waiting. The returned `finish`
   * waits for the registrations, then undoes ADDs a crash interrupted, drops endpoints
   * whose veth is gone (the pod was deleted while the agent was down), releases leases
   * no endpoint holds and deletes orphan veths.
   */
  async beginRestore(): Promise<{ finish: () => Promise<RestoreReport> }> {
    const report: RestoreReport = { restored: 0, removed: [], leasesReleased: [], linksRemoved: [], failed: [] };
    const bad = await this.o.store.load();
    for (const b of bad) this.log('warn', 'unreadable endpoint record left in place', { file: b });
    const registrations: Promise<void>[] = [];
    const dead: EndpointRecord[] = [];
    for (const r of this.o.store.list()) {
      const key = attachmentKey(r.containerId, r.ifName);
      const link = r.state === 'ready'
        ? await this.o.podnet.hostLink(r.hostIfName).catch(() => undefined) : undefined;
      if (!link) {
        dead.push(r);
        continue;
      }
      if (link.ifindex !== r.ifindex) {
        r.ifindex = link.ifindex;
        await this.o.store.save(r);
      }
      try {
        await this.o.datapath.attach(r.ifindex);
      } catch (err) {
        report.failed.push(`${key}: attaching: ${msg(err)}`);
        continue;
      }
      const p = this.o.realizer.upsertEndpoint(this.toLocalEndpoint(r));
      p.catch(() => undefined);
      registrations.push(withTimeout(p, this.o.realizeTimeoutMs, `endpoint ${r.endpointId}`)
        .then(() => { report.restored++; })
        .catch((err) => { report.failed.push(`${key}: registering: ${msg(err)}`); }));
    }
    const finish = async (): Promise<RestoreReport> => {
      await Promise.all(registrations);
      for (const r of dead) {
        const key = attachmentKey(r.containerId, r.ifName);
        try {
          await this.del(r.containerId, r.ifName);
          report.removed.push(key);
        } catch (err) {
          report.failed.push(`${key}: ${msg(err)}`);
        }
      }
      for (const l of this.o.ipam.leases()) {
        if (this.o.store.get(l.containerId, l.ifName)) continue;
        await this.o.ipam.release(l.containerId, l.ifName);
        report.leasesReleased.push(l.ip);
      }
      try {
        report.linksRemoved = await this.removeOrphanLinks();
      } catch (err) {
        report.failed.push(`orphan veths: ${msg(err)}`);
      }
      const resync = (this.o.realizer as { resync?: () => Promise<unknown> }).resync;
      if (typeof resync === 'function') await resync.call(this.o.realizer);
      this.log(report.failed.length ? 'warn' : 'info', 'endpoints restored', { ...report });
      return report;
    };
    return { finish };
  }

  /** Both restore phases at once (no control plane to start in between). */
  async restore(): Promise<RestoreReport> {
    return (await this.beginRestore()).finish();
  }
}
