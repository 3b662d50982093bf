/**
 * What the agent publishes as status objects, computed from its own state and handed to
 * the rate-limited StatusWriter:
 * - one `PalisadeEndpoint` per local pod endpoint (same namespace and name as the pod,
 *   owned by the pod so the cluster's garbage collector removes it even when this node
 *   is gone), deleted when the endpoint goes;
 * - one `PalisadeNode` named after the node.
 *
 * What does not cause a write on its own (docs/inspect.md explains why):
 * - an endpoint's `realizedRevision`: it is the revision at which the endpoint's current
 *   identity, enforcement and policy set were realized, written with them; the node's
 *   revision moves with every change in the cluster, and rewriting every endpoint object
 *   each time is exactly the load status must never cause;
 * - the node's revision and per-map entries: written with any other change of the node
 *   object and at least every `heartbeatMs` (with `lastHeartbeat`).
 *
 * `start()` adopts the objects an earlier run of this node left (labelled with the node)
 * and deletes those whose endpoint is gone.
 */
import type { Direction } from '../datapath/types.ts';
import { NODE_LABEL, type ObjectRef, type StatusApi, type StatusMeta } from './api.ts';
import { mapPressure, type MapUsage } from './maps.ts';
import type { StatusWriter } from './writer.ts';

/** A local endpoint as the agent knows it (endpoint manager record + control-plane details). */
export interface EndpointFacts {
  endpointId: number;
  podNamespace: string;
  podName: string;
  podUid?: string;
  containerId: string;
  hostIfName: string;
  ipv4: string;
  /** From the control plane; absent before its first compile. */
  identity?: number;
  ingressEnforced?: boolean;
  egressEnforced?: boolean;
  /** Policy keys per direction. */
  policies?: Partial<Record<Direction, string[]>>;
  /** Revision realized for this endpoint; absent until its first reconcile. */
  revision?: number;
}

export interface ReporterSources {
  node: string;
  version: string;
  /**
   * How programs attach (`tcx`, `clsact`), or the test datapath's name; absent = not
   * written. A function is read at every refresh (the mode in use can change: tcx asked
   * for, clsact after the kernel refused it).
   */
  datapathMode?: string | (() => string | undefined);
  endpoints(): EndpointFacts[];
  /** Why the agent is not ready, or undefined. */
  notReadyReason(): string | undefined;
  revision(): number;
  maps(): Promise<readonly MapUsage[]>;
}

export interface StatusReporterOptions {
  sources: ReporterSources;
  writer: StatusWriter;
  api: StatusApi;
  /** Node object rewritten at least this often (default 60 s). */
  heartbeatMs?: number;
  /** Map pressure (percent) from which the node is `degraded` (default 90). */
  degradedPressure?: number;
  now?: () => number;
}

const STATUS_ONLY_FIELDS = new Set(['realizedRevision', 'lastUpdated', 'lastHeartbeat', 'maps']);

/** The fingerprint of a status: every field but those that must not cause a write alone. */
export function statusFingerprint(status: Record<string, unknown> | undefined): string | undefined {
  if (!status) return undefined;
  const kept = Object.keys(status).filter((k) => !STATUS_ONLY_FIELDS.has(k) && status[k] !== null && status[k] !== undefined).sort();
  return JSON.stringify(kept.map((k) => [k, status[k]]));
}

/** The PalisadeEndpoint status of an endpoint (null = remove the field). */
export function endpointStatus(ep: EndpointFacts, node: string): Record<string, unknown> {
  const policies = [...new Set([...(ep.policies?.ingress ?? []), ...(ep.policies?.egress ?? [])])].sort();
  const computed = ep.identity !== undefined;
  const realized = computed && ep.revision !== undefined;
  return {
    endpointId: ep.endpointId,
    identity: ep.identity ?? null,
    ingressEnforcement: ep.ingressEnforced ? 'enabled' : 'disabled',
    egressEnforcement: ep.egressEnforced ? 'enabled' : 'disabled',
    policies,
    policyCount: policies.length,
    realizedRevision: realized ? ep.revision : null,
    ipv4: ep.ipv4,
    node,
    containerId: ep.containerId,
    interface: ep.hostIfName,
    state: realized ? 'ready' : 'waiting',
    message: realized ? '' : computed ? 'policy not realized yet' : 'policy not computed yet (control plane not synced)',
  };
}

export class StatusReporter {
  readonly #o: StatusReporterOptions;
  readonly #now: () => number;

  constructor(o: StatusReporterOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  get #node(): string {
    return this.#o.sources.node;
  }

  #meta(ep?: EndpointFacts): StatusMeta {
    const meta: StatusMeta = { labels: { [NODE_LABEL]: this.#node, 'app.kubernetes.io/managed-by': 'palisade-agent' } };
    if (ep?.podUid) meta.ownerReferences = [{ apiVersion: 'v1', kind: 'Pod', name: ep.podName, uid: ep.podUid }];
    return meta;
  }

  /**
   * Adopts this node's existing objects (unchanged ones are not rewritten), queues the
   * deletion of endpoint objects whose endpoint is gone, then publishes the current state.
   */
  async start(): Promise<void> {
    const { api, writer } = this.#o;
    const selector = `${NODE_LABEL}=${this.#node}`;
    const current = new Map(this.#o.sources.endpoints().map((ep) => [`${ep.podNamespace}/${ep.podName}`, ep]));
    for (const o of await api.list('PalisadeEndpoint', selector)) {
      const ep = current.get(`${o.namespace}/${o.name}`);
      writer.adopt('PalisadeEndpoint', o, statusFingerprint(o.status), this.#meta(ep));
    }
    for (const o of await api.list('PalisadeNode', selector)) {
      writer.adopt('PalisadeNode', o, statusFingerprint(o.status), this.#meta());
    }
    await this.refresh();
  }

  /** Recomputes every object and hands changes to the writer. Cheap: no API calls. */
  async refresh(): Promise<void> {
    const { writer, sources } = this.#o;
    const byPod = new Map<string, EndpointFacts>();
    for (const ep of [...sources.endpoints()].sort((a, b) => a.endpointId - b.endpointId)) {
      if (!ep.podNamespace || !ep.podName) continue;
      const key = `${ep.podNamespace}/${ep.podName}`;
      // A pod with two interfaces: its first endpoint speaks for it.
      if (!byPod.has(key)) byPod.set(key, ep);
    }
    for (const ep of byPod.values()) {
      const status = endpointStatus(ep, this.#node);
      writer.set('PalisadeEndpoint', { namespace: ep.podNamespace, name: ep.podName }, {
        meta: this.#meta(ep), status, fingerprint: statusFingerprint(status)!,
      });
    }
    for (const ref of writer.known('PalisadeEndpoint')) {
      if (!byPod.has(`${ref.namespace}/${ref.name}`)) writer.set('PalisadeEndpoint', ref, undefined);
    }
    await this.#refreshNode(byPod.size);
  }

  async #refreshNode(endpoints: number): Promise<void> {
    const { sources } = this.#o;
    let maps: readonly MapUsage[] = [];
    let mapsError: string | undefined;
    try {
      maps = await sources.maps();
    } catch (err) {
      mapsError = `map usage unknown: ${(err as Error).message}`;
    }
    const pressure = mapPressure(maps);
    const notReady = sources.notReadyReason();
    const full = maps.filter((m) => m.pressure >= (this.#o.degradedPressure ?? 90));
    let health = 'healthy';
    let message = mapsError ?? '';
    if (notReady) {
      health = 'unhealthy';
      message = notReady;
    } else if (full.length) {
      health = 'degraded';
      message = `maps nearly full: ${full.map((m) => `${m.name} ${m.pressure}%`).join(', ')}`;
    }
    const mode = typeof sources.datapathMode === 'function' ? sources.datapathMode() : sources.datapathMode;
    const status: Record<string, unknown> = {
      agentVersion: sources.version,
      health,
      message,
      realizedRevision: sources.revision(),
      endpoints,
      ...(mode ? { datapathMode: mode } : {}),
      mapPressure: pressure,
      maps: maps.map((m) => ({ ...m })),
    };
    // The heartbeat period number makes the node object due once per period.
    const period = Math.floor(this.#now() / (this.#o.heartbeatMs ?? 60_000));
    const ref: ObjectRef = { name: this.#node };
    this.#o.writer.set('PalisadeNode', ref, {
      meta: this.#meta(), status, fingerprint: `${statusFingerprint(status)}#${period}`,
    });
  }
}
