/**
 * Text output of `kubectl palisade`: kubectl-style tables (upper-case headers, columns
 * separated by three spaces, `<none>` for empty cells) and the per-command layouts.
 * Pure: data in, a string out.
 */
import type { FlowPeer, FlowRecord } from '../flow/types.ts';
import type { DirectionPolicy, EffectivePolicy, TraceResult } from './analysis.ts';

/** Renders rows under headers, each column as wide as its widest cell. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = rows.map((r) => headers.map((_, i) => {
    const v = r[i] ?? '';
    return v === '' ? '<none>' : v.replace(/\s+/g, ' ');
  }));
  const width = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: readonly string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(width[i]!))).join('   ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

/** `HH:MM:SS.mmm` in UTC, the time column of observe. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

/** `ns/pod:port`, or `ip:port` when the address is not a known pod. */
export function formatPeer(p: FlowPeer, withPort: boolean): string {
  const who = p.namespace && p.pod ? `${p.namespace}/${p.pod}` : p.ip;
  return withPort && p.port ? `${who}:${p.port}` : who;
}

export function flowTable(flows: readonly FlowRecord[]): string {
  return table(
    ['TIME', 'NODE', 'VERDICT', 'DIRECTION', 'SOURCE', 'DESTINATION', 'PROTOCOL', 'REASON', 'POLICY'],
    flows.map((f) => flowRow(f)),
  );
}

/** One observe row (also printed on its own, without headers, when following). */
export function flowRow(f: FlowRecord): string[] {
  const http = f.http ? ` ${f.http.method} ${f.http.path} ${f.http.status}` : '';
  return [
    formatTime(f.time), f.node, f.verdict, f.direction, formatPeer(f.src, false), formatPeer(f.dst, true),
    `${f.protocol}${http}`, f.reason ?? '', f.policy ?? '',
  ];
}

export interface AgentStatusRow {
  node: string;
  agent: string;
  health: string;
  version: string;
  revision: string;
  endpoints: string;
  dropsLastMinute: string;
  mapPressure: string;
  message: string;
}

export function statusTable(rows: readonly AgentStatusRow[]): string {
  return table(
    ['NODE', 'AGENT', 'HEALTH', 'VERSION', 'REVISION', 'ENDPOINTS', 'DROPS/1M', 'MAP-PRESSURE', 'MESSAGE'],
    rows.map((r) => [r.node, r.agent, r.health, r.version, r.revision, r.endpoints, r.dropsLastMinute, r.mapPressure, r.message]),
  );
}

export interface EndpointRow {
  namespace: string;
  pod: string;
  node: string;
  ip: string;
  identity: string;
  ingress: string;
  egress: string;
  policies: string[];
  revision: string;
  state: string;
}

export function endpointsTable(rows: readonly EndpointRow[], withNamespace: boolean): string {
  const headers = ['POD', 'NODE', 'IP', 'IDENTITY', 'INGRESS', 'EGRESS', 'POLICIES', 'REVISION', 'STATE'];
  return table(withNamespace ? ['NAMESPACE', ...headers] : headers, rows.map((r) => {
    const row = [r.pod, r.node, r.ip, r.identity, r.ingress, r.egress, r.policies.join(','), r.revision, r.state];
    return withNamespace ? [r.namespace, ...row] : row;
  }));
}

function directionBlock(name: string, d: DirectionPolicy): string {
  const head = d.enforced
    ? `${name}: isolated by ${d.policies.join(', ')}; allowed only:`
    : `${name}: not isolated (no policy selects the pod for ${name.toLowerCase()}): everything is allowed`;
  if (!d.enforced) return `${head}\n`;
  if (d.rules.length === 0) return `${head} nothing (default deny)\n`;
  const rows = d.rules.map((r) => [
    r.peer.text, r.ports, r.policy, r.ruleIndex >= 0 ? String(r.ruleIndex) : '', r.l7 ? 'http rules' : '',
  ]);
  const t = table(['PEER', 'PORTS', 'POLICY', 'RULE', 'L7'], rows);
  return `${head}\n${t.split('\n').filter((l) => l).map((l) => `  ${l}`).join('\n')}\n`;
}

export function policyText(p: EffectivePolicy): string {
  const labels = Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(',') || '<none>';
  let out = `Pod ${p.pod} (${p.ip} on ${p.node}, labels ${labels})\n\n`;
  out += `${directionBlock('Ingress', p.ingress)}\n${directionBlock('Egress', p.egress)}`;
  if (p.problems.length) {
    out += '\nProblems (these rules fail closed):\n';
    for (const pr of p.problems) out += `  ${pr.policy} ${pr.field}: ${pr.message}\n`;
  }
  return out;
}

export function traceText(t: TraceResult): string {
  const d = t.decidedBy;
  const decided = d ? (d.policy === 'none' ? 'no policy (nothing isolates either side)' : d.policy) : '';
  let out = `${t.verdict.toUpperCase()}: ${t.src} (${t.srcIp}) -> ${t.dst} (${t.dstIp}) ${t.protocol}/${t.port}\n`;
  out += `decided by: ${decided}${d && d.ruleIndex !== undefined ? ` ${d.direction}[${d.ruleIndex}]` : ''}\n\n`;
  const rows = t.steps.map((s) => [
    `${s.direction} of ${s.pod}`, s.node, s.allowed ? 'allowed' : 'denied', s.policy,
    s.ruleIndex !== undefined ? String(s.ruleIndex) : '', s.isolatedBy.join(','),
  ]);
  out += table(['STEP', 'NODE', 'VERDICT', 'POLICY', 'RULE', 'ISOLATED-BY'], rows);
  out += '\n';
  for (const s of t.steps) out += `${s.direction}: ${s.explanation}${s.l7 ? ' (HTTP rules then decide each request)' : ''}\n`;
  return out;
}
