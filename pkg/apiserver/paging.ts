/**
 * List pagination (`limit` / `continue`) with upstream's guarantee: every page of one
 * list comes from the same snapshot, taken by the first request. The snapshot (the
 * filtered, sorted items; objects are never mutated once stored, so it costs one array)
 * lives until its last page is served, for at most `ttlMs`, and at most `max` snapshots
 * are kept (oldest dropped first). A continue token whose snapshot is gone, or predates
 * the watch window (`Store.compact()`), gets 410 Expired like an etcd-compacted one.
 */
import { randomUUID } from 'node:crypto';
import { ApiError, badRequest } from './errors.ts';
import type { KObject } from './json.ts';

interface Snapshot {
  items: KObject[];
  resourceVersion: string;
  created: number;
}

export interface Page {
  items: KObject[];
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

const TOO_OLD = 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.';

export class Pager {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly max: number;
  private readonly ttlMs: number;

  constructor(max = 100, ttlMs = 5 * 60_000) {
    this.max = max;
    this.ttlMs = ttlMs;
  }

  /** Parses `limit`; 0 or absent means "everything". */
  static limit(raw: string | null): number {
    if (raw === null || raw === '') return 0;
    if (!/^\d+$/.test(raw)) throw badRequest(`invalid limit "${raw}": must be a non-negative integer`);
    return Number(raw);
  }

  /** The first page of a fresh list result. */
  first(items: KObject[], resourceVersion: string, limit: number): Page {
    if (limit === 0 || items.length <= limit) return { items, resourceVersion };
    const id = randomUUID();
    this.snapshots.set(id, { items, resourceVersion, created: Date.now() });
    while (this.snapshots.size > this.max) this.snapshots.delete(this.snapshots.keys().next().value as string);
    return this.slice(id, 0, limit);
  }

  /** The page a continue token points at. `oldestRv` is the store's watch window start. */
  next(token: string, limit: number, oldestRv: number): Page {
    let id: string;
    let offset: number;
    try {
      const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { id?: unknown; offset?: unknown };
      if (typeof parsed.id !== 'string' || typeof parsed.offset !== 'number') throw new Error('bad token');
      ({ id, offset } = parsed as { id: string; offset: number });
    } catch {
      throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
    }
    const snap = this.snapshots.get(id);
    if (!snap || Date.now() - snap.created > this.ttlMs || Number(snap.resourceVersion) < oldestRv) {
      this.snapshots.delete(id);
      throw new ApiError(410, 'Expired', TOO_OLD);
    }
    return this.slice(id, offset, limit === 0 ? snap.items.length : limit);
  }

  private slice(id: string, offset: number, limit: number): Page {
    const snap = this.snapshots.get(id) as Snapshot;
    const end = offset + limit;
    const page: Page = { items: snap.items.slice(offset, end), resourceVersion: snap.resourceVersion };
    if (end < snap.items.length) {
      page.continue = Buffer.from(JSON.stringify({ id, offset: end })).toString('base64url');
      page.remainingItemCount = snap.items.length - end;
    } else {
      this.snapshots.delete(id);
    }
    return page;
  }
}
