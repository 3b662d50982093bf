/**
 * Plays a scenario on a lab and builds the result (shared/SCENARIOS.md, "Result").
 *
 * Contract: `playScenario` never throws for a step that fails (barrier timeout, CNI
 * error, bad reference): that step gets `error`, later steps are skipped, and the
 * partial result is returned. A failure before the first step (namespaces, pods) is
 * reported in the result's top-level `error`.
 */
import { OUTSIDE_KEY, type Lab } from './lab.ts';
import {
  APPLY_KINDS, placePods, type ContainerPort, type KubeObject, type ProbeSpec, type Scenario, type Step,
} from './scenario.ts';
import { computeMismatches, formatMatrix, observedCell, type Mismatch, type Observed } from './matrix.ts';
import { substitute } from './substitute.ts';
import { type Json } from './kube.ts';

export interface PodResult {
  ip: string;
  node: string;
}

export interface ProbeResult {
  port: number;
  protocol: string;
  target: string;
  http?: { method: string; path: string; headers: Record<string, string> };
  results: Record<string, Record<string, Observed>>;
}

export interface StepResult {
  name: string;
  convergedMs: number | null;
  /** Wall time of the step's probes (an extension of the SCENARIOS.md result). */
  probedMs?: number;
  pods: Record<string, PodResult>;
  probes: ProbeResult[];
  mismatches: Mismatch[];
  error?: string;
}

export interface ScenarioResult {
  scenario: string;
  nodes: number;
  pods: Record<string, PodResult>;
  steps: StepResult[];
  /** Set when the lab could not be prepared for the first step. */
  error?: string;
}

export interface PlayHooks {
  /** Called before a step is played. */
  onStepStart?: (index: number, step: Step) => void;
  /** Called once a step has a result. */
  onStep?: (index: number, step: Step, result: StepResult) => void;
}

function podsOf(lab: Lab): Record<string, PodResult> {
  const out: Record<string, PodResult> = {};
  for (const key of sortedPods(lab)) {
    const p = lab.pods.get(key);
    if (p) out[key] = { ip: p.ip, node: lab.nodes[p.node]!.name };
    else if (key === OUTSIDE_KEY && lab.outsideHost) out[key] = { ip: lab.outsideHost.ip, node: 'outside' };
  }
  return out;
}

/** Pod keys in matrix order: by namespace, then name. */
export function sortedPods(lab: Lab): string[] {
  const keys = [...lab.pods.keys()];
  if (lab.outsideHost) keys.push(OUTSIDE_KEY);
  return keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A Pod's container ports (protocol defaults to TCP), as the lab wires them. */
export function containerPorts(obj: Record<string, unknown>): ContainerPort[] {
  const spec = (obj.spec ?? {}) as Json;
  const containers = (spec.containers ?? []) as Json[];
  return containers.flatMap((c) => ((c.ports ?? []) as Json[]).map((p) => {
    const port: ContainerPort = {
      containerPort: Number(p.containerPort),
      protocol: (p.protocol ?? 'TCP') as ContainerPort['protocol'],
    };
    if (typeof p.name === 'string') port.name = p.name;
    return port;
  }));
}

/** A pod's IP for `${ip:...}` references (the outside host included). */
function ipOf(lab: Lab, key: string): string | undefined {
  return lab.pods.get(key)?.ip ?? (key === OUTSIDE_KEY ? lab.outsideHost?.ip : undefined);
}

async function applyObject(lab: Lab, raw: KubeObject): Promise<void> {
  const obj = substitute(raw, (pod) => ipOf(lab, pod));
  const md = obj.metadata;
  const labels = (md.labels ?? {}) as Record<string, string>;
  switch (obj.kind) {
    case 'Namespace':
      await lab.ensureNamespace(md.name, labels);
      return;
    case 'Pod': {
      const key = `${md.namespace}/${md.name}`;
      if (lab.pods.has(key)) {
        await lab.relabelPod(key, labels);
        return;
      }
      if (!(await lab.kube.find({ apiVersion: 'v1', kind: 'Namespace', name: md.namespace! }))) {
        await lab.ensureNamespace(md.namespace!, {});
      }
      const nodeName = ((obj.spec ?? {}) as Json).nodeName;
      const node = typeof nodeName === 'string' ? lab.nodeIndexByName(nodeName) : lab.roundRobinNode();
      await lab.createPod({ namespace: md.namespace!, name: md.name, labels, ports: containerPorts(obj), node });
      return;
    }
    default:
      await lab.kube.apply(obj as KubeObject & Json);
  }
}

async function deleteObject(lab: Lab, ref: Step['delete'][number]): Promise<void> {
  if (ref.kind === 'Pod') {
    const key = `${ref.namespace}/${ref.name}`;
    if (lab.pods.has(key)) await lab.deletePod(key);
    return;
  }
  if (ref.kind === 'Namespace') {
    await lab.deleteNamespace(ref.name);
    return;
  }
  const r = { apiVersion: ref.apiVersion ?? APPLY_KINDS[ref.kind]!, kind: ref.kind, name: ref.name };
  await lab.kube.delete(ref.namespace ? { ...r, namespace: ref.namespace } : r);
}

function sameProbe(a: ProbeSpec, b: ProbeSpec): boolean {
  return a.port === b.port && a.protocol === b.protocol && JSON.stringify(a.http ?? null) === JSON.stringify(b.http ?? null);
}

/** The probes of a step: explicit, else every TCP/UDP port a pod serves; plus expects. */
export function stepProbes(step: Step, servedPorts: readonly ContainerPort[]): ProbeSpec[] {
  let probes: ProbeSpec[];
  if (step.probes) {
    probes = [...step.probes];
  } else {
    const seen = new Map<string, ProbeSpec>();
    for (const p of servedPorts) {
      if (p.protocol === 'SCTP') continue;
      seen.set(`${p.containerPort}/${p.protocol}`, { port: p.containerPort, protocol: p.protocol });
    }
    probes = [...seen.values()].sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol));
  }
  for (const e of step.expect) {
    const p: ProbeSpec = { port: e.port, protocol: e.protocol };
    if (e.http) p.http = e.http;
    if (!probes.some((x) => sameProbe(x, p))) probes.push(p);
  }
  return probes;
}

async function playStep(lab: Lab, step: Step, result: StepResult): Promise<void> {
  for (const ref of step.delete) await deleteObject(lab, ref);
  for (const obj of step.apply) await applyObject(lab, obj);
  const keys = sortedPods(lab);
  // Services the lab creates for `target: service` are writes too: before the barrier.
  if (step.target === 'service') for (const k of keys) if (k !== OUTSIDE_KEY) await lab.serviceIP(k);
  result.convergedMs = await lab.barrier();
  result.pods = podsOf(lab);
  const probes = stepProbes(step, [...lab.pods.values()].flatMap((p) => p.ports));
  const t0 = Date.now();
  const results = await lab.probeAll(probes, keys, step.target);
  result.probedMs = Date.now() - t0;
  probes.forEach((p, i) => {
    const r: ProbeResult = { port: p.port, protocol: p.protocol, target: step.target, results: results[i]! };
    if (p.http) r.http = p.http;
    result.probes.push(r);
  });
  for (const e of step.expect) {
    const i = probes.findIndex((p) => sameProbe(p, e));
    result.mismatches.push(...computeMismatches(e, e.matrix, results[i]!));
  }
}

/** Creates the scenario's namespaces, pods and services, and waits for the agents. */
async function setUp(lab: Lab, scenario: Scenario): Promise<void> {
  if (scenario.outside) await lab.startOutsideHost();
  for (const [ns, labels] of Object.entries(scenario.namespaces)) await lab.ensureNamespace(ns, labels);
  const placement = placePods(scenario.pods, lab.nodes.length);
  await Promise.all(scenario.pods.map((p, i) => lab.createPod({
    namespace: p.namespace, name: p.name, labels: p.labels, ports: p.ports, node: placement[i]!,
  })));
  for (const s of scenario.services) await lab.kube.apply(substitute(s, (pod) => ipOf(lab, pod)) as KubeObject & Json);
  await lab.barrier();
}

export async function playScenario(lab: Lab, scenario: Scenario, name: string, hooks: PlayHooks = {}): Promise<ScenarioResult> {
  const out: ScenarioResult = { scenario: name, nodes: lab.nodes.length, pods: {}, steps: [] };
  try {
    await setUp(lab, scenario);
  } catch (err) {
    out.error = `setting up: ${(err as Error).message}`;
    out.pods = podsOf(lab);
    return out;
  }
  for (const [i, step] of scenario.steps.entries()) {
    hooks.onStepStart?.(i, step);
    const result: StepResult = { name: step.name, convergedMs: null, pods: {}, probes: [], mismatches: [] };
    try {
      await playStep(lab, step, result);
    } catch (err) {
      result.error = (err as Error).message;
      result.pods = podsOf(lab);
    }
    out.steps.push(result);
    hooks.onStep?.(i, step, result);
    if (result.error) break;
  }
  out.pods = podsOf(lab);
  return out;
}

/** Exit status per SCENARIOS.md: 2 could not run, 1 an expect failed, 0 all held. */
export function exitCodeOf(r: ScenarioResult): number {
  if (r.error || r.steps.some((s) => s.error)) return 2;
  return r.steps.some((s) => s.mismatches.length > 0) ? 1 : 0;
}

export interface Summary {
  steps: number;
  cellsChecked: number;
  cellsCorrect: number;
  worstConvergedMs: number;
}

export function summarize(scenario: Scenario, r: ScenarioResult): Summary {
  let checked = 0;
  for (const [i, s] of r.steps.entries()) {
    if (s.error) continue;
    for (const e of scenario.steps[i]!.expect) {
      for (const f of e.matrix.froms) for (const t of e.matrix.tos) if (f !== t && e.matrix.cells[f]![t] !== '-') checked++;
    }
  }
  const wrong = r.steps.reduce((n, s) => n + s.mismatches.length, 0);
  return {
    steps: r.steps.length,
    cellsChecked: checked,
    cellsCorrect: checked - wrong,
    worstConvergedMs: Math.max(0, ...r.steps.map((s) => s.convergedMs ?? 0)),
  };
}

/** Human-readable text for one step: narration, convergence, matrices, mismatches. */
export function formatStep(index: number, total: number, step: StepResult, color = false): string {
  const red = (s: string) => (color ? `\x1b[31m${s}\x1b[0m` : s);
  const bold = (s: string) => (color ? `\x1b[1m${s}\x1b[0m` : s);
  const lines = [bold(`== step ${index + 1}/${total}: ${step.name}`)];
  if (step.convergedMs !== null) {
    const probed = step.probedMs !== undefined ? `, ${step.probes.length} probe(s) of ${Object.keys(step.pods).length} pods in ${step.probedMs} ms` : '';
    lines.push(`   agents converged in ${step.convergedMs} ms${probed}`);
  }
  const keys = Object.keys(step.pods).sort();
  for (const p of step.probes) {
    const http = p.http !== undefined;
    const label = http ? `${p.port}/${p.protocol} ${p.http!.method} ${p.http!.path}` : `${p.port}/${p.protocol}`;
    const same = (m: Mismatch) => m.port === p.port && m.protocol === p.protocol && JSON.stringify(m.http ?? null) === JSON.stringify(p.http ?? null);
    const bad = new Set(step.mismatches.filter(same).map((m) => `${m.from}>${m.to}`));
    lines.push(`   ${label}${p.target === 'service' ? ' (via Service)' : ''}:`);
    const text = formatMatrix(keys, (f, t) => observedCell(p.results[f]?.[t], http), (f, t) => bad.has(`${f}>${t}`));
    lines.push(...text.split('\n').map((l) => `     ${l.includes('!') ? red(l) : l}`));
  }
  if (step.mismatches.length > 0) {
    lines.push(red(`   ${step.mismatches.length} cell(s) differ from expect (marked !):`));
    for (const m of step.mismatches) {
      const req = m.http as { method?: string; path?: string } | undefined;
      const what = req ? ` ${req.method ?? ''} ${req.path ?? ''}` : '';
      lines.push(red(`     ${m.from} -> ${m.to} ${m.port}/${m.protocol}${what}: expected ${fmt(m.expected)}, observed ${fmt(m.observed)}`));
    }
  } else if (step.probes.length > 0 && !step.error) {
    lines.push('   as expected');
  }
  if (step.error) lines.push(red(`   error: ${step.error}`));
  return lines.join('\n');
}

function fmt(v: unknown): string {
  if (v === true) return 'connected';
  if (v === false) return 'blocked';
  if (v === null) return 'no result';
  return String(v);
}

