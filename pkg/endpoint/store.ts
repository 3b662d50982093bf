/**
 * Endpoint records, one small JSON file per attachment under <state-dir>/endpoints/,
 * written atomically (temp file + rename; not fsynced, see save()). A record is written in state `creating` before any kernel object
 * exists and becomes `ready` when ADD succeeds, so a restart after a crash mid-ADD knows
 * exactly what to undo.
 */
import { readdir, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readJsonFile, writeFileAtomic } from '../ipam/atomic-file.ts';

export interface EndpointRecord {
  state: 'creating' | 'ready';
  containerId: string;
  ifName: string;
  /** CNI network name (GC is per network). */
  network: string;
  netns: string;
  cniVersion: string;
  podNamespace: string;
  podName: string;
  podUid: string;
  endpointId: number;
  ipv4: string;
  gateway: string;
  hostIfName: string;
  hostMac: string;
  podMac: string;
  mtu: number;
  /** ifindex of the host-side veth; 0 while creating. */
  ifindex: number;
  createdAt: string;
}

export function attachmentKey(containerId: string, ifName: string): string {
  return `${containerId}/${ifName}`;
}

export class EndpointStore {
  readonly dir: string;
  private readonly records = new Map<string, EndpointRecord>();

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'endpoints');
  }

  private file(containerId: string, ifName: string): string {
    const h = createHash('sha256').update(attachmentKey(containerId, ifName)).digest('hex').slice(0, 32);
    return join(this.dir, `${h}.json`);
  }

  /** Loads every record from disk; returns the names of unreadable files (left in place). */
  async load(): Promise<string[]> {
    let names: string[] = [];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const bad: string[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      try {
        const r = await readJsonFile<EndpointRecord>(join(this.dir, n));
        if (!r || typeof r.containerId !== 'string' || typeof r.ifName !== 'string') throw new Error('bad record');
        this.records.set(attachmentKey(r.containerId, r.ifName), r);
      } catch {
        bad.push(n);
      }
    }
    return bad;
  }

  get(containerId: string, ifName: string): EndpointRecord | undefined {
    return this.records.get(attachmentKey(containerId, ifName));
  }

  list(): EndpointRecord[] {
    return [...this.records.values()];
  }

  async save(r: EndpointRecord): Promise<void> {
    // No fsync: a record describes a veth and a namespace, which a power loss takes away
    // too; an agent crash loses nothing (page cache), and the rename keeps readers from
    // ever seeing half a record. The loader skips (and logs) an unreadable one. Saves two
    // fsyncs per ADD, which under load queue in libuv's threadpool.
    await writeFileAtomic(this.file(r.containerId, r.ifName), `${JSON.stringify(r, null, 1)}\n`, { fsync: false });
    this.records.set(attachmentKey(r.containerId, r.ifName), { ...r });
  }

  async remove(containerId: string, ifName: string): Promise<void> {
    await rm(this.file(containerId, ifName), { force: true });
    this.records.delete(attachmentKey(containerId, ifName));
  }
}
