/**
 * The two identity allocators the policy compiler owns:
 *
 * - label identities (>= IDENTITY_FIRST_LABEL): one per distinct set of
 *   (namespace, pod labels, namespace labels); pods with equal sets share it, so pod churn
 *   changes ipcache entries, not policy entries;
 * - CIDR identities (>= IDENTITY_FIRST_CIDR): one per distinct set of ipBlock peers (see
 *   docs/datapath.md, "CIDR lookup").
 *
 * Identities are node-local: every agent derives them from the same watch, and nothing
 * carries an identity between nodes, so two nodes may number one label set differently.
 * Both allocators serialize (`toJSON`/`fromJSON`) so that the agent can keep numbers
 * stable across its own restarts.
 */
import { IDENTITY_FIRST_CIDR, IDENTITY_FIRST_LABEL } from './reserved.ts';
import { IdentityPool, IdentityPoolError, type IdentityPoolJSON } from './pool.ts';

export { IdentityPool, IdentityPoolError, type IdentityPoolJSON };

/** Last label identity (the CIDR space starts right after). */
export const IDENTITY_LAST_LABEL = IDENTITY_FIRST_CIDR - 1;
/** Last CIDR identity: identities are 32-bit unsigned in the maps. */
export const IDENTITY_LAST_CIDR = 0xffffffff;

/** Label key holding the pod's namespace in an identity's label set. */
export const LABEL_NAMESPACE = 'namespace';
/** Prefix of pod labels in an identity's label set. */
export const LABEL_POD_PREFIX = 'pod:';
/** Prefix of namespace labels in an identity's label set. */
export const LABEL_NS_PREFIX = 'ns:';

/**
 * The label set of an identity: `namespace`, every pod label as `pod:<key>`, every
 * namespace label as `ns:<key>`. Selectors never see this form; it is for inspection.
 */
export function identityLabels(
  namespace: string,
  podLabels: Readonly<Record<string, string>> | undefined,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const out: Record<string, string> = { [LABEL_NAMESPACE]: namespace };
  for (const [k, v] of Object.entries(podLabels ?? {})) out[LABEL_POD_PREFIX + k] = v;
  for (const [k, v] of Object.entries(namespaceLabels ?? {})) out[LABEL_NS_PREFIX + k] = v;
  return out;
}

/** Canonical key of a label set: JSON of its entries sorted by key. */
export function labelSetKey(labels: Readonly<Record<string, string>>): string {
  const keys = Object.keys(labels).sort();
  return JSON.stringify(keys.map((k) => [k, labels[k]]));
}

function labelsOfKey(key: string): Record<string, string> {
  return Object.fromEntries(JSON.parse(key) as [string, string][]);
}

export interface LabelIdentityAllocatorJSON {
  kind: 'label-identities';
  pool: IdentityPoolJSON;
}

export class LabelIdentityAllocator {
  readonly #pool: IdentityPool;
  readonly #labels = new Map<number, { key: string; labels: Readonly<Record<string, string>> }>();

  constructor(pool?: IdentityPool) {
    this.#pool = pool ?? new IdentityPool(IDENTITY_FIRST_LABEL, IDENTITY_LAST_LABEL);
    if (this.#pool.first < IDENTITY_FIRST_LABEL || this.#pool.last > IDENTITY_LAST_LABEL) {
      throw new IdentityPoolError('PAL_IDENTITY_RANGE', 'label identity pool out of range');
    }
    for (const [key, id] of this.#pool.entries()) this.#labels.set(id, { key, labels: labelsOfKey(key) });
  }

  /** Identity currently allocated to a label-set key (see `labelSetKey`). */
  idOf(key: string): number | undefined {
    return this.#pool.idOf(key);
  }

  labelsOf(id: number): Readonly<Record<string, string>> | undefined {
    return this.#labels.get(id)?.labels;
  }

  /** Makes exactly these label-set keys allocated; see IdentityPool.sync. */
  sync(keys: Iterable<string>): ReadonlyMap<string, number> {
    const out = this.#pool.sync(keys);
    // Only new numbers are parsed: a sync must stay cheap when nothing changed.
    for (const [id, cur] of this.#labels) if (this.#pool.keyOf(id) !== cur.key) this.#labels.delete(id);
    for (const [key, id] of out) if (!this.#labels.has(id)) this.#labels.set(id, { key, labels: labelsOfKey(key) });
    return out;
  }

  get size(): number {
    return this.#pool.size;
  }

  toJSON(): LabelIdentityAllocatorJSON {
    return { kind: 'label-identities', pool: this.#pool.toJSON() };
  }

  static fromJSON(j: unknown): LabelIdentityAllocator {
    const o = j as Partial<LabelIdentityAllocatorJSON> | null;
    if (!o || o.kind !== 'label-identities') {
      throw new IdentityPoolError('PAL_IDENTITY_STATE', 'restoring label identities: wrong kind');
    }
    const pool = IdentityPool.fromJSON(o.pool);
    for (const [k] of pool.entries()) {
      try {
        labelsOfKey(k);
      } catch (err) {
        throw new IdentityPoolError('PAL_IDENTITY_STATE',
          `restoring label identities: bad key: ${(err as Error).message}`);
      }
    }
    return new LabelIdentityAllocator(pool);
  }
}

export interface CidrIdentityAllocatorJSON {
  kind: 'cidr-identities';
  pool: IdentityPoolJSON;
}

/** Separator of the member keys of a CIDR identity's key. */
const MEMBER_SEP = ';';

/**
 * Canonical key of a set of ipBlock peers (each already canonical, e.g.
 * "10.0.0.0/8 except 10.1.0.0/16"): sorted, deduplicated, joined.
 */
export function cidrSetKey(members: Iterable<string>): string {
  return [...new Set(members)].sort().join(MEMBER_SEP);
}

export class CidrIdentityAllocator {
  readonly #pool: IdentityPool;

  constructor(pool?: IdentityPool) {
    this.#pool = pool ?? new IdentityPool(IDENTITY_FIRST_CIDR, IDENTITY_LAST_CIDR);
    if (this.#pool.first < IDENTITY_FIRST_CIDR) {
      throw new IdentityPoolError('PAL_IDENTITY_RANGE', 'cidr identity pool out of range');
    }
  }

  idOf(key: string): number | undefined {
    return this.#pool.idOf(key);
  }

  /** The members of a CIDR identity (ipBlock peers it stands for). */
  membersOf(id: number): string[] | undefined {
    const k = this.#pool.keyOf(id);
    return k === undefined ? undefined : k.split(MEMBER_SEP);
  }

  sync(keys: Iterable<string>): ReadonlyMap<string, number> {
    return this.#pool.sync(keys);
  }

  get size(): number {
    return this.#pool.size;
  }

  toJSON(): CidrIdentityAllocatorJSON {
    return { kind: 'cidr-identities', pool: this.#pool.toJSON() };
  }

  static fromJSON(j: unknown): CidrIdentityAllocator {
    const o = j as Partial<CidrIdentityAllocatorJSON> | null;
    if (!o || o.kind !== 'cidr-identities') {
      throw new IdentityPoolError('PAL_IDENTITY_STATE', 'restoring cidr identities: wrong kind');
    }
    return new CidrIdentityAllocator(IdentityPool.fromJSON(o.pool));
  }
}
