/**
 * ClusterStore: the agent's copy of the watched cluster state (slim objects, see
 * resources.ts), with change notifications, a revision that increases with every
 * effective change, and the resourceVersions seen.
 *
 * Contracts:
 * - Handlers are idempotent: upserting an object equal to the stored one (same content or
 *   same resourceVersion) is not a change, so a relist that replays everything notifies
 *   only what really changed; `replace` also removes what the relist no longer has.
 * - Every change carries the previous object (`old`), so a listener can see the labels a
 *   pod or namespace had before a relabel.
 * - `snapshot()` is O(1) and consistent: the maps it returns never change afterwards
 *   (copy-on-write: the next mutation of a kind copies that kind's map first).
 */
import type { Namespace, NetworkPolicy, Node, Pod } from '../policy/snapshot.ts';
import type { EndpointSlice, Service } from '../service/types.ts';
import {
  keyOf, parseResourceVersion, resourceKinds, sameContent,
  type AnyResource, type ResourceKind, type ResourceTypes,
} from './resources.ts';

export interface StoreChange<K extends ResourceKind = ResourceKind> {
  kind: K;
  key: string;
  /** The object before the change; undefined for an add. */
  old?: ResourceTypes[K];
  /** The object after the change; undefined for a delete. */
  new?: ResourceTypes[K];
}

export type StoreListener = (change: StoreChange) => void;

/** A consistent, immutable view of the store at one revision. */
export interface StoreSnapshot {
  revision: number;
  /** Highest resourceVersion seen when the snapshot was taken ('' before any). */
  resourceVersion: string;
  pods: ReadonlyMap<string, Pod>;
  namespaces: ReadonlyMap<string, Namespace>;
  nodes: ReadonlyMap<string, Node>;
  policies: ReadonlyMap<string, NetworkPolicy>;
  services: ReadonlyMap<string, Service>;
  endpointslices: ReadonlyMap<string, EndpointSlice>;
}

type Maps = { [K in ResourceKind]: Map<string, ResourceTypes[K]> };

export class ClusterStore {
  #maps: Maps = {
    pods: new Map(), namespaces: new Map(), nodes: new Map(), policies: new Map(),
    services: new Map(), endpointslices: new Map(),
  };
  /** Kinds whose current map was handed out by `snapshot()` and must be copied before writing. */
  readonly #shared = new Set<ResourceKind>();
  readonly #listeners = new Set<StoreListener>();
  #revision = 0;
  #rv: bigint | undefined;

  /** Increases by one with every effective change. */
  get revision(): number {
    return this.#revision;
  }

  /** Highest resourceVersion seen from events, lists and bookmarks ('' before any). */
  get resourceVersion(): string {
    return this.#rv === undefined ? '' : this.#rv.toString();
  }

  get resourceVersionNumber(): bigint | undefined {
    return this.#rv;
  }

  get<K extends ResourceKind>(kind: K, key: string): ResourceTypes[K] | undefined {
    return this.#maps[kind].get(key) as ResourceTypes[K] | undefined;
  }

  list<K extends ResourceKind>(kind: K): ResourceTypes[K][] {
    return [...this.#maps[kind].values()] as ResourceTypes[K][];
  }

  size(kind: ResourceKind): number {
    return this.#maps[kind].size;
  }

  /** Registers a change listener; returns the function that removes it. */
  subscribe(listener: StoreListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Records a resourceVersion seen (event, list, bookmark); keeps the highest.
   * Non-integer versions are ignored (see parseResourceVersion).
   */
  observeResourceVersion(rv: string | undefined): void {
    const n = parseResourceVersion(rv);
    if (n !== undefined && (this.#rv === undefined || n > this.#rv)) this.#rv = n;
  }

  /** Adds or updates an object. Returns whether the store changed. */
  upsert<K extends ResourceKind>(kind: K, obj: ResourceTypes[K]): boolean {
    this.observeResourceVersion(obj.metadata.resourceVersion);
    const key = keyOf(kind, obj);
    const old = this.#maps[kind].get(key) as ResourceTypes[K] | undefined;
    if (old && sameContent(old, obj)) return false;
    this.#writable(kind).set(key, obj as never);
    this.#changed({ kind, key, old, new: obj });
    return true;
  }

  /**
   * Removes an object by key. `rv` is the deletion's resourceVersion when known.
   * Returns whether the store changed (removing an absent object is not a change).
   */
  remove(kind: ResourceKind, key: string, rv?: string): boolean {
    this.observeResourceVersion(rv);
    const old = this.#maps[kind].get(key);
    if (!old) return false;
    this.#writable(kind).delete(key);
    this.#changed({ kind, key, old } as StoreChange);
    return true;
  }

  /**
   * Makes the objects of one kind that `owns` selects exactly `objs` (a relist): upserts
   * each, removes the owned ones that are missing. `owns` lets two informers share a kind
   * (NetworkPolicies and PalisadeNetworkPolicies both live in `policies`).
   * Returns the number of changes.
   */
  replace<K extends ResourceKind>(
    kind: K, objs: readonly ResourceTypes[K][], rv: string | undefined,
    owns: (o: ResourceTypes[K]) => boolean = () => true,
  ): number {
    let n = 0;
    const keep = new Set<string>();
    for (const o of objs) {
      keep.add(keyOf(kind, o));
      if (this.upsert(kind, o)) n++;
    }
    for (const [key, o] of [...this.#maps[kind]]) {
      if (!keep.has(key) && owns(o as ResourceTypes[K]) && this.remove(kind, key)) n++;
    }
    this.observeResourceVersion(rv);
    return n;
  }

  /** A consistent immutable view; O(1) (see the class comment). */
  snapshot(): StoreSnapshot {
    for (const k of resourceKinds) this.#shared.add(k);
    return {
      revision: this.#revision,
      resourceVersion: this.resourceVersion,
      pods: this.#maps.pods,
      namespaces: this.#maps.namespaces,
      nodes: this.#maps.nodes,
      policies: this.#maps.policies,
      services: this.#maps.services,
      endpointslices: this.#maps.endpointslices,
    };
  }

  #writable<K extends ResourceKind>(kind: K): Maps[K] {
    if (this.#shared.has(kind)) {
      (this.#maps[kind] as Map<string, unknown>) = new Map(this.#maps[kind] as Map<string, unknown>);
      this.#shared.delete(kind);
    }
    return this.#maps[kind];
  }

  #changed(change: StoreChange): void {
    this.#revision++;
    for (const l of [...this.#listeners]) l(change);
  }
}

export type { AnyResource, ResourceKind, ResourceTypes };
