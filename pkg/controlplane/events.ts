/**
 * Kubernetes Events for policy problems (NETPOL 27: what Palisade cannot parse or does not
 * support fails closed "with a clear event naming the policy and the field").
 *
 * One core/v1 Event per problem, on the offending policy (involvedObject, with the field
 * as `fieldPath`), reason `PolicyUnsupported`, type Warning.
 *
 * Deduplicated:
 * - per agent: a problem is reported when it appears, not on every reconcile; one that
 *   goes away and comes back is reported again;
 * - across the cluster: every agent compiles the same policy and finds the same problem,
 *   so the Event's name is derived from (policy uid, generation, field, message): the
 *   first agent creates it, the others get 409 AlreadyExists and are done. A policy edited
 *   and still broken is a new generation, hence a new Event.
 * Rate-limited: a token bucket (burst 25, then one per 10 s by default) over every Event
 * this agent writes, and at most `maxPending` waiting; beyond that problems are dropped
 * with a log line (they stay in the agent's status and logs).
 *
 * Writes go through `EventSink` (real: the API via pkg/k8s/request.ts; tests: a fake).
 */
import { createHash } from 'node:crypto';
import { errorMessage, silentLogger, systemClock, type Clock, type Logger } from '../k8s/clock.ts';
import type { KubeConfigLike } from '../k8s/kubeconfig.ts';
import { apiRequest } from '../k8s/request.ts';
import type { NetworkPolicy } from '../policy/snapshot.ts';
import type { PolicyProblem } from '../policy/types.ts';

export const PROBLEM_EVENT_REASON = 'PolicyUnsupported';
export const EVENT_COMPONENT = 'palisade-agent';

/** A core/v1 Event as Palisade writes it. */
export interface CoreEvent {
  apiVersion: 'v1';
  kind: 'Event';
  metadata: { name: string; namespace: string };
  involvedObject: {
    apiVersion?: string; kind: string; namespace: string; name: string; uid?: string;
    resourceVersion?: string; fieldPath: string;
  };
  reason: string;
  message: string;
  type: 'Warning';
  source: { component: string; host: string };
  reportingComponent: string;
  reportingInstance: string;
  firstTimestamp: string;
  lastTimestamp: string;
  count: number;
}

/** Where Events go. `create` rejects with an error carrying statusCode 409 if it exists. */
export interface EventSink {
  create(ev: CoreEvent): Promise<void>;
}

/** EventSink on the API server (POST /api/v1/namespaces/NS/events). */
export function apiEventSink(kc: KubeConfigLike): EventSink {
  return {
    async create(ev) {
      await apiRequest(kc, {
        method: 'POST', path: `/api/v1/namespaces/${encodeURIComponent(ev.metadata.namespace)}/events`, body: ev,
      });
    },
  };
}

export interface ProblemEventsOptions {
  sink: EventSink;
  /** This node (source.host, reportingInstance). */
  nodeName: string;
  clock?: Clock;
  /** Wall clock for the Event timestamps (default Date.now). */
  wallClock?: () => number;
  log?: Logger;
  /** Token bucket: burst and refill interval (default 25 and 10 s). */
  burst?: number;
  refillMs?: number;
  /** Problems waiting for a token, at most (default 100). */
  maxPending?: number;
}

interface Pending {
  key: string;
  ev: CoreEvent;
}

/** The `ProblemReporter` the control plane calls after every synced reconcile. */
export interface ProblemReporter {
  /** The complete current problem list, with the policies of the same snapshot. */
  report(problems: readonly PolicyProblem[], policies: ReadonlyMap<string, NetworkPolicy>): void;
  /** Stops writing; pending Events are dropped. Resolves when no write is in flight. */
  stop(): Promise<void>;
}

function splitPolicyKey(key: string): { kind: string; namespace: string; name: string } | undefined {
  const m = /^([^:]+):([^/]+)\/(.+)$/.exec(key);
  return m ? { kind: m[1]!, namespace: m[2]!, name: m[3]! } : undefined;
}

/** Reports policy problems as Events (see the module comment). */
export class ProblemEvents implements ProblemReporter {
  readonly #o: Required<Omit<ProblemEventsOptions, 'log' | 'clock' | 'wallClock'>>;
  readonly #clock: Clock;
  readonly #wall: () => number;
  readonly #log: Logger;
  /** Problem keys seen in the last report (reported or queued). */
  #seen = new Set<string>();
  readonly #queue: Pending[] = [];
  #tokens: number;
  #lastRefill: number;
  #busy: Promise<void> | undefined;
  #cancelTimer: (() => void) | undefined;
  #stopped = false;
  /** Events written (created, or found already written by another agent), for tests. */
  written = 0;
  dropped = 0;

  constructor(opts: ProblemEventsOptions) {
    this.#o = {
      sink: opts.sink, nodeName: opts.nodeName, burst: opts.burst ?? 25,
      refillMs: opts.refillMs ?? 10_000, maxPending: opts.maxPending ?? 100,
    };
    if (!(this.#o.burst >= 1) || !(this.#o.refillMs > 0) || !(this.#o.maxPending >= 1)) {
      throw new RangeError('problem events: burst, refillMs and maxPending must be positive');
    }
    this.#clock = opts.clock ?? systemClock;
    this.#wall = opts.wallClock ?? Date.now;
    this.#log = opts.log ?? silentLogger;
    this.#tokens = this.#o.burst;
    this.#lastRefill = this.#clock.now();
  }

  report(problems: readonly PolicyProblem[], policies: ReadonlyMap<string, NetworkPolicy>): void {
    if (this.#stopped) return;
    const now = new Set<string>();
    for (const p of problems) {
      const np = policies.get(p.policy);
      const where = splitPolicyKey(p.policy);
      if (!where) continue;
      const gen = np?.metadata.generation ?? np?.metadata.resourceVersion ?? '';
      const key = `${p.policy}\u0000${np?.metadata.uid ?? ''}\u0000${gen}\u0000${p.field}\u0000${p.message}`;
      now.add(key);
      if (this.#seen.has(key)) continue;
      if (this.#queue.length >= this.#o.maxPending) {
        this.dropped++;
        this.#log.warn('policy problem event dropped (rate limit)', { policy: p.policy, field: p.field });
        continue;
      }
      this.#queue.push({ key, ev: this.#event(p, np, where, key) });
    }
    this.#seen = now;
    // A problem gone before its turn is not reported.
    for (let i = this.#queue.length - 1; i >= 0; i--) if (!now.has(this.#queue[i]!.key)) this.#queue.splice(i, 1);
    this.#pump();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#queue.length = 0;
    this.#cancelTimer?.();
    await this.#busy;
  }

  #event(p: PolicyProblem, np: NetworkPolicy | undefined, where: { kind: string; namespace: string; name: string }, key: string): CoreEvent {
    const ts = new Date(this.#wall()).toISOString().replace(/\.\d+Z$/, 'Z');
    const hash = createHash('sha256').update(key).digest('hex').slice(0, 16);
    // Names are at most 253 characters; the policy name may already be long.
    const name = `${where.name.slice(0, 200)}.pal-${hash}`;
    const involved: CoreEvent['involvedObject'] = {
      kind: where.kind, namespace: where.namespace, name: where.name, fieldPath: p.field,
    };
    if (np?.apiVersion) involved.apiVersion = np.apiVersion;
    if (np?.metadata.uid) involved.uid = np.metadata.uid;
    if (np?.metadata.resourceVersion) involved.resourceVersion = np.metadata.resourceVersion;
    return {
      apiVersion: 'v1', kind: 'Event',
      metadata: { name, namespace: where.namespace },
      involvedObject: involved,
      reason: PROBLEM_EVENT_REASON,
      message: `${p.field}: ${p.message}; the rule allows nothing (fails closed)`,
      type: 'Warning',
      source: { component: EVENT_COMPONENT, host: this.#o.nodeName },
      reportingComponent: EVENT_COMPONENT,
      reportingInstance: this.#o.nodeName,
      firstTimestamp: ts, lastTimestamp: ts, count: 1,
    };
  }

  #refill(): void {
    const now = this.#clock.now();
    const add = Math.floor((now - this.#lastRefill) / this.#o.refillMs);
    if (add > 0) {
      this.#tokens = Math.min(this.#o.burst, this.#tokens + add);
      this.#lastRefill += add * this.#o.refillMs;
    }
    if (this.#tokens >= this.#o.burst) this.#lastRefill = now;
  }

  /** Writes queued Events one at a time while tokens last; waits for the next token. */
  #pump(): void {
    if (this.#busy || this.#stopped || !this.#queue.length || this.#cancelTimer) return;
    this.#refill();
    if (this.#tokens < 1) {
      const wait = this.#lastRefill + this.#o.refillMs - this.#clock.now();
      this.#cancelTimer = this.#clock.setTimer(() => {
        this.#cancelTimer = undefined;
        this.#pump();
      }, Math.max(0, wait));
      return;
    }
    this.#tokens--;
    const next = this.#queue.shift()!;
    this.#busy = this.#write(next).finally(() => {
      this.#busy = undefined;
      this.#pump();
    });
  }

  async #write(p: Pending): Promise<void> {
    try {
      await this.#o.sink.create(p.ev);
      this.written++;
    } catch (err) {
      // Another agent reported this problem of this generation first: done.
      if ((err as { statusCode?: unknown }).statusCode === 409) {
        this.written++;
        return;
      }
      // Not retried: the problem stays in the status and logs; the next change of the
      // policy reports it again.
      this.#log.warn('writing policy problem event failed', {
        policy: `${p.ev.involvedObject.namespace}/${p.ev.involvedObject.name}`, error: errorMessage(err),
      });
    }
  }
}
