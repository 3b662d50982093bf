/**
 * An EndpointSlice controller (the part of kube-controller-manager that Service traffic
 * depends on), opt-in with `startApiServer({ endpointSliceController: true })`.
 *
 * For every Service with a selector (not ExternalName) it keeps EndpointSlices labelled
 * `kubernetes.io/service-name=<service>` and
 * `endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io`, owned by the
 * Service, holding one endpoint per selected Pod that has an IPv4 address and is not
 * terminal: `addresses: [podIP]`, `conditions.ready` = the Pod's `Ready` condition (or
 * true with `publishNotReadyAddresses`), `serving`, `terminating`, `nodeName`,
 * `targetRef`. Ports are the Service's ports with `targetPort` resolved against each Pod
 * (a named targetPort is looked up in the Pod's container ports; a Pod that lacks it is
 * left out of that port), so Pods that resolve differently land in different slices, as
 * upstream. A Service without endpoints keeps one slice without endpoints or ports. Not
 * done: the 100-endpoint slice limit, dual stack, topology hints.
 *
 * Work is coalesced per namespace and runs in a microtask after the write that caused
 * it, so the API response of that write is never delayed and never sees the controller's
 * writes half done.
 */
import { deepEqual, isObj, objAt, strAt, type KObject, type Obj } from './json.ts';
import { matchLabels, type LabelRequirement } from './selectors.ts';
import type { Store, StoreEvent } from './store.ts';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const CONTROLLER_NAME = 'endpointslice-controller.k8s.io';

interface SlicePort extends Obj {
  name: string;
  port: number;
  protocol: string;
}

function arr(v: unknown): Obj[] {
  return Array.isArray(v) ? v.filter(isObj) : [];
}

function selectorOf(svc: KObject): LabelRequirement[] | undefined {
  const sel = objAt(objAt(svc.spec).selector);
  const entries = Object.entries(sel);
  if (entries.length === 0) return undefined;
  return entries.map(([key, v]) => ({ key, op: 'eq', values: [String(v)] }));
}

function podReady(pod: KObject): boolean {
  return arr(objAt(pod.status).conditions).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The Service's ports as this Pod serves them; undefined entries are ports the Pod lacks. */
function resolvePorts(svc: KObject, pod: KObject): SlicePort[] {
  const out: SlicePort[] = [];
  const containerPorts = arr(objAt(pod.spec).containers).flatMap((c) => arr(c.ports));
  for (const p of arr(objAt(svc.spec).ports)) {
    const protocol = String(p.protocol ?? 'TCP');
    const target = p.targetPort ?? p.port;
    let port: number | undefined;
    if (typeof target === 'number') port = target;
    else if (typeof target === 'string') {
      const cp = containerPorts.find((c) => c.name === target && String(c.protocol ?? 'TCP') === protocol);
      if (typeof cp?.containerPort === 'number') port = cp.containerPort;
    }
    if (port === undefined) continue;
    const sp: SlicePort = { name: strAt(p.name) ?? '', port, protocol };
    if (typeof p.appProtocol === 'string') sp.appProtocol = p.appProtocol;
    out.push(sp);
  }
  return out;
}

export class EndpointSliceController {
  private readonly store: Store;
  private readonly dirty = new Set<string>();
  private scheduled = false;
  private stopped = false;
  private readonly unsubscribe: () => void;

  constructor(store: Store) {
    this.store = store;
    this.unsubscribe = store.onWrite((e) => this.observe(e));
    for (const svc of this.list('Service')) this.mark(svc.metadata.namespace);
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
  }

  private list(kind: 'Service' | 'Pod' | 'EndpointSlice', ns?: string): KObject[] {
    const [g, v, plural] = kind === 'EndpointSlice' ? ['discovery.k8s.io', 'v1', 'endpointslices'] : ['', 'v1', kind === 'Pod' ? 'pods' : 'services'];
    return this.store.list(this.store.type(g, v, plural), ns).items;
  }

  private observe(e: StoreEvent | undefined): void {
    if (!e || e.resource.custom || e.resource.group !== '') return;
    if (e.resource.kind === 'Pod' || e.resource.kind === 'Service') this.mark(e.object.metadata.namespace);
  }

  private mark(ns: string | undefined): void {
    if (ns === undefined || this.stopped) return;
    this.dirty.add(ns);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      const namespaces = [...this.dirty];
      this.dirty.clear();
      for (const n of namespaces) this.syncNamespace(n);
    });
  }

  /** Reconciles every managed slice in one namespace. Exposed for tests. */
  syncNamespace(ns: string): void {
    if (this.stopped) return;
    let nsExists = true;
    try {
      this.store.get(this.store.type('', 'v1', 'namespaces'), undefined, ns);
    } catch {
      nsExists = false;
    }
    if (!nsExists) return;
    const services = this.list('Service', ns);
    const pods = this.list('Pod', ns);
    const slices = this.list('EndpointSlice', ns).filter((s) => s.metadata.labels?.[MANAGED_BY_LABEL] === CONTROLLER_NAME);
    const wanted = new Set<string>();
    for (const svc of services) {
      const sel = selectorOf(svc);
      if (!sel || objAt(svc.spec).type === 'ExternalName') continue;
      wanted.add(svc.metadata.name ?? '');
      const own = slices.filter((s) => s.metadata.labels?.[SERVICE_NAME_LABEL] === svc.metadata.name);
      this.syncService(svc, pods.filter((p) => matchLabels(sel, p.metadata.labels)), own);
    }
    for (const s of slices) {
      if (!wanted.has(s.metadata.labels?.[SERVICE_NAME_LABEL] ?? '')) this.deleteSlice(s);
    }
  }

  private syncService(svc: KObject, pods: KObject[], existing: KObject[]): void {
    const publishNotReady = objAt(svc.spec).publishNotReadyAddresses === true;
    const groups = new Map<string, { ports: SlicePort[]; endpoints: Obj[] }>();
    for (const pod of [...pods].sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''))) {
      const st = objAt(pod.status);
      const ip = strAt(st.podIP);
      if (!ip || ip.includes(':') || st.phase === 'Succeeded' || st.phase === 'Failed') continue;
      const terminating = pod.metadata.deletionTimestamp !== undefined;
      const ready = (publishNotReady || podReady(pod)) && !terminating;
      const ep: Obj = {
        addresses: [ip],
        conditions: { ready, serving: publishNotReady || podReady(pod), terminating },
        targetRef: { kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid },
      };
      const node = strAt(objAt(pod.spec).nodeName);
      if (node) ep.nodeName = node;
      const ports = resolvePorts(svc, pod);
      const key = JSON.stringify(ports);
      const g = groups.get(key) ?? { ports, endpoints: [] };
      g.endpoints.push(ep);
      groups.set(key, g);
    }
    if (groups.size === 0) groups.set('[]', { ports: [], endpoints: [] });
    // Slices whose ports already match are updated in place; the rest are reused for the
    // remaining groups (fewer deletes and creates for watchers), then created or deleted.
    const unused = [...existing];
    const pending: { ports: SlicePort[]; endpoints: Obj[] }[] = [];
    for (const [key, g] of groups) {
      const at = unused.findIndex((s) => JSON.stringify(arr(s.ports)) === key);
      if (at >= 0) this.writeSlice(svc, g.ports, g.endpoints, unused.splice(at, 1)[0]);
      else pending.push(g);
    }
    for (const g of pending) this.writeSlice(svc, g.ports, g.endpoints, unused.shift());
    for (const s of unused) this.deleteSlice(s);
  }

  private writeSlice(svc: KObject, ports: SlicePort[], endpoints: Obj[], current: KObject | undefined): void {
    const t = this.store.type('discovery.k8s.io', 'v1', 'endpointslices');
    const labels = { ...(svc.metadata.labels ?? {}), [SERVICE_NAME_LABEL]: svc.metadata.name ?? '', [MANAGED_BY_LABEL]: CONTROLLER_NAME };
    const ownerReferences = [{ apiVersion: 'v1', kind: 'Service', name: svc.metadata.name, uid: svc.metadata.uid, controller: true, blockOwnerDeletion: true }];
    if (current) {
      if (deepEqual(current.endpoints ?? [], endpoints) && deepEqual(current.ports ?? [], ports) && deepEqual(current.metadata.labels, labels)) return;
      this.store.update(t, { ...current, metadata: { ...current.metadata, labels, ownerReferences }, ports, endpoints });
      return;
    }
    this.store.create(t, {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { generateName: `${svc.metadata.name}-`, namespace: svc.metadata.namespace, labels, ownerReferences },
      addressType: 'IPv4',
      ports,
      endpoints,
    });
  }

  private deleteSlice(s: KObject): void {
    try {
      this.store.delete(this.store.type('discovery.k8s.io', 'v1', 'endpointslices'), s.metadata.namespace, s.metadata.name ?? '');
    } catch {
      // Already gone (deleted with its namespace or by a client): nothing to do.
    }
  }
}
