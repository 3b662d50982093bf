/**
 * The control plane: turns the cluster's state (a `Cluster`) and this node's endpoints
 * into datapath state, through ONE coalescing reconciler.
 *
 * A reconcile takes a consistent snapshot (store maps + endpoints, stamped with the
 * current revision), compiles it, diffs the result against the applied state and applies
 * the difference (upserts before deletes). The revision increases with every store change
 * and every endpoint registration/removal; a completed reconcile realizes the revision
 * of its snapshot for every endpoint in it.
 *
 * Decisions (docs/control-plane.md explains them):
 * - Nothing is compiled from a partial view: before every informer finished its initial
 *   list, the datapath keeps what it had (re-read with `dump()` at start, so a restart
 *   does not disturb established flows), and an endpoint registered meanwhile gets an
 *   endpoint entry isolated both ways with no allow entries (fail closed; its identity is
 *   `world` until sync). Its `upsertEndpoint` resolves once that is in the datapath.
 *   After sync the first reconcile realizes the real policy.
 * - `waitFor(rv)` resolves once the cluster state covers resourceVersion `rv` (see
 *   Cluster.coverage) and the revision current at that moment has been realized.
 * - Compile problems are logged (once per distinct problem) and kept in `status()`;
 *   the compiler already fails closed for what it cannot parse.
 * - A failed datapath apply leaves the applied state unknown: the next reconcile re-reads
 *   it with `dump()` and retries after a backoff.
 */
import { changeSize, diffState } from '../datapath/diff.ts';
import type { Datapath, DatapathChange, DatapathState, EndpointEntry } from '../datapath/types.ts';
import { IDENTITY_WORLD } from '../identity/reserved.ts';
import type { Cluster } from '../k8s/cluster.ts';
import { errorMessage, silentLogger, systemClock, type Clock, type Logger } from '../k8s/clock.ts';
import type { BackoffOptions } from '../k8s/backoff.ts';
import { parseResourceVersion } from '../k8s/resources.ts';
import type { EndpointRealizer } from '../endpoint/types.ts';
import { parseIpv4 } from '../policy/ip.ts';
import type { ClusterSnapshot, LocalEndpoint } from '../policy/snapshot.ts';
import type { CompileResult, EndpointPolicySummary, PolicyProblem } from '../policy/types.ts';
import type { ProblemReporter } from './events.ts';
import { CoalescingRunner } from './runner.ts';
import { desiredServices, sameServices } from '../service/desired.ts';
import type { ServiceEntry } from '../datapath/types.ts';
import { desiredRouting, sameRouting, type Routing, type RoutingState } from './routes.ts';

/** What the control plane needs from the policy compiler (pkg/policy/compile.ts). */
export interface Compiler {
  compile(snapshot: ClusterSnapshot): CompileResult;
}

/** Errors the control plane hands out, with stable codes (the agent API maps them). */
export class ControlPlaneError extends Error {
  readonly code: 'PAL_WAIT_TIMEOUT' | 'PAL_BAD_RESOURCE_VERSION' | 'PAL_BAD_ENDPOINT'
    | 'PAL_REALIZE_TIMEOUT' | 'PAL_STOPPED';
  constructor(code: ControlPlaneError['code'], message: string) {
    super(message);
    this.name = 'ControlPlaneError';
    this.code = code;
  }
}

/** One completed reconcile, for metrics (realization latency) and debugging. */
export interface RealizedEvent {
  revision: number;
  /** resourceVersion the realized state covers ('' before any). */
  resourceVersion: string;
  /** False for reconciles before the initial sync (fail-closed state only). */
  synced: boolean;
  /** Map operations applied (upserts + deletes). */
  operations: number;
  /** From the oldest change this reconcile included to its completion, ms. */
  latencyMs: number;
  compileMs: number;
  applyMs: number;
  /** Whole reconcile, ms. */
  durationMs: number;
}

export interface EndpointStatus {
  endpointId: number;
  pod: string;
  ifindex: number;
  ipv4: string;
  /** Revision last realized for this endpoint; undefined until its first reconcile. */
  realizedRevision: number | undefined;
  /** From the last compile (undefined before sync). */
  policy: EndpointPolicySummary | undefined;
}

export interface ControlPlaneStatus {
  ready: boolean;
  synced: boolean;
  /** Current revision (changes seen). */
  revision: number;
  /** Revision of the state in the datapath. */
  realizedRevision: number;
  /** Highest resourceVersion seen. */
  resourceVersion: string;
  /** resourceVersion covered by the realized state. */
  realizedResourceVersion: string;
  endpoints: EndpointStatus[];
  problems: PolicyProblem[];
  lastReconcile: RealizedEvent | undefined;
  lastError: string | undefined;
}

export interface ControlPlaneOptions {
  cluster: Cluster;
  datapath: Datapath;
  compiler: Compiler;
  nodeName: string;
  /** Cross-node routes and masquerading; omitted = not managed here. */
  routing?: Routing;
  /** Cluster pod CIDRs for masquerading (default: union of the nodes' pod CIDRs). */
  clusterCIDRs?: readonly string[];
  clock?: Clock;
  log?: Logger;
  /** Coalescing: quiet time that ends a burst (default 2 ms). */
  minIntervalMs?: number;
  /** Coalescing: longest wait from a change to the start of its reconcile (default 20 ms). */
  maxDelayMs?: number;
  /** Backoff of retries after a failed reconcile. */
  retry?: BackoffOptions;
  /** How long upsertEndpoint/removeEndpoint wait for realization (default 15 s). */
  endpointTimeoutMs?: number;
  /** Told every synced reconcile's compile problems (Kubernetes Events: events.ts). */
  problemReporter?: ProblemReporter;
}

interface RvWaiter {
  rv: bigint;
  /** Revision to realize, fixed once the cluster covers rv. */
  revision: number | undefined;
  started: number;
  resolve: (v: WaitResult) => void;
  reject: (e: Error) => void;
  cancelTimeout: () => void;
}

interface RevisionWaiter {
  revision: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface WaitResult {
  resourceVersion: string;
  revision: number;
  waitedMs: number;
}

const problemKey = (p: PolicyProblem) => `${p.policy}\u0000${p.field}\u0000${p.message}`;

export class ControlPlane implements EndpointRealizer {
  readonly nodeName: string;
  readonly #cluster: Cluster;
  readonly #datapath: Datapath;
  readonly #compiler: Compiler;
  readonly #routing: Routing | undefined;
  readonly #clusterCIDRs: readonly string[];
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #runner: CoalescingRunner;
  readonly #endpointTimeoutMs: number;
  readonly #problemReporter: ProblemReporter | undefined;

  readonly #endpoints = new Map<number, LocalEndpoint>();
  /** Endpoints removed since start, so that the pre-sync state drops their entries. */
  readonly #removed = new Set<number>();
  readonly #realizedByEndpoint = new Map<number, number>();
  #revision = 0;
  /** Clock time of the oldest change not yet taken into a reconcile. */
  #changedSince: number | undefined;
  #applied: DatapathState | undefined;
  /** ClusterIP frontends in the datapath (docs/services.md); undefined = unknown. */
  #servicesApplied: ServiceEntry[] | undefined;
  readonly #serviceProblemsSeen = new Set<string>();
  /** The datapath state found at start (kept until the initial sync). */
  #baseline: DatapathState | undefined;
  #realized = 0;
  #realizedSynced = -1;
  #syncSeen = false;
  #realizedRv = '';
  #ready = false;
  #started = false;
  #starting = false;
  #stopped = false;
  #lastResult: CompileResult | undefined;
  #problems = new Set<string>();
  #lastEvent: RealizedEvent | undefined;
  #lastError: string | undefined;
  #routingApplied: RoutingState | undefined;
  #routingRetryPending = false;
  readonly #unsubscribe: (() => void)[] = [];
  readonly #rvWaiters = new Set<RvWaiter>();
  readonly #revWaiters = new Set<RevisionWaiter>();
  readonly #realizedListeners = new Set<(e: RealizedEvent) => void>();
  readonly #readyWaiters: (() => void)[] = [];
  #cancelRecheck: (() => void) | undefined;
  #settling = false;

  constructor(opts: ControlPlaneOptions) {
    if (!opts.nodeName) throw new TypeError('control plane: nodeName is required');
    this.nodeName = opts.nodeName;
    this.#cluster = opts.cluster;
    this.#datapath = opts.datapath;
    this.#compiler = opts.compiler;
    this.#routing = opts.routing;
    this.#clusterCIDRs = [...(opts.clusterCIDRs ?? [])];
    // Validate once, up front (bad input: clear error, nothing started).
    desiredRouting([], this.nodeName, { clusterCIDRs: this.#clusterCIDRs });
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log ?? silentLogger;
    this.#endpointTimeoutMs = opts.endpointTimeoutMs ?? 15_000;
    this.#problemReporter = opts.problemReporter;
    this.#runner = new CoalescingRunner({
      run: () => this.#reconcile(),
      clock: this.#clock,
      minIntervalMs: opts.minIntervalMs,
      maxDelayMs: opts.maxDelayMs,
      retry: opts.retry,
      onError: (err) => {
        this.#lastError = errorMessage(err);
        this.#log.error('reconcile failed; will retry', { error: this.#lastError });
      },
    });
  }

  /** True once the cluster is synced and the first full reconcile is in the datapath. */
  get ready(): boolean {
    return this.#ready;
  }

  whenReady(): Promise<void> {
    if (this.#ready) return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  get revision(): number {
    return this.#revision;
  }

  get realizedRevision(): number {
    return this.#realized;
  }

  /** Number of reconciles started (for tests and the benchmark). */
  get reconciles(): number {
    return this.#runner.runs;
  }

  /** The last compile result (for inspection: rules, identities, per-endpoint policy). */
  get lastCompile(): CompileResult | undefined {
    return this.#lastResult;
  }

  /**
   * Reads the datapath's state (restart-safe: what a previous agent applied is the
   * applied state), then starts watching. Does not wait for the initial sync (see
   * `whenReady`). Endpoints restored by the agent should be registered (upsertEndpoint,
   * not awaited) before `start`, so the first reconcile keeps them.
   */
  async start(): Promise<void> {
    if (this.#started || this.#starting) return;
    if (this.#stopped) throw new ControlPlaneError('PAL_STOPPED', 'control plane: stopped');
    this.#starting = true;
    let applied: DatapathState;
    try {
      applied = await this.#datapath.dump();
    } catch (err) {
      throw new Error(`reading the datapath state: ${errorMessage(err)}`, { cause: err });
    } finally {
      this.#starting = false;
    }
    if (this.#stopped) throw new ControlPlaneError('PAL_STOPPED', 'control plane: stopped');
    this.#started = true;
    this.#applied = applied;
    this.#baseline = applied;
    this.#unsubscribe.push(
      this.#cluster.store.subscribe(() => this.#changed()),
      this.#cluster.onProgress(() => this.#progress()),
    );
    this.#cluster.start();
    if (this.#endpoints.size || this.#removed.size) this.#runner.trigger();
    this.#progress();
  }

  /** Stops the reconciler and the watches; pending waits reject with PAL_STOPPED. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const u of this.#unsubscribe.splice(0)) u();
    this.#cancelRecheck?.();
    await this.#runner.stop();
    await this.#cluster.stop();
    await this.#problemReporter?.stop();
    const err = new ControlPlaneError('PAL_STOPPED', 'control plane: stopped');
    for (const w of this.#rvWaiters) {
      w.cancelTimeout();
      w.reject(err);
    }
    this.#rvWaiters.clear();
    for (const w of this.#revWaiters) w.reject(err);
    this.#revWaiters.clear();
  }

  /** Registers a listener for completed reconciles; returns the unsubscribe function. */
  onRealized(listener: (e: RealizedEvent) => void): () => void {
    this.#realizedListeners.add(listener);
    return () => this.#realizedListeners.delete(listener);
  }

  /** EndpointRealizer: see pkg/endpoint/types.ts and the class comment (before sync). */
  async upsertEndpoint(ep: LocalEndpoint): Promise<void> {
    validateEndpoint(ep);
    if (this.#stopped) throw new ControlPlaneError('PAL_STOPPED', 'control plane: stopped');
    for (const [id, other] of this.#endpoints) {
      // The kernel reuses ifindexes: a new veth with a stale endpoint's ifindex replaces it.
      if (id !== ep.endpointId && other.ifindex === ep.ifindex) {
        this.#endpoints.delete(id);
        this.#removed.add(id);
      }
    }
    const cur = this.#endpoints.get(ep.endpointId);
    if (cur && sameEndpoint(cur, ep) && this.#realizedByEndpoint.has(ep.endpointId)) {
      // Re-registration of what is realized: wait only for changes already pending.
      return this.#waitRevision(this.#revision, `endpoint ${ep.endpointId}`);
    }
    this.#endpoints.set(ep.endpointId, { ...ep });
    this.#removed.delete(ep.endpointId);
    this.#realizedByEndpoint.delete(ep.endpointId);
    this.#changed();
    return this.#waitRevision(this.#revision, `endpoint ${ep.endpointId}`);
  }

  /** EndpointRealizer: removes the endpoint's entries; idempotent. */
  async removeEndpoint(endpointId: number): Promise<void> {
    if (!Number.isSafeInteger(endpointId) || endpointId <= 0) {
      throw new ControlPlaneError('PAL_BAD_ENDPOINT', `invalid endpoint id ${String(endpointId)}`);
    }
    if (this.#stopped) throw new ControlPlaneError('PAL_STOPPED', 'control plane: stopped');
    const known = this.#endpoints.delete(endpointId);
    this.#realizedByEndpoint.delete(endpointId);
    const inApplied = this.#applied?.endpoints.some((e) => e.endpointId === endpointId) ?? false;
    if (!known && !inApplied && this.#started) return;
    this.#removed.add(endpointId);
    this.#changed();
    return this.#waitRevision(this.#revision, `endpoint ${endpointId} removal`);
  }

  /**
   * Resolves once the cluster state covers resourceVersion `rv` and the revision current
   * at that moment is realized (which implies the initial sync). Rejects with
   * PAL_WAIT_TIMEOUT after `timeoutMs`, PAL_BAD_RESOURCE_VERSION for a non-integer RV.
   */
  waitFor(rv: string | number | bigint, timeoutMs: number): Promise<WaitResult> {
    const want = typeof rv === 'bigint' ? rv : parseResourceVersion(String(rv));
    if (want === undefined || want < 0n) {
      return Promise.reject(new ControlPlaneError('PAL_BAD_RESOURCE_VERSION',
        `resourceVersion must be a non-negative integer, got ${JSON.stringify(String(rv))}`));
    }
    if (!(timeoutMs >= 0)) {
      return Promise.reject(new RangeError(`invalid timeout ${String(timeoutMs)}`));
    }
    if (this.#stopped) {
      return Promise.reject(new ControlPlaneError('PAL_STOPPED', 'control plane: stopped'));
    }
    return new Promise<WaitResult>((resolve, reject) => {
      const w: RvWaiter = {
        rv: want, revision: undefined, started: this.#clock.now(), resolve, reject,
        cancelTimeout: () => {},
      };
      w.cancelTimeout = this.#clock.setTimer(() => {
        if (!this.#rvWaiters.delete(w)) return;
        reject(new ControlPlaneError('PAL_WAIT_TIMEOUT',
          `waiting for resourceVersion ${want}: not realized within ${timeoutMs} ms ` +
          `(seen ${this.#cluster.store.resourceVersion || 'none'}, ` +
          `realized revision ${this.#realized} of ${this.#revision}` +
          `${this.#cluster.synced ? '' : ', informers not synced'}` +
          `${this.#lastError ? `, last error: ${this.#lastError}` : ''})`));
      }, timeoutMs);
      this.#rvWaiters.add(w);
      this.#checkWaiters();
    });
  }

  status(): ControlPlaneStatus {
    const summaries = this.#lastResult?.endpoints;
    return {
      ready: this.#ready,
      synced: this.#cluster.synced,
      revision: this.#revision,
      realizedRevision: this.#realized,
      resourceVersion: this.#cluster.store.resourceVersion,
      realizedResourceVersion: this.#realizedRv,
      endpoints: [...this.#endpoints.values()].sort((a, b) => a.endpointId - b.endpointId)
        .map((ep) => ({
          endpointId: ep.endpointId,
          pod: `${ep.podNamespace}/${ep.podName}`,
          ifindex: ep.ifindex,
          ipv4: ep.ipv4,
          realizedRevision: this.#realizedByEndpoint.get(ep.endpointId),
          policy: summaries?.get(ep.endpointId),
        })),
      problems: this.#lastResult?.problems ?? [],
      lastReconcile: this.#lastEvent,
      lastError: this.#lastError,
    };
  }

  #changed(): void {
    this.#revision++;
    this.#changedSince ??= this.#clock.now();
    // Before start() has read the datapath, a reconcile would not know what to keep.
    if (this.#started) this.#runner.trigger();
    this.#checkWaiters();
  }

  #progress(): void {
    // The initial sync changes what a reconcile produces (kept/fail-closed -> compiled),
    // so it is a change of its own.
    if (this.#cluster.synced && !this.#syncSeen) {
      this.#syncSeen = true;
      this.#changed();
      return;
    }
    this.#checkWaiters();
  }

  async #reconcile(): Promise<void> {
    const started = this.#clock.now();
    if (!this.#applied) {
      this.#applied = await this.#datapath.dump();
    }
    const synced = this.#cluster.synced;
    const revision = this.#revision;
    const latencyFrom = this.#changedSince ?? started;
    this.#changedSince = undefined;
    const endpoints = [...this.#endpoints.values()].sort((a, b) => a.endpointId - b.endpointId);
    let desired: DatapathState;
    let result: CompileResult | undefined;
    let resourceVersion = '';
    let routing: RoutingState | undefined;
    let services: ServiceEntry[] | undefined;
    let policies: ClusterSnapshot['policies'] | undefined;
    const compileStart = this.#clock.now();
    if (synced) {
      const snap = this.#cluster.store.snapshot();
      policies = snap.policies;
      resourceVersion = snap.resourceVersion;
      result = this.#compiler.compile({
        revision, nodeName: this.nodeName, namespaces: snap.namespaces, pods: snap.pods,
        nodes: snap.nodes, policies: snap.policies, endpoints, immutableMaps: true,
      });
      desired = result.state;
      if (this.#routing) {
        const r = desiredRouting(snap.nodes, this.nodeName, { clusterCIDRs: this.#clusterCIDRs });
        routing = r.state;
      }
      if (this.#datapath.applyServices) {
        const ds = desiredServices(snap.services.values(), snap.endpointslices.values());
        services = ds.entries;
        for (const p of ds.problems) {
          const k = `${p.service}: ${p.message}`;
          if (!this.#serviceProblemsSeen.has(k)) this.#log.warn('service left out', { service: p.service, problem: p.message });
          this.#serviceProblemsSeen.add(k);
        }
      }
    } else {
      desired = this.#presyncState(endpoints);
    }
    const compileMs = this.#clock.now() - compileStart;

    const change = diffChanged(desired, this.#applied);
    const operations = changeSize(change);
    const applyStart = this.#clock.now();
    if (operations > 0) {
      try {
        await this.#datapath.apply(change);
      } catch (err) {
        // Part of the change may be in; re-read the datapath before the retry.
        this.#applied = undefined;
        this.#changedSince = Math.min(this.#changedSince ?? latencyFrom, latencyFrom);
        throw new Error(`applying ${describeChange(change)}: ${errorMessage(err)}`, { cause: err });
      }
    }
    this.#applied = desired;
    const applyMs = this.#clock.now() - applyStart;
    // Services after policy: a new backend's ipcache and policy entries are in first.
    if (services && this.#datapath.applyServices
      && !(this.#servicesApplied && sameServices(services, this.#servicesApplied))) {
      try {
        await this.#datapath.applyServices(services);
        this.#servicesApplied = services;
      } catch (err) {
        this.#servicesApplied = undefined;
        this.#changedSince = Math.min(this.#changedSince ?? latencyFrom, latencyFrom);
        throw new Error(`applying ${services.length} service frontends: ${errorMessage(err)}`, { cause: err });
      }
    }
    if (routing) await this.#applyRouting(routing);

    if (result) this.#noteProblems(result);
    if (result && policies) this.#problemReporter?.report(result.problems, policies);
    this.#lastResult = result ?? this.#lastResult;
    this.#realized = revision;
    if (synced) {
      this.#realizedSynced = revision;
      this.#realizedRv = resourceVersion;
      this.#baseline = undefined;
      this.#removed.clear();
    }
    for (const ep of endpoints) {
      // Not for endpoints removed while this reconcile was applying.
      if (this.#endpoints.has(ep.endpointId)) this.#realizedByEndpoint.set(ep.endpointId, revision);
    }
    this.#lastError = undefined;
    const done = this.#clock.now();
    const event: RealizedEvent = {
      revision, resourceVersion, synced, operations,
      latencyMs: done - latencyFrom, compileMs, applyMs, durationMs: done - started,
    };
    this.#lastEvent = event;
    if (synced && !this.#ready) {
      this.#ready = true;
      this.#log.info('control plane ready', { revision, resourceVersion, operations });
      for (const w of this.#readyWaiters.splice(0)) w();
    }
    for (const l of [...this.#realizedListeners]) {
      try {
        l(event);
      } catch (err) {
        this.#log.warn('realized listener threw', { error: errorMessage(err) });
      }
    }
    this.#checkWaiters();
  }

  /**
   * Before the initial sync: what was in the datapath at start, minus endpoints removed
   * since, plus every endpoint not in it as a fail-closed entry (isolated both ways, no
   * allow entries, identity world).
   */
  #presyncState(endpoints: LocalEndpoint[]): DatapathState {
    const base = this.#baseline ?? { endpoints: [], ipcache: [], policy: [], cidrs: [] };
    const registered = new Map(endpoints.map((e) => [e.endpointId, e]));
    const gone = (id: number) => this.#removed.has(id) && !registered.has(id);
    const keptEps = base.endpoints.filter((e) => {
      if (gone(e.endpointId)) return false;
      const r = registered.get(e.endpointId);
      // Re-registered with another interface or address: not the entry we had.
      return !r || (r.ifindex === e.ifindex && r.ipv4 === e.ipv4);
    });
    const keptIds = new Set(keptEps.map((e) => e.endpointId));
    const keptIfindex = new Set(keptEps.map((e) => e.ifindex));
    const dropped = base.endpoints.filter((e) => !keptIds.has(e.endpointId));
    const droppedIps = new Set(dropped.map((e) => `${e.ipv4}/32`));
    const droppedIds = new Set(dropped.map((e) => e.endpointId));
    const out: DatapathState = {
      endpoints: [...keptEps],
      ipcache: base.ipcache.filter((e) => !droppedIps.has(e.cidr)),
      policy: base.policy.filter((e) => !droppedIds.has(e.endpointId) && !gone(e.endpointId)),
      cidrs: base.cidrs.filter((e) => !droppedIds.has(e.endpointId) && !gone(e.endpointId)),
    };
    for (const ep of endpoints) {
      if (keptIds.has(ep.endpointId) || keptIfindex.has(ep.ifindex)) continue;
      out.endpoints.push({
        ifindex: ep.ifindex, endpointId: ep.endpointId, identity: IDENTITY_WORLD, ipv4: ep.ipv4,
        ingressEnforced: true, egressEnforced: true,
      } satisfies EndpointEntry);
    }
    return out;
  }

  async #applyRouting(desired: RoutingState): Promise<void> {
    if (!this.#routing) return;
    if (sameRouting(desired, this.#routingApplied) || this.#routingRetryPending) return;
    try {
      await this.#routing.apply(desired);
      this.#routingApplied = desired;
      this.#log.info('routing applied', {
        routes: desired.routes.map((r) => `${r.dst} via ${r.via} (${r.node})`),
        masquerade: desired.masquerade?.podCIDRs,
      });
    } catch (err) {
      // Routing is retried on its own schedule; it does not hold back policy.
      this.#routingApplied = undefined;
      this.#routingRetryPending = true;
      this.#log.error('applying routes failed; will retry', { error: errorMessage(err) });
      this.#clock.setTimer(() => {
        this.#routingRetryPending = false;
        this.#runner.trigger();
      }, 1000);
    }
  }

  #settleThenCheck(): void {
    if (this.#settling) return;
    this.#settling = true;
    afterPendingIo(() => {
      this.#settling = false;
      if (!this.#stopped) this.#checkWaiters(true);
    });
  }

  #noteProblems(result: CompileResult): void {
    const now = new Set<string>();
    for (const p of result.problems) {
      const k = problemKey(p);
      now.add(k);
      if (!this.#problems.has(k)) {
        this.#log.warn('policy problem (fails closed)', {
          policy: p.policy, field: p.field, problem: p.message,
        });
      }
    }
    this.#problems = now;
  }

  #waitRevision(revision: number, what: string): Promise<void> {
    if (this.#realized >= revision && this.#started) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w: RevisionWaiter = { revision, resolve, reject };
      const cancel = this.#clock.setTimer(() => {
        if (!this.#revWaiters.delete(w)) return;
        reject(new ControlPlaneError('PAL_REALIZE_TIMEOUT',
          `realizing ${what}: not in the datapath within ${this.#endpointTimeoutMs} ms` +
          `${this.#lastError ? `: ${this.#lastError}` : ''}`));
      }, this.#endpointTimeoutMs);
      w.resolve = () => {
        cancel();
        resolve();
      };
      const rej = w.reject;
      w.reject = (e) => {
        cancel();
        rej(e);
      };
      this.#revWaiters.add(w);
    });
  }

  /**
   * `settled`: called after the event loop has read pending I/O since the last check
   * (see #settleThenCheck); only then is a quiet-based coverage trusted.
   */
  #checkWaiters(settled = false): void {
    for (const w of this.#revWaiters) {
      if (this.#realized >= w.revision) {
        this.#revWaiters.delete(w);
        w.resolve();
      }
    }
    let recheck = Infinity;
    for (const w of this.#rvWaiters) {
      if (w.revision === undefined) {
        const cov = this.#cluster.coverage(w.rv);
        if (cov.covered && (cov.exact || settled)) w.revision = this.#revision;
        else if (cov.covered) this.#settleThenCheck();
        else if (cov.recheckInMs !== undefined) recheck = Math.min(recheck, cov.recheckInMs);
      }
      if (w.revision !== undefined && this.#realizedSynced >= w.revision) {
        this.#rvWaiters.delete(w);
        w.cancelTimeout();
        w.resolve({
          resourceVersion: this.#realizedRv,
          revision: this.#realizedSynced,
          waitedMs: this.#clock.now() - w.started,
        });
      }
    }
    if (recheck < Infinity) {
      this.#cancelRecheck?.();
      this.#cancelRecheck = this.#clock.setTimer(() => {
        this.#cancelRecheck = undefined;
        this.#checkWaiters();
      }, recheck);
    }
  }
}

/**
 * Runs `fn` after the event loop has gone through its I/O (poll) phase twice. A timer can
 * fire, and a request can be handled, while watch data that arrived during a long
 * reconcile still waits unread in a socket; two setImmediate hops let every such read
 * happen first (check-phase callbacks run after the poll phase of their iteration).
 */
function afterPendingIo(fn: () => void): void {
  setImmediate(() => setImmediate(fn));
}

function validateEndpoint(ep: LocalEndpoint): void {
  const bad = (field: string) => new ControlPlaneError('PAL_BAD_ENDPOINT',
    `invalid endpoint: ${field}`);
  if (typeof ep !== 'object' || ep === null) throw bad('not an object');
  if (!Number.isSafeInteger(ep.endpointId) || ep.endpointId <= 0) throw bad('endpointId');
  if (!Number.isSafeInteger(ep.ifindex) || ep.ifindex <= 0) throw bad('ifindex');
  if (typeof ep.ipv4 !== 'string' || parseIpv4(ep.ipv4) === undefined) throw bad('ipv4');
  if (typeof ep.podNamespace !== 'string' || !ep.podNamespace) throw bad('podNamespace');
  if (typeof ep.podName !== 'string' || !ep.podName) throw bad('podName');
}

function sameEndpoint(a: LocalEndpoint, b: LocalEndpoint): boolean {
  return a.ifindex === b.ifindex && a.ipv4 === b.ipv4 && a.podNamespace === b.podNamespace
    && a.podName === b.podName && a.ifname === b.ifname && a.containerId === b.containerId
    && a.podUid === b.podUid;
}

/**
 * diffState over what may have changed. The compiler returns the same array for a part
 * of the state a change did not touch (the 10k-entry ipcache on a policy change) and the
 * same entry objects for unchanged blocks, and `applied` is what the last reconcile
 * applied: a kind whose desired list is the applied list is skipped, and entries present
 * in both lists as the same object are left out before keys are compared (each list
 * holds one entry per key, so what remains diffs the same).
 */
function diffChanged(desired: DatapathState, applied: DatapathState): DatapathChange {
  const want: DatapathState = { endpoints: [], ipcache: [], policy: [], cidrs: [] };
  const have: DatapathState = { endpoints: [], ipcache: [], policy: [], cidrs: [] };
  const rest = <T extends object>(d: T[], a: T[]): [T[], T[]] => {
    if (d === a) return [[], []];
    const inA = new Set<object>(a);
    const inD = new Set<object>(d);
    return [d.filter((e) => !inA.has(e)), a.filter((e) => !inD.has(e))];
  };
  [want.endpoints, have.endpoints] = rest(desired.endpoints, applied.endpoints);
  [want.ipcache, have.ipcache] = rest(desired.ipcache, applied.ipcache);
  [want.policy, have.policy] = rest(desired.policy, applied.policy);
  [want.cidrs, have.cidrs] = rest(desired.cidrs, applied.cidrs);
  return diffState(want, have);
}

function describeChange(c: DatapathChange): string {
  const n = (s: DatapathState) =>
    `${s.endpoints.length}/${s.ipcache.length}/${s.policy.length}/${s.cidrs.length}`;
  return `change (upsert ${n(c.upsert)}, delete ${n(c.delete)} endpoints/ipcache/policy/cidrs)`;
}
