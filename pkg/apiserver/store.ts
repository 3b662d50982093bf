/**
 * The in-memory object store with the semantics of the real API server's registry:
 * one global, integer-valued resourceVersion counter (string-typed on the wire), uid and
 * creationTimestamp on create, generation bumps on spec changes, optimistic concurrency,
 * namespace existence checks, finalizers, namespace cascade (immediate: contents are
 * deleted with the namespace, there is no Terminating phase), CRD registration, and a
 * bounded event history that watches replay from.
 *
 * Everything is synchronous: a write, its watch events and the answer to the request
 * happen in one turn of the event loop, so watchers see events in resourceVersion order.
 */
import { randomUUID } from 'node:crypto';
import {
  alreadyExists,
  ApiError,
  badRequest,
  cause,
  conflict,
  expired,
  invalid,
  notFound,
  STALE_RV,
  type StatusCause,
} from './errors.ts';
import { validateCustomResource } from './crdschema.ts';
import { clone, deepEqual, isObj, metaOf, rfc3339, type KObject, type Obj } from './json.ts';
import { apiVersionOf, Registry, storageKey, typesFromCrd, type ResourceType } from './registry.ts';
import {
  applyDefaults,
  ClusterIpAllocator,
  onDeleted,
  prepareForCreate,
  prepareForUpdate,
  validate,
  type StrategyContext,
} from './strategy.ts';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface LogEntry {
  rv: number;
  type: EventType;
  skey: string;
  obj: KObject;
  prev: KObject | undefined;
}

/** Decides whether a watcher sees an object (namespace, label and field selectors). */
export type ObjectFilter = (o: KObject) => boolean;

/** A stored change, for in-process listeners (controllers). */
export interface StoreEvent {
  type: EventType;
  resource: ResourceType;
  object: KObject;
  previous?: KObject;
}

export interface WatchEvent {
  type: EventType;
  object: KObject;
}

interface Watcher {
  skey: string;
  filter: ObjectFilter;
  send: (e: WatchEvent) => void;
  /** Called when the resource stops being served (its CRD was deleted). */
  gone: () => void;
}

export interface StoreOptions {
  /** Watch events kept for resuming watches; older resourceVersions get 410 Gone. */
  compactAfter?: number;
  /** IPv4 CIDR ClusterIPs are allocated from. */
  serviceCidr?: string;
}

export interface WriteOptions {
  /** `dryRun=All`: run every check and return the result without storing it. */
  dryRun?: boolean;
  /**
   * What to do about unknown fields (custom resources only; built-in kinds carry no
   * schema here): Strict fails with 400, Warn (the server default) adds a warning,
   * Ignore drops them silently. Unknown fields are pruned in every case.
   */
  fieldValidation?: 'Strict' | 'Warn' | 'Ignore';
  /** Receives warnings for the response's Warning headers. */
  warnings?: string[];
}

export interface DeleteOptions extends WriteOptions {
  preconditions?: { uid?: string; resourceVersion?: string };
}

/** Where an update writes: the whole object, or only its status subresource. */
export type Subresource = 'status' | undefined;

const CREATE_ON_UPDATE = new Set(['Event', 'EndpointSlice', 'Lease']);
const GENERATE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function objKey(ns: string | undefined, name: string): string {
  return `${ns ?? ''}/${name}`;
}

/** The parts of an object that make a "spec change" (everything but metadata and status). */
function specPart(o: KObject): Obj {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
  return rest;
}

export class Store {
  readonly registry: Registry;
  private readonly objects = new Map<string, Map<string, KObject>>();
  private readonly log: LogEntry[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly writeListeners = new Set<(e?: StoreEvent) => void>();
  private readonly ctx: StrategyContext;
  private readonly compactAfter: number;
  private rv = 0;
  /** Watches may start from any resourceVersion >= this one. */
  private oldestRv = 0;

  constructor(opts: StoreOptions = {}, registry = new Registry()) {
    this.registry = registry;
    this.compactAfter = opts.compactAfter ?? 10_000;
    this.ctx = { clusterIps: new ClusterIpAllocator(opts.serviceCidr ?? '10.96.0.0/16') };
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.create(this.type('', 'v1', 'namespaces'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    }
  }

  /** The current (latest issued) resourceVersion. */
  resourceVersion(): string {
    return String(this.rv);
  }

  /** The oldest resourceVersion a watch may still start from. */
  oldestResourceVersion(): string {
    return String(this.oldestRv);
  }

  /**
   * Drops the whole event history and advances the resourceVersion by one, so that a
   * watch resuming from any resourceVersion handed out before gets 410 Gone (what an
   * etcd compaction does to a client that fell behind). Open watches are not touched.
   */
  compact(): void {
    this.rv++;
    for (const l of [...this.writeListeners]) l();
    this.log.length = 0;
    this.oldestRv = this.rv;
  }

  type(group: string, version: string, plural: string): ResourceType {
    const t = this.registry.lookup(group, version, plural);
    if (!t) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${group || 'core'}/${version} ${plural})`);
    return t;
  }

  private bucket(t: ResourceType): Map<string, KObject> {
    const k = storageKey(t);
    let m = this.objects.get(k);
    if (!m) {
      m = new Map();
      this.objects.set(k, m);
    }
    return m;
  }

  /** Stamps apiVersion/kind of the requested version (versions share storage). */
  private view(t: ResourceType, o: KObject): KObject {
    if (o.apiVersion === apiVersionOf(t) && o.kind === t.kind) return o;
    return { ...o, apiVersion: apiVersionOf(t), kind: t.kind };
  }

  get(t: ResourceType, ns: string | undefined, name: string): KObject {
    const o = this.bucket(t).get(objKey(t.namespaced ? ns : undefined, name));
    if (!o) throw notFound(t, name);
    return this.view(t, o);
  }

  /** Objects of a type (in one namespace when `ns` is set) that pass `filter`, sorted by namespace/name. */
  list(t: ResourceType, ns: string | undefined, filter: ObjectFilter = () => true): { items: KObject[]; resourceVersion: string } {
    const items: KObject[] = [];
    for (const o of this.bucket(t).values()) {
      if (t.namespaced && ns !== undefined && o.metadata.namespace !== ns) continue;
      if (filter(o)) items.push(this.view(t, o));
    }
    items.sort((a, b) => objKey(a.metadata.namespace, a.metadata.name ?? '').localeCompare(objKey(b.metadata.namespace, b.metadata.name ?? '')));
    return { items, resourceVersion: this.resourceVersion() };
  }

  private emit(type: EventType, t: ResourceType, obj: KObject, prev: KObject | undefined): void {
    const e: LogEntry = { rv: this.rv, type, skey: storageKey(t), obj, prev };
    this.log.push(e);
    if (this.log.length > this.compactAfter) {
      const dropped = this.log.splice(0, this.log.length - this.compactAfter);
      this.oldestRv = (dropped[dropped.length - 1] as LogEntry).rv;
    }
    for (const w of [...this.watchers]) deliver(w, e);
    const se: StoreEvent = { type, resource: t, object: obj, ...(prev ? { previous: prev } : {}) };
    for (const l of [...this.writeListeners]) l(se);
  }

  /**
   * Calls `listener` after every write (of any resource) with its event, after watchers
   * got it; `compact()` calls it without one. Returns the unsubscribe.
   */
  onWrite(listener: (e?: StoreEvent) => void): () => void {
    this.writeListeners.add(listener);
    return () => {
      this.writeListeners.delete(listener);
    };
  }

  private checkValid(t: ResourceType, o: KObject, opts: WriteOptions, extra: StatusCause[] = []): void {
    const causes = [...extra, ...validate(t, o)];
    if (t.custom) {
      const r = validateCustomResource(t, o);
      causes.push(...r.causes);
      const unknown = r.pruned.map((p) => `unknown field "${p}"`);
      if (unknown.length > 0 && opts.fieldValidation === 'Strict') throw badRequest(`strict decoding error: ${unknown.join(', ')}`);
      if (opts.fieldValidation !== 'Ignore') opts.warnings?.push(...unknown);
    }
    if (causes.length > 0) throw invalid(t.group, t.kind, o.metadata.name ?? '', causes);
  }

  private checkNamespace(t: ResourceType, o: KObject): void {
    if (!t.namespaced) {
      delete o.metadata.namespace;
      return;
    }
    const ns = o.metadata.namespace;
    if (!ns) throw invalid(t.group, t.kind, o.metadata.name ?? '', [cause.required('metadata.namespace')]);
    const nsType = this.type('', 'v1', 'namespaces');
    const nsObj = this.bucket(nsType).get(objKey(undefined, ns));
    if (!nsObj) throw notFound(nsType, ns);
    if (nsObj.metadata.deletionTimestamp) {
      throw new ApiError(403, 'Forbidden', `${t.plural} "${o.metadata.name}" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`);
    }
  }

  /** Creates `input` (namespace taken from its metadata). Returns the stored object. */
  create(t: ResourceType, input: Obj, opts: WriteOptions = {}): KObject {
    if (!isObj(input)) throw badRequest('the body of the request must be a JSON object');
    const o = clone(input) as KObject;
    const meta = metaOf(o);
    o.apiVersion = apiVersionOf(t);
    o.kind = t.kind;
    if (!meta.name && meta.generateName) {
      let suffix = '';
      for (let i = 0; i < 5; i++) suffix += GENERATE_ALPHABET[Math.floor(Math.random() * GENERATE_ALPHABET.length)];
      meta.name = `${meta.generateName}${suffix}`;
    }
    if (meta.resourceVersion) {
      throw invalid(t.group, t.kind, meta.name ?? '', [cause.invalid('metadata.resourceVersion', meta.resourceVersion, 'must be empty on create')]);
    }
    this.checkNamespace(t, o);
    for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink']) delete meta[k];
    applyDefaults(t, o);
    const bucket = this.bucket(t);
    const key = objKey(meta.namespace, meta.name ?? '');
    if (meta.name && bucket.has(key)) throw alreadyExists(t, meta.name);
    this.checkValid(t, o, opts);
    const causes = prepareForCreate(t, o, this.ctx);
    if (causes.length > 0) throw invalid(t.group, t.kind, meta.name ?? '', causes);
    meta.uid = randomUUID();
    meta.creationTimestamp = rfc3339();
    meta.generation = 1;
    if (opts.dryRun) {
      // Like upstream's dry run: allocations (ClusterIPs) are made, shown, and given back.
      onDeleted(t, o, this.ctx);
      return o;
    }
    this.rv++;
    meta.resourceVersion = String(this.rv);
    bucket.set(key, o);
    if (t.kind === 'CustomResourceDefinition' && !t.custom) this.registerCrd(o);
    this.emit('ADDED', t, o, undefined);
    return this.view(t, o);
  }

  /**
   * Replaces an object (PUT). `subresource: 'status'` changes only the status; otherwise
   * the status of a kind with a status subresource is kept. A set metadata.resourceVersion
   * must equal the stored one (409 Conflict otherwise).
   */
  update(t: ResourceType, input: Obj, sub: Subresource = undefined, opts: WriteOptions = {}): KObject {
    if (!isObj(input)) throw badRequest('the body of the request must be a JSON object');
    const next = clone(input) as KObject;
    const meta = metaOf(next);
    next.apiVersion = apiVersionOf(t);
    next.kind = t.kind;
    if (!t.namespaced) delete meta.namespace;
    const name = meta.name ?? '';
    if (!name) throw invalid(t.group, t.kind, '', [cause.required('metadata.name')]);
    const bucket = this.bucket(t);
    const key = objKey(meta.namespace, name);
    const prev = bucket.get(key);
    if (!prev) {
      if (sub === undefined && !t.custom && CREATE_ON_UPDATE.has(t.kind)) {
        delete meta.resourceVersion;
        return this.create(t, next, opts);
      }
      throw notFound(t, name);
    }
    if (meta.resourceVersion) {
      if (meta.resourceVersion !== prev.metadata.resourceVersion) throw conflict(t, name, STALE_RV);
    } else if (t.custom) {
      throw invalid(t.group, t.kind, name, [cause.invalid('metadata.resourceVersion', 0, 'must be specified for an update')]);
    }
    if (meta.uid !== undefined && meta.uid !== prev.metadata.uid) {
      throw conflict(t, name, `Precondition failed: UID in precondition: ${String(meta.uid)}, UID in object meta: ${prev.metadata.uid}`);
    }
    let result: KObject;
    if (sub === 'status') {
      result = { ...clone(prev), status: next.status };
      if (next.status === undefined) delete result.status;
    } else {
      result = next;
      if (t.statusSubresource) {
        if (prev.status === undefined) delete result.status;
        else result.status = clone(prev.status);
      }
      applyDefaults(t, result);
    }
    const rm = metaOf(result);
    for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation']) {
      if (prev.metadata[k] === undefined) delete rm[k];
      else rm[k] = prev.metadata[k];
    }
    // Omitted managedFields mean "unchanged" (an explicit empty list clears them).
    if (rm.managedFields === undefined && prev.metadata.managedFields !== undefined) rm.managedFields = clone(prev.metadata.managedFields);
    rm.namespace = prev.metadata.namespace;
    if (rm.namespace === undefined) delete rm.namespace;
    rm.resourceVersion = prev.metadata.resourceVersion;
    const extra = sub === 'status' ? [] : prepareForUpdate(t, result, prev);
    this.checkValid(t, result, opts, extra);
    if (!deepEqual(specPart(result), specPart(prev))) rm.generation = (prev.metadata.generation ?? 0) + 1;
    // A write that changes nothing is not a write: no new resourceVersion, no event.
    if (deepEqual(result, prev)) return this.view(t, prev);
    if (opts.dryRun) return this.view(t, result);
    if (rm.deletionTimestamp && (rm.finalizers ?? []).length === 0) {
      return this.remove(t, prev, result);
    }
    this.rv++;
    rm.resourceVersion = String(this.rv);
    bucket.set(key, result);
    if (t.kind === 'CustomResourceDefinition' && !t.custom) this.registerCrd(result);
    this.emit('MODIFIED', t, result, prev);
    return this.view(t, result);
  }

  /**
   * Deletes an object. With finalizers it only gets a deletionTimestamp (and goes when the
   * last finalizer is removed). A namespace takes its contents with it; a CRD takes its
   * custom resources and its API endpoints.
   */
  delete(t: ResourceType, ns: string | undefined, name: string, opts: DeleteOptions = {}): KObject {
    const bucket = this.bucket(t);
    const key = objKey(t.namespaced ? ns : undefined, name);
    const prev = bucket.get(key);
    if (!prev) throw notFound(t, name);
    const pre = opts.preconditions ?? {};
    if (pre.uid && pre.uid !== prev.metadata.uid) {
      throw conflict(t, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${prev.metadata.uid}`);
    }
    if (pre.resourceVersion && pre.resourceVersion !== prev.metadata.resourceVersion) {
      throw conflict(t, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${prev.metadata.resourceVersion}`);
    }
    if (opts.dryRun) return this.view(t, prev);
    if ((prev.metadata.finalizers ?? []).length > 0) {
      if (prev.metadata.deletionTimestamp) return this.view(t, prev);
      const next = clone(prev);
      next.metadata.deletionTimestamp = rfc3339();
      next.metadata.deletionGracePeriodSeconds = 0;
      this.rv++;
      next.metadata.resourceVersion = String(this.rv);
      bucket.set(key, next);
      this.emit('MODIFIED', t, next, prev);
      return this.view(t, next);
    }
    return this.remove(t, prev, prev);
  }

  private remove(t: ResourceType, prev: KObject, last: KObject): KObject {
    if (!t.custom && t.kind === 'Namespace') this.deleteNamespaceContents(prev.metadata.name ?? '');
    if (!t.custom && t.kind === 'CustomResourceDefinition') this.unregisterCrd(prev);
    const gone = clone(last);
    this.rv++;
    gone.metadata.resourceVersion = String(this.rv);
    this.bucket(t).delete(objKey(prev.metadata.namespace, prev.metadata.name ?? ''));
    onDeleted(t, prev, this.ctx);
    this.emit('DELETED', t, gone, prev);
    return this.view(t, gone);
  }

  private deleteNamespaceContents(ns: string): void {
    const seen = new Set<string>();
    for (const t of this.registry.all()) {
      if (!t.namespaced || seen.has(storageKey(t))) continue;
      seen.add(storageKey(t));
      for (const o of [...this.bucket(t).values()]) {
        if (o.metadata.namespace === ns) this.remove(t, o, o);
      }
    }
  }

  /** Registers (or re-registers after an update) the resource types a CRD serves. */
  private registerCrd(crd: KObject): void {
    const types = typesFromCrd(crd);
    const first = types[0];
    if (!first) return;
    this.registry.removeResource(first.group, first.plural);
    for (const t of types) this.registry.add(t);
  }

  private unregisterCrd(crd: KObject): void {
    const types = typesFromCrd(crd);
    const first = types[0];
    if (!first) return;
    for (const o of [...this.bucket(first).values()]) this.remove(first, o, o);
    this.objects.delete(storageKey(first));
    // Watches on a resource that is no longer served end, as they do upstream.
    for (const w of [...this.watchers]) {
      if (w.skey === storageKey(first)) {
        this.watchers.delete(w);
        w.gone();
      }
    }
    this.registry.removeResource(first.group, first.plural);
  }

  /**
   * Subscribes to changes of one resource. `fromRv` undefined or "0": synthetic ADDED
   * events for the current objects first; otherwise every retained event after fromRv
   * (410 Expired when fromRv is older than the retained window). Returns the unsubscribe.
   */
  watch(
    t: ResourceType,
    fromRv: string | undefined,
    filter: ObjectFilter,
    send: (e: WatchEvent) => void,
    gone: () => void = () => undefined,
  ): () => void {
    const w: Watcher = { skey: storageKey(t), filter, send: (e) => send({ type: e.type, object: this.view(t, e.object) }), gone };
    if (fromRv === undefined || fromRv === '' || fromRv === '0') {
      for (const o of this.bucket(t).values()) if (filter(o)) w.send({ type: 'ADDED', object: o });
    } else {
      if (!/^\d+$/.test(fromRv)) throw badRequest(`invalid resource version "${fromRv}"`);
      const from = Number(fromRv);
      if (from < this.oldestRv) throw expired(fromRv, String(this.oldestRv));
      for (const e of this.log) if (e.rv > from && e.skey === w.skey) deliver(w, e);
    }
    this.watchers.add(w);
    return () => {
      this.watchers.delete(w);
    };
  }

  /** Number of open watches (for tests). */
  watchCount(): number {
    return this.watchers.size;
  }
}

/**
 * Selector-aware delivery: an object that stops matching a watcher's selectors is
 * reported as DELETED, one that starts matching as ADDED, as the real watch cache does.
 */
function deliver(w: Watcher, e: LogEntry): void {
  if (e.skey !== w.skey) return;
  const now = w.filter(e.obj);
  const before = e.prev !== undefined && w.filter(e.prev);
  if (e.type === 'ADDED') {
    if (now) w.send({ type: 'ADDED', object: e.obj });
  } else if (e.type === 'DELETED') {
    if (before || now) w.send({ type: 'DELETED', object: e.obj });
  } else if (now && before) w.send({ type: 'MODIFIED', object: e.obj });
  else if (now) w.send({ type: 'ADDED', object: e.obj });
  else if (before) w.send({ type: 'DELETED', object: e.obj });
}
