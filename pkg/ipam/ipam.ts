/**
 * Node-local IPv4 address management from the node's pod CIDR.
 *
 * - The pool is the CIDR minus its network and broadcast addresses (the pod gateway is
 *   link-local, 169.254.1.1, so it takes no address from the pool).
 * - One lease per attachment (container id + ifname); allocating for an attachment that
 *   holds a lease returns the same address (idempotent ADD).
 * - Next-fit: the search starts after the last address handed out, so a released
 *   address is not reused at once (a stale peer's conntrack or ARP entry cannot hit the
 *   next pod).
 * - Every change is persisted atomically before it is reported, and the choice of an
 *   address is made synchronously in process, so an address is never handed out twice —
 *   not across concurrent ADDs, not across agent restarts.
 * - Group commit: changes made while a write is in flight are persisted together by the
 *   next write (one temp file, two fsyncs for however many concurrent ADDs and DELs),
 *   so ten concurrent ADDs do not queue behind ten fsync pairs.
 */
import { join } from 'node:path';
import { readJsonFile, writeFileAtomic } from './atomic-file.ts';
import { broadcast, contains, formatCidr, formatIpv4, parseCidr, parseIpv4, type Ipv4Prefix } from './cidr.ts';

export interface Lease {
  ip: string;
  containerId: string;
  ifName: string;
  /** CNI network name, for GC. */
  network: string;
  allocatedAt: string;
}

export type LeaseOwner = Pick<Lease, 'containerId' | 'ifName' | 'network'>;

interface IpamFile {
  version: 1;
  cidr: string;
  /** Last address handed out (next-fit cursor). */
  last: string | null;
  leases: Lease[];
}

/** The pool is empty. Carries a stable code for the agent API and the CNI error. */
export class IpamExhaustedError extends Error {
  readonly code = 'PAL_IPAM_EXHAUSTED';
  constructor(cidr: string, size: number) {
    super(`no free address in ${cidr} (${size} in use)`);
    this.name = 'IpamExhaustedError';
  }
}

export function leaseKey(containerId: string, ifName: string): string {
  return `${containerId}/${ifName}`;
}

export interface IpamOptions {
  stateDir: string;
  cidr: string;
}

export class Ipam {
  readonly cidr: string;
  readonly file: string;
  private readonly prefix: Ipv4Prefix;
  private readonly first: number;
  private readonly lastAddr: number;
  /** The write in flight, and the next one (not started; joins later changes). */
  private writing?: Promise<void>;
  private nextWrite?: Promise<void>;
  private byKey = new Map<string, Lease>();
  private byIp = new Map<number, Lease>();
  private cursor: number | null = null;

  private constructor(opts: IpamOptions, prefix: Ipv4Prefix) {
    this.prefix = prefix;
    this.cidr = formatCidr(prefix);
    this.file = join(opts.stateDir, 'ipam.json');
    this.first = prefix.network + 1;
    this.lastAddr = broadcast(prefix) - 1;
  }

  /**
   * Opens (or creates) the IPAM state for `cidr` under `stateDir`. Fails when the state
   * was written for another CIDR and still holds leases outside the new one (a pod CIDR
   * change needs the node drained first).
   */
  static async open(opts: IpamOptions): Promise<Ipam> {
    let prefix: Ipv4Prefix;
    try {
      prefix = parseCidr(opts.cidr);
    } catch (err) {
      throw new Error(`ipam: ${(err as Error).message}`, { cause: err });
    }
    if (prefix.bits > 30) throw new Error(`ipam: pod CIDR ${opts.cidr} is too small (need /30 or larger)`);
    const ipam = new Ipam(opts, prefix);
    const saved = await readJsonFile<IpamFile>(ipam.file);
    if (saved) {
      if (saved.version !== 1 || !Array.isArray(saved.leases)) throw new Error(`ipam: ${ipam.file}: unknown format`);
      for (const l of saved.leases) {
        const n = parseIpv4(l.ip);
        if (!contains(prefix, n)) {
          throw new Error(`ipam: lease ${l.ip} (${leaseKey(l.containerId, l.ifName)}) in ${ipam.file} `
            + `is outside the pod CIDR ${ipam.cidr}; remove the pods or the state first`);
        }
        ipam.byKey.set(leaseKey(l.containerId, l.ifName), l);
        ipam.byIp.set(n, l);
      }
      if (saved.last && contains(prefix, parseIpv4(saved.last))) ipam.cursor = parseIpv4(saved.last);
    }
    return ipam;
  }

  /** Number of assignable addresses. */
  get capacity(): number {
    return this.lastAddr - this.first + 1;
  }

  get used(): number {
    return this.byIp.size;
  }

  leases(): Lease[] {
    return [...this.byKey.values()].map((l) => ({ ...l }));
  }

  get(containerId: string, ifName: string): Lease | undefined {
    const l = this.byKey.get(leaseKey(containerId, ifName));
    return l && { ...l };
  }

  /**
   * Leases an address to the attachment and persists it; returns the existing lease's
   * address if it already holds one. Rejects with IpamExhaustedError when none is free
   * (nothing changes then).
   */
  async allocate(owner: LeaseOwner): Promise<string> {
    const r = this.reserve(owner);
    await r.persisted;
    return r.ip;
  }

  /**
   * allocate() in two steps: the address is chosen (and taken) at once, `persisted`
   * resolves once the lease is on disk, so a caller can write its own records
   * meanwhile. Until then the lease must not be reported to anyone. When `persisted`
   * rejects, the lease is gone again. Throws IpamExhaustedError (nothing changes).
   */
  reserve(owner: LeaseOwner): { ip: string; persisted: Promise<void> } {
    const key = leaseKey(owner.containerId, owner.ifName);
    const have = this.byKey.get(key);
    // Not yet durable when a reserve of the same attachment is still being written:
    // callers serialize per attachment (the endpoint manager does), so this returns a
    // lease that is on disk, or joins the write that puts it there.
    if (have) return { ip: have.ip, persisted: this.writeSoon() };
    const n = this.findFree();
    if (n === undefined) throw new IpamExhaustedError(this.cidr, this.byIp.size);
    const lease: Lease = { ...owner, ip: formatIpv4(n), allocatedAt: new Date().toISOString() };
    this.byKey.set(key, lease);
    this.byIp.set(n, lease);
    this.cursor = n;
    const persisted = this.writeSoon().catch((err: unknown) => {
      // Undo only our own lease (it may have been released meanwhile). The cursor stays:
      // skipping an address is harmless.
      if (this.byKey.get(key) === lease) {
        this.byKey.delete(key);
        this.byIp.delete(n);
      }
      throw new Error(`ipam: persisting lease: ${(err as Error).message}`, { cause: err });
    });
    return { ip: lease.ip, persisted };
  }

  /** Releases the attachment's lease; resolves with the freed address, or undefined. */
  async release(containerId: string, ifName: string): Promise<string | undefined> {
    const key = leaseKey(containerId, ifName);
    const lease = this.byKey.get(key);
    if (!lease) return undefined;
    const n = parseIpv4(lease.ip);
    this.byKey.delete(key);
    this.byIp.delete(n);
    try {
      await this.writeSoon();
    } catch (err) {
      // Put it back unless the address went to someone else meanwhile.
      if (!this.byKey.has(key) && !this.byIp.has(n)) {
        this.byKey.set(key, lease);
        this.byIp.set(n, lease);
      }
      throw new Error(`ipam: persisting release: ${(err as Error).message}`, { cause: err });
    }
    return lease.ip;
  }

  /**
   * Resolves once a write that started after this call has completed, so it holds
   * every change made before the call. Writes never overlap; changes made while one is
   * in flight share the next.
   */
  private writeSoon(): Promise<void> {
    this.nextWrite ??= (async () => {
      await this.writing?.catch(() => undefined);
      // From here on, later changes need a write of their own.
      this.nextWrite = undefined;
      const w = this.persist();
      this.writing = w;
      try {
        await w;
      } finally {
        if (this.writing === w) this.writing = undefined;
      }
    })();
    return this.nextWrite;
  }

  private findFree(): number | undefined {
    const size = this.capacity;
    const start = this.cursor === null ? this.first : this.cursor + 1;
    for (let i = 0; i < size; i++) {
      let n = start + i;
      if (n > this.lastAddr) n = this.first + (n - this.lastAddr - 1);
      if (!this.byIp.has(n)) return n;
    }
    return undefined;
  }

  private persist(): Promise<void> {
    const body: IpamFile = {
      version: 1,
      cidr: this.cidr,
      last: this.cursor === null ? null : formatIpv4(this.cursor),
      leases: [...this.byKey.values()],
    };
    return writeFileAtomic(this.file, `${JSON.stringify(body, null, 1)}\n`);
  }
}
