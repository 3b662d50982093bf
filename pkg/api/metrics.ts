/**
 * The agent's Prometheus metrics, rendered in text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/): every family has one
 * HELP and one TYPE line, label values are escaped, histograms have cumulative
 * `_bucket{le}` lines ending with `+Inf`, then `_sum` and `_count`.
 *
 * Counters the agent keeps itself (CNI requests, realization latency, status writes) live
 * here; the rest is read from its sources when scraped (datapath counters, flow store,
 * map usage), so a scrape never sees a stale copy. docs/agent-api.md#metrics lists them.
 */
import type { DatapathCounters, Direction, DropReason, ServiceCounters } from '../datapath/types.ts';
import type { FlowStore, FlowTotals } from '../flow/store.ts';
import type { MapUsage } from '../status/maps.ts';

/** Upper bounds (seconds) of the realization latency buckets: 1 ms .. 30 s. */
export const REALIZATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What a scrape reads besides the Metrics object's own counters. All optional but endpoints. */
export interface MetricsSources {
  endpoints: number;
  identities?: number;
  revision?: number;
  counters?: () => Promise<DatapathCounters>;
  /** ClusterIP translation counters (docs/services.md), when the datapath has them. */
  serviceCounters?: () => Promise<ServiceCounters>;
  maps?: () => Promise<readonly MapUsage[]>;
  flows?: Pick<FlowStore, 'totals' | 'l7Totals'>;
  /** Called when a source fails; the scrape goes on without it. */
  onError?: (what: string, err: Error) => void;
}

type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labelText(l: Labels): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Text of one metric family. */
class Family {
  readonly lines: string[];
  constructor(name: string, type: 'counter' | 'gauge' | 'histogram' | 'summary', help: string) {
    this.lines = [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`];
  }

  sample(name: string, labels: Labels, value: number): this {
    this.lines.push(`${name}${labelText(labels)} ${num(value)}`);
    return this;
  }
}

/** A histogram with fixed buckets; observations in seconds. */
export class Histogram {
  readonly bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(bounds: readonly number[]) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i]! > bounds[i - 1]!)) throw new TypeError('histogram: bucket bounds must increase');
    }
    this.bounds = bounds;
    this.#counts = new Array<number>(bounds.length).fill(0);
  }

  observe(v: number): void {
    if (!Number.isFinite(v) || v < 0) return;
    this.#sum += v;
    this.#count++;
    const i = this.bounds.findIndex((b) => v <= b);
    if (i >= 0) this.#counts[i]!++;
  }

  get count(): number {
    return this.#count;
  }

  render(f: Family, name: string): void {
    let cumulative = 0;
    this.bounds.forEach((b, i) => {
      cumulative += this.#counts[i]!;
      f.sample(`${name}_bucket`, { le: num(b) }, cumulative);
    });
    f.sample(`${name}_bucket`, { le: '+Inf' }, this.#count);
    f.sample(`${name}_sum`, {}, Number(this.#sum.toFixed(6)));
    f.sample(`${name}_count`, {}, this.#count);
  }
}

const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

export class Metrics {
  private readonly cniCount = new Map<string, { command: string; outcome: string; n: number; seconds: number }>();
  private shimCount = 0;
  private shimSeconds = 0;
  private followersCut = 0;
  private readonly gauges: Record<string, () => number> = {};
  private readonly statusWrites = new Map<string, { labels: Labels; n: number }>();
  /** Policy change seen by the reconciler -> realized in the datapath. */
  readonly realization = new Histogram(REALIZATION_BUCKETS);

  cni(command: string, outcome: 'ok' | 'error', ms: number): void {
    const k = `${command}\u0000${outcome}`;
    const c = this.cniCount.get(k) ?? { command, outcome, n: 0, seconds: 0 };
    c.n++;
    c.seconds += ms / 1000;
    this.cniCount.set(k, c);
  }

  /** The shim's own share: ms from its process start until its request left. */
  shimStartup(ms: number): void {
    this.shimCount++;
    this.shimSeconds += ms / 1000;
  }

  /** A reconcile that realized a change: from the change seen to the datapath, ms. */
  policyRealized(latencyMs: number): void {
    this.realization.observe(latencyMs / 1000);
  }

  /** A status CRD write (pkg/status). */
  statusWrite(kind: string, operation: 'create' | 'update' | 'delete', outcome: 'ok' | 'error'): void {
    const k = `${kind}\u0000${operation}\u0000${outcome}`;
    const c = this.statusWrites.get(k) ?? { labels: { kind, operation, outcome }, n: 0 };
    c.n++;
    this.statusWrites.set(k, c);
  }

  /** A /v1/flows follow stream cut because its client read too slowly. */
  flowFollowerCut(): void {
    this.followersCut++;
  }

  /** A gauge read at scrape time (name must be a valid metric name, unique). */
  gauge(name: string, read: () => number): void {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new TypeError(`metrics: invalid metric name ${JSON.stringify(name)}`);
    this.gauges[name] = read;
  }

  /** The whole exposition text. Sources that fail are left out (and reported to onError). */
  async render(src: MetricsSources): Promise<string> {
    const families: Family[] = [];
    const add = (name: string, type: 'counter' | 'gauge' | 'histogram' | 'summary', help: string): Family => {
      const f = new Family(name, type, help);
      families.push(f);
      return f;
    };
    const fail = (what: string, err: unknown) => src.onError?.(what, err as Error);

    add('palisade_endpoints', 'gauge', 'Local endpoints set up by the CNI.').sample('palisade_endpoints', {}, src.endpoints);
    if (src.identities !== undefined) {
      add('palisade_identities', 'gauge', 'Identities in the last compiled policy.').sample('palisade_identities', {}, src.identities);
    }
    if (src.revision !== undefined) {
      add('palisade_policy_revision', 'gauge', 'Revision realized in the datapath.').sample('palisade_policy_revision', {}, src.revision);
    }

    const requests = add('palisade_cni_requests_total', 'counter', 'CNI requests handled by the agent.');
    const seconds = add('palisade_cni_request_seconds', 'summary', 'Time the agent spent on CNI requests.');
    for (const c of this.cniCount.values()) {
      const l = { command: c.command, outcome: c.outcome };
      requests.sample('palisade_cni_requests_total', l, c.n);
      seconds.sample('palisade_cni_request_seconds_sum', l, Number(c.seconds.toFixed(6)));
      seconds.sample('palisade_cni_request_seconds_count', l, c.n);
    }
    add('palisade_cni_shim_startup_seconds', 'summary', 'Shim process start until its request reached the socket.')
      .sample('palisade_cni_shim_startup_seconds_sum', {}, Number(this.shimSeconds.toFixed(6)))
      .sample('palisade_cni_shim_startup_seconds_count', {}, this.shimCount);

    if (src.counters) {
      // Built aside first: a source failing halfway leaves no partial family behind.
      try {
        const c = await src.counters();
        const packets = new Family('palisade_datapath_packets_total', 'counter', 'Packets judged by the datapath, by verdict and direction.');
        const drops = new Family('palisade_datapath_drops_total', 'counter', 'Packets dropped by the datapath, by reason and direction.');
        for (const d of DIRECTIONS) {
          const byReason = c.dropped[d] ?? {};
          const dropped = Object.values(byReason).reduce<number>((n, v) => n + (v ?? 0), 0);
          packets.sample('palisade_datapath_packets_total', { verdict: 'allowed', direction: d }, c.allowed[d] ?? 0);
          packets.sample('palisade_datapath_packets_total', { verdict: 'dropped', direction: d }, dropped);
          for (const [reason, v] of Object.entries(byReason) as [DropReason, number][]) {
            drops.sample('palisade_datapath_drops_total', { reason, direction: d }, v);
          }
        }
        families.push(packets, drops);
      } catch (err) {
        fail('datapath counters', err);
      }
    }

    if (src.serviceCounters) {
      try {
        const c = await src.serviceCounters();
        const f = new Family('palisade_service_packets_total', 'counter',
          'ClusterIP translation by the datapath: packets translated, new flows, replies reversed, no-backend rejects, hairpin, errors.');
        const events: [string, number][] = [['translated', c.translated], ['new_flow', c.newFlows], ['reversed', c.reversed],
          ['no_backend', c.noBackend], ['hairpin', c.hairpin], ['error', c.errors]];
        for (const [event, v] of events) f.sample('palisade_service_packets_total', { event }, v);
        families.push(f);
      } catch (err) {
        fail('service counters', err);
      }
    }

    if (src.flows) {
      const flows = add('palisade_flows_total', 'counter', 'Flow records kept by the agent, by verdict and direction.');
      const l7 = add('palisade_l7_requests_total', 'counter', 'HTTP requests seen by the L7 proxy, by verdict and direction.');
      const put = (f: Family, name: string, t: FlowTotals, verdicts: readonly string[]) => {
        for (const v of verdicts) for (const d of DIRECTIONS) f.sample(name, { verdict: v, direction: d }, t[v as keyof FlowTotals][d]);
      };
      put(flows, 'palisade_flows_total', src.flows.totals(), ['allowed', 'dropped', 'redirected', 'denied']);
      put(l7, 'palisade_l7_requests_total', src.flows.l7Totals(), ['allowed', 'denied']);
    }

    const hist = add('palisade_policy_realization_seconds', 'histogram',
      'From a change seen by the reconciler to its realization in the datapath.');
    this.realization.render(hist, 'palisade_policy_realization_seconds');

    if (src.maps) {
      try {
        const usage = await src.maps();
        const entries = new Family('palisade_map_entries', 'gauge', 'Entries the agent has applied to each eBPF map.');
        const capacity = new Family('palisade_map_capacity', 'gauge', 'Capacity (max entries) of each eBPF map.');
        for (const u of usage) {
          entries.sample('palisade_map_entries', { map: u.name }, u.entries);
          capacity.sample('palisade_map_capacity', { map: u.name }, u.maxEntries);
        }
        families.push(entries, capacity);
      } catch (err) {
        fail('map usage', err);
      }
    }

    add('palisade_flow_followers_cut_total', 'counter', 'Flow follow streams cut because the client read too slowly.')
      .sample('palisade_flow_followers_cut_total', {}, this.followersCut);

    const writes = add('palisade_status_writes_total', 'counter', 'Status object writes to the API server.');
    for (const w of this.statusWrites.values()) writes.sample('palisade_status_writes_total', w.labels, w.n);

    for (const [name, read] of Object.entries(this.gauges)) {
      try {
        const v = read();
        families.push(new Family(name, 'gauge', name.replace(/_/g, ' ')).sample(name, {}, v));
      } catch (err) {
        fail(name, err);
      }
    }
    return `${families.map((f) => f.lines.join('\n')).join('\n')}\n`;
  }
}
