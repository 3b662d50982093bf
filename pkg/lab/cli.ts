/**
 * The `palisade-lab` command line (cmd/palisade-lab.ts only calls `main`).
 *
 *   run FILE [--json] [--nodes N] [--keep] [--name NAME]
 *   up [--nodes N] [--name NAME]      build a lab and leave it up; prints export KUBECONFIG=...
 *   status [NAME] [--json]            labs on this host, their nodes, pods and agents
 *   down [NAME]                       remove a lab (the only one when NAME is omitted)
 *   kubelet NAME                      restart the kubelet loop of a kept lab
 *   demo [--nodes N]                  the guided tour: plays examples/demo.yaml
 *
 * Exit status: 0 ok / every expect held, 1 an expect failed, 2 could not run (one line on
 * stderr saying what and how to fix it; nothing left behind).
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseScenario, ScenarioError, type Scenario } from './scenario.ts';
import {
  describeLab, destroyLab, Lab, startKubelet, LabBusyError, labNameFrom, LabPrerequisiteError, listLabs, repoRoot,
  validateLabName, type CniMode,
} from './lab.ts';
import { sleep } from './exec.ts';
import { exitCodeOf, formatStep, playScenario, summarize, type ScenarioResult } from './runner.ts';

const USAGE = `usage: palisade-lab run FILE [--json] [--nodes N] [--keep] [--name NAME]
       palisade-lab up [--nodes N] [--name NAME]
       palisade-lab status [NAME] [--json]
       palisade-lab down [NAME]
       palisade-lab kubelet NAME
       palisade-lab demo [--nodes N]`;

class UsageError extends Error {}

interface Args {
  cmd: string;
  positional: string[];
  json: boolean;
  keep: boolean;
  nodes?: number;
  name?: string;
  cni: CniMode;
}

export function parseArgs(argv: readonly string[]): Args {
  const a: Args = { cmd: argv[0] ?? '', positional: [], json: false, keep: false, cni: 'palisade' };
  for (let i = 1; i < argv.length; i++) {
    const v = argv[i]!;
    const value = () => {
      const x = argv[++i];
      if (x === undefined) throw new UsageError(`${v} needs a value`);
      return x;
    };
    if (v === '--json') a.json = true;
    else if (v === '--keep') a.keep = true;
    else if (v === '--nodes') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 16) throw new UsageError('--nodes must be an integer in 1..16');
      a.nodes = n;
    } else if (v === '--name') a.name = value();
    else if (v === '--cni') {
      // Hidden: `ptp` runs the lab with the reference CNI plugins and no agents (no
      // policy), to test the lab machinery on its own.
      const c = value();
      if (c !== 'palisade' && c !== 'ptp') throw new UsageError('--cni must be palisade or ptp');
      a.cni = c;
    } else if (v.startsWith('-')) throw new UsageError(`unknown option ${v}`);
    else a.positional.push(v);
  }
  return a;
}

/** Current lab, removed by the signal handlers. */
let active: { name: string; lab?: Lab; keep: boolean } | undefined;
let stopping = false;

function installSignalHandlers(): void {
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    const cur = active;
    process.stderr.write(`palisade-lab: ${sig}: removing the lab\n`);
    const done = () => process.exit(sig === 'SIGINT' ? 130 : 143);
    if (!cur) done();
    // The interrupted flow may still be creating something (a pod's netns, a process)
    // while the first pass runs: a second pass after it settles catches those.
    else destroyLab(cur.name).then(() => sleep(500)).then(() => destroyLab(cur.name)).then(done, done);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  process.on('SIGHUP', handler);
}

const logErr = (l: string) => process.stderr.write(`palisade-lab: ${l}\n`);

function readScenario(file: string): Scenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseScenario(text);
  } catch (err) {
    if (err instanceof ScenarioError) throw new UsageError(`${file}: ${err.message}`);
    throw err;
  }
}

interface PlayOptions {
  file: string;
  json: boolean;
  keep: boolean;
  nodes?: number;
  name?: string;
  cni: CniMode;
  narrate?: (line: string) => void;
}

async function play(o: PlayOptions): Promise<number> {
  const scenario = readScenario(o.file);
  const scenarioName = scenario.name ?? basename(o.file).replace(/\.(ya?ml|json)$/, '');
  const name = validateLabName(o.name ?? labNameFrom(scenarioName));
  const nodes = o.nodes ?? scenario.nodes ?? 2;
  const out = o.json ? logErr : (l: string) => process.stdout.write(`${l}\n`);
  const color = !o.json && process.stdout.isTTY === true;
  active = { name, keep: o.keep };
  const t0 = Date.now();
  const lab = await Lab.create({ name, nodes, cni: o.cni, log: logErr });
  active.lab = lab;
  let result: ScenarioResult;
  try {
    o.narrate?.(`lab "${name}" is up: ${nodes} nodes, API server, ${o.cni === 'palisade' ? 'one palisade-agent per node' : 'reference CNI plugins (no policy)'}`);
    result = await playScenario(lab, scenario, scenarioName, {
      onStep: (i, _s, r) => {
        if (!o.json) out(formatStep(i, scenario.steps.length, r, color));
      },
    });
    if (o.keep) {
      lab.keep();
      // From here a kubelet loop answers for the pods (kubectl-made ones too).
      try {
        await lab.startKubelet();
      } catch (err) {
        await lab.destroy();
        throw err;
      }
      process.stderr.write(`export KUBECONFIG=${lab.kubeconfig}\n`);
      logErr(`lab "${name}" kept; remove it with: palisade-lab down ${name}`);
    }
  } finally {
    if (!o.keep) await lab.destroy();
    active = undefined;
  }
  if (result.error) logErr(`error: ${result.error}`);
  const s = summarize(scenario, result);
  const summary = `${scenarioName}: ${s.steps}/${scenario.steps.length} steps played, ${s.cellsCorrect}/${s.cellsChecked} cells as expected, worst convergence ${s.worstConvergedMs} ms, ${((Date.now() - t0) / 1000).toFixed(1)} s in all`;
  if (o.json) {
    // Wait for the write to reach the pipe: the launcher calls process.exit() next, which
    // cut results larger than the pipe buffer (64 KiB) when stdout was not drained.
    await new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(result, null, 2)}\n`, () => resolve()));
    logErr(summary);
  } else {
    out(summary);
  }
  return exitCodeOf(result);
}

async function up(a: Args): Promise<number> {
  const name = validateLabName(a.name ?? 'lab');
  active = { name, keep: true };
  const lab = await Lab.create({ name, nodes: a.nodes ?? 2, cni: a.cni, log: logErr });
  lab.keep();
  await lab.startKubelet();
  active = undefined;
  logErr(`lab "${name}" is up with ${lab.nodes.length} nodes; remove it with: palisade-lab down ${name}`);
  process.stdout.write(`export KUBECONFIG=${lab.kubeconfig}\n`);
  return 0;
}

async function down(a: Args): Promise<number> {
  let name = a.positional[0];
  if (!name) {
    const labs = listLabs();
    if (labs.length === 0) {
      logErr('no lab is up');
      return 0;
    }
    if (labs.length > 1) throw new UsageError(`several labs are up (${labs.join(', ')}): name one`);
    name = labs[0]!;
  }
  validateLabName(name);
  if (process.getuid?.() !== 0) throw new LabPrerequisiteError('needs root: run it as root, e.g. with sudo');
  await destroyLab(name, logErr);
  logErr(`lab "${name}" removed`);
  return 0;
}

async function kubelet(a: Args): Promise<number> {
  const name = a.positional[0];
  if (!name || a.positional.length > 1) throw new UsageError(`kubelet needs exactly one lab name\n${USAGE}`);
  validateLabName(name);
  if (process.getuid?.() !== 0) throw new LabPrerequisiteError('needs root: run it as root, e.g. with sudo');
  const pid = await startKubelet(name);
  logErr(`lab "${name}": kubelet loop running (pid ${pid})`);
  return 0;
}

async function status(a: Args): Promise<number> {
  const names = a.positional[0] ? [a.positional[0]] : listLabs();
  const labs = await Promise.all(names.map((n) => describeLab(n)));
  if (a.json) {
    process.stdout.write(`${JSON.stringify(labs, null, 2)}\n`);
    return 0;
  }
  if (labs.length === 0) process.stdout.write('no lab is up\n');
  for (const l of labs) {
    process.stdout.write(`lab ${l.name}: ${l.up ? 'up' : 'not running (leftovers; palisade-lab down removes them)'}` +
      `${l.nodes ? `, ${String(l.nodes)} nodes` : ''}${l.kept ? `, kept (kubelet loop ${String(l.kubelet)})` : ''}\n`);
    if (l.kubeconfig) process.stdout.write(`  export KUBECONFIG=${String(l.kubeconfig)}\n`);
    for (const p of (l.pods ?? []) as { pod: string; ip: string; node: string }[]) {
      process.stdout.write(`  pod ${p.pod.padEnd(20)} ${p.ip.padEnd(15)} ${p.node}\n`);
    }
    for (const ag of (l.agents ?? []) as Record<string, unknown>[]) {
      process.stdout.write(`  agent ${JSON.stringify(ag)}\n`);
    }
  }
  return 0;
}

async function demo(a: Args): Promise<number> {
  const file = join(repoRoot(), 'examples', 'demo.yaml');
  const say = (l: string) => process.stdout.write(`${l}\n`);
  say('Palisade lab demo: a two-node cluster in network namespaces, one palisade-agent per node,');
  say('pods wired by palisade-cni. Each step applies objects, waits until every agent has');
  say('realized them, then probes every pod pair. "." = connected, "X" = blocked.');
  say('');
  return play({ file, json: false, keep: false, nodes: a.nodes ?? 2, name: a.name ?? 'demo', cni: a.cni, narrate: say });
}

export async function main(argv: readonly string[]): Promise<number> {
  installSignalHandlers();
  // Root's tools (ip, sysctl, umount) live in sbin, which a user's PATH may lack.
  const path = (process.env.PATH ?? '/usr/bin:/bin').split(':');
  for (const d of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!path.includes(d)) path.push(d);
  process.env.PATH = path.join(':');
  const code = await dispatch(argv);
  // Interrupted: the signal handler owns the exit (after cleanup), not this flow.
  if (stopping) await new Promise<never>(() => setInterval(() => {}, 1000));
  return code;
}

async function dispatch(argv: readonly string[]): Promise<number> {
  try {
    const a = parseArgs(argv);
    switch (a.cmd) {
      case 'run': {
        const file = a.positional[0];
        if (!file || a.positional.length > 1) throw new UsageError(`run needs exactly one scenario file\n${USAGE}`);
        const o: PlayOptions = { file, json: a.json, keep: a.keep, cni: a.cni };
        if (a.nodes !== undefined) o.nodes = a.nodes;
        if (a.name !== undefined) o.name = a.name;
        return await play(o);
      }
      case 'up': return await up(a);
      case 'down': return await down(a);
      case 'kubelet': return await kubelet(a);
      case 'status': return await status(a);
      case 'demo': return await demo(a);
      case '-h': case '--help': case 'help':
        process.stdout.write(`${USAGE}\n`);
        return 0;
      default:
        throw new UsageError(a.cmd ? `unknown command "${a.cmd}"\n${USAGE}` : USAGE);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof LabPrerequisiteError || err instanceof LabBusyError) {
      logErr(err.message);
    } else {
      logErr(`error: ${(err as Error).message}`);
      if (active && !active.keep) await destroyLab(active.name).catch(() => undefined);
      else if (active?.keep && !active.lab) await destroyLab(active.name).catch(() => undefined);
    }
    return 2;
  }
}
