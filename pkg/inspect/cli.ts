/**
 * `kubectl palisade` (cmd/kubectl-palisade.ts only calls `main`): the subcommands over an
 * InspectClient. Exit status: 0 done, 1 usage error / not found / bad kubeconfig,
 * 2 the API server or an agent could not be reached (what could be gathered is printed,
 * then one line per failure on stderr).
 */
import type { FlowRecord } from '../flow/types.ts';
import { InspectError, effectivePolicy, trace } from './analysis.ts';
import { AGENT_SELECTOR, DEFAULT_AGENT_PORT } from './agents.ts';
import { USAGE, UsageError, parseArgs, type Command, type GlobalOptions } from './args.ts';
import { ConfigError, InspectClient, ReachError, type AgentPod } from './client.ts';
import {
  endpointsTable, flowRow, flowTable, policyText, statusTable, traceText,
  type AgentStatusRow, type EndpointRow,
} from './render.ts';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Aborted on SIGINT/SIGTERM (ends `observe --follow`). */
  signal: AbortSignal;
  now(): number;
}

type Json = Record<string, unknown>;

/** Collects per-agent failures: printed on stderr at the end, and exit status 2. */
class Failures {
  readonly lines: string[] = [];
  add(what: string, err: unknown): void {
    this.lines.push(`${what}: ${(err as Error).message}`);
  }
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));

async function agents(c: InspectClient, g: GlobalOptions): Promise<AgentPod[]> {
  return c.agentPods(g.agentNamespace, AGENT_SELECTOR, DEFAULT_AGENT_PORT);
}

async function status(c: InspectClient, g: GlobalOptions, io: Io, f: Failures): Promise<void> {
  const [pods, nodes, pnodes] = await Promise.all([
    agents(c, g),
    c.list('/api/v1/nodes'),
    // PalisadeNodes only add detail: without them (no CRD, no permission) the agents answer.
    c.list('/apis/palisade.dev/v1alpha1/palisadenodes').catch((err: unknown) => {
      if (!(err instanceof ReachError && err.statusCode === 404)) f.add('listing PalisadeNodes', err);
      return [] as Json[];
    }),
  ]);
  if (pods.length === 0) {
    io.err(`kubectl palisade: no agent pods (${AGENT_SELECTOR}) in namespace ${g.agentNamespace}: is Palisade installed there? (--agent-namespace)\n`);
  }
  const pnByName = new Map(pnodes.map((p) => [str((p.metadata as Json | undefined)?.name), (p.status ?? {}) as Json]));
  const agentByNode = new Map(pods.map((a) => [a.node, a]));
  const names = [...new Set([...nodes.map((n) => str((n.metadata as Json | undefined)?.name)), ...agentByNode.keys()])].sort();
  const results = await Promise.all(names.map(async (node) => {
    const a = agentByNode.get(node);
    const pn = pnByName.get(node);
    if (!a) return { node, agent: undefined, status: undefined, palisadeNode: pn, error: 'no agent pod on this node' };
    try {
      return { node, agent: a, status: await c.agentJson(a, '/v1/status'), palisadeNode: pn, error: undefined };
    } catch (err) {
      f.add(`agent ${a.namespace}/${a.name} on ${node}`, err);
      return { node, agent: a, status: undefined, palisadeNode: pn, error: (err as Error).message };
    }
  }));
  if (g.output === 'json') {
    io.out(json({ nodes: results.map((r) => ({
      node: r.node, agent: r.agent ? `${r.agent.namespace}/${r.agent.name}` : null,
      status: r.status ?? null, palisadeNode: r.palisadeNode ?? null, error: r.error ?? null,
    })) }));
    return;
  }
  const rows: AgentStatusRow[] = results.map((r) => {
    const s = (r.status ?? {}) as Json;
    const pn = r.palisadeNode ?? {};
    const drops = s.drops as Json | undefined;
    let health: string;
    if (!r.agent) health = 'no agent';
    else if (!r.status) health = 'unreachable';
    else if (s.ready !== true) health = 'not ready';
    else health = str(pn.health) || 'ready';
    return {
      node: r.node,
      agent: r.agent ? r.agent.name : '',
      health,
      version: str(s.version ?? pn.agentVersion),
      revision: str(s.revision ?? pn.realizedRevision),
      endpoints: str(s.endpoints ?? pn.endpoints),
      dropsLastMinute: str(drops?.lastMinute),
      mapPressure: s.mapPressure !== undefined ? `${str(s.mapPressure)}%` : pn.mapPressure !== undefined ? `${str(pn.mapPressure)}%` : '',
      message: r.error ?? str(s.notReadyReason ?? pn.message),
    };
  });
  io.out(statusTable(rows));
}

async function endpoints(c: InspectClient, cmd: Extract<Command, { name: 'endpoints' }>, g: GlobalOptions, io: Io): Promise<void> {
  const ns = cmd.allNamespaces ? undefined : (cmd.namespace ?? c.namespace);
  const path = ns === undefined
    ? '/apis/palisade.dev/v1alpha1/palisadeendpoints'
    : `/apis/palisade.dev/v1alpha1/namespaces/${encodeURIComponent(ns)}/palisadeendpoints`;
  let items: Json[];
  try {
    items = await c.list(path);
  } catch (err) {
    if (err instanceof ReachError && err.statusCode === 404) {
      throw new ReachError('the PalisadeEndpoint CRD is not installed: is Palisade installed in this cluster?', 404);
    }
    throw err;
  }
  const rows: EndpointRow[] = items.map((it) => {
    const m = (it.metadata ?? {}) as Json;
    const s = (it.status ?? {}) as Json;
    return {
      namespace: str(m.namespace), pod: str(m.name), node: str(s.node), ip: str(s.ipv4), identity: str(s.identity),
      ingress: str(s.ingressEnforcement), egress: str(s.egressEnforcement),
      policies: Array.isArray(s.policies) ? s.policies.map(String) : [], revision: str(s.realizedRevision), state: str(s.state),
    };
  }).sort((a, b) => a.namespace.localeCompare(b.namespace) || a.pod.localeCompare(b.pod));
  if (g.output === 'json') {
    io.out(json({ items: rows }));
    return;
  }
  if (rows.length === 0) {
    io.err(ns === undefined ? 'No endpoints found.\n' : `No endpoints found in ${ns} namespace.\n`);
    return;
  }
  io.out(endpointsTable(rows, ns === undefined));
}

/** Pause before reconnecting a follow stream. */
const RECONNECT_MS = 2000;

function flowsQuery(cmd: Extract<Command, { name: 'observe' }>, io: Io, follow: boolean, after?: number): string {
  const q = new URLSearchParams();
  if (cmd.verdict) q.set('verdict', cmd.verdict);
  if (cmd.pod) q.set('pod', cmd.pod);
  if (after !== undefined) q.set('since', String(after));
  else if (cmd.sinceMs !== undefined) q.set('since', String(io.now() - cmd.sinceMs));
  q.set('limit', String(Math.min(cmd.limit ?? 100, 8192)));
  if (follow) q.set('follow', '1');
  return `/v1/flows?${q}`;
}

async function observe(c: InspectClient, cmd: Extract<Command, { name: 'observe' }>, g: GlobalOptions, io: Io, f: Failures): Promise<void> {
  const list = await agents(c, g);
  if (list.length === 0) throw new ReachError(`no agent pods (${AGENT_SELECTOR}) in namespace ${g.agentNamespace}`);
  if (!cmd.follow) {
    const all: FlowRecord[] = [];
    await Promise.all(list.map(async (a) => {
      try {
        const r = await c.agentJson<{ items?: FlowRecord[] }>(a, flowsQuery(cmd, io, false));
        all.push(...(r.items ?? []));
      } catch (err) {
        f.add(`agent on ${a.node}`, err);
      }
    }));
    // Merged by time; each agent already cut to the newest `limit`, so cut the union too.
    all.sort((x, y) => x.time - y.time || x.node.localeCompare(y.node));
    const flows = all.slice(Math.max(0, all.length - (cmd.limit ?? 100)));
    io.out(g.output === 'json' ? json(flows) : flows.length ? flowTable(flows) : '');
    if (g.output === 'table' && flows.length === 0) io.err('No flows found.\n');
    return;
  }
  // Following: every agent's stream, each record printed as it arrives (one JSON object a
  // line with -o json). The backlog each stream starts with is merged by time first.
  const headers = ['TIME', 'NODE', 'VERDICT', 'DIRECTION', 'SOURCE', 'DESTINATION', 'PROTOCOL', 'REASON', 'POLICY'];
  const widths = [12, 12, 10, 9, 24, 26, 8, 15, 0];
  const printRow = (r: FlowRecord) => {
    if (g.output === 'json') io.out(`${JSON.stringify(r)}\n`);
    else io.out(`${flowRow(r).map((v, i) => (i === widths.length - 1 ? v : (v || '<none>').padEnd(widths[i]!))).join('   ').trimEnd()}\n`);
  };
  if (g.output === 'table') io.out(`${headers.map((h, i) => (i === widths.length - 1 ? h : h.padEnd(widths[i]!))).join('   ')}\n`);
  const backlog: FlowRecord[] = [];
  let live = false;
  await Promise.all(list.map(async (a) => {
    // A stream ends when its agent restarts or the connection breaks: reconnect, asking
    // only for what is newer than the last record seen. An agent never reached counts
    // as a failure (exit status 2); one that was, and comes back, does not.
    let last: number | undefined;
    let reached = false;
    let lastProblem = '';
    while (!io.signal.aborted) {
      // Record times may have fractions of a millisecond; `since` is an integer, so the
      // agent resends what shares the last millisecond: skip what was printed already.
      const seen = last;
      try {
        await c.agentStream(a, flowsQuery(cmd, io, true, seen === undefined ? undefined : Math.floor(seen)), (line) => {
          let r: FlowRecord;
          try {
            r = JSON.parse(line) as FlowRecord;
          } catch {
            return;
          }
          reached = true;
          if (seen !== undefined && r.time <= seen) return;
          if (last === undefined || r.time > last) last = r.time;
          if (live) printRow(r);
          else backlog.push(r);
        }, io.signal);
        reached = true;
        if (io.signal.aborted) break;
        lastProblem = 'the stream ended';
      } catch (err) {
        if (io.signal.aborted) break;
        const msg = (err as Error).message;
        if (!reached && lastProblem === '') f.add(`agent on ${a.node}`, err);
        lastProblem = msg;
      }
      io.err(`kubectl palisade: agent on ${a.node}: ${lastProblem}; reconnecting\n`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, RECONNECT_MS);
        io.signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
    }
  }).concat([(async () => {
    // Give every stream a moment to deliver its backlog, then print what came in time
    // order; from then on, records are printed as they arrive.
    await new Promise((r) => setTimeout(r, 300));
    backlog.sort((x, y) => x.time - y.time);
    for (const r of backlog.splice(0)) printRow(r);
    live = true;
  })()]));
  for (const r of backlog.splice(0)) printRow(r);
}

/** Runs one invocation; resolves with the exit status. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  let inv;
  try {
    inv = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`kubectl palisade: ${err.message}\nRun 'kubectl palisade --help' for usage.\n`);
      return 1;
    }
    throw err;
  }
  const { global: g, command: cmd } = inv;
  if (cmd.name === 'help') {
    io.out(`${USAGE}\n`);
    return 0;
  }
  const f = new Failures();
  try {
    const c = new InspectClient({ requestTimeoutMs: g.requestTimeoutMs, ...(g.kubeconfig !== undefined ? { kubeconfig: g.kubeconfig } : {}), ...(g.context !== undefined ? { context: g.context } : {}) });
    switch (cmd.name) {
      case 'status':
        await status(c, g, io, f);
        break;
      case 'endpoints':
        await endpoints(c, cmd, g, io);
        break;
      case 'policy': {
        const p = effectivePolicy(await c.clusterView(), cmd.pod);
        io.out(g.output === 'json' ? json(p) : policyText(p));
        break;
      }
      case 'trace': {
        const t = trace(await c.clusterView(), cmd);
        io.out(g.output === 'json' ? json(t) : traceText(t));
        break;
      }
      case 'observe':
        await observe(c, cmd, g, io, f);
        break;
    }
  } catch (err) {
    if (err instanceof InspectError || err instanceof ConfigError) {
      io.err(`kubectl palisade: ${err.message}\n`);
      return 1;
    }
    if (err instanceof ReachError) {
      for (const l of f.lines) io.err(`kubectl palisade: ${l}\n`);
      io.err(`kubectl palisade: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  for (const l of f.lines) io.err(`kubectl palisade: ${l}\n`);
  return f.lines.length ? 2 : 0;
}
