/**
 * palisade-lab end to end as a user runs it: exit statuses 0/1/2, --json results,
 * --keep + kubectl + down, and cleanup after a run is killed or interrupted. Uses the
 * real agents and palisade-cni (needs root and `make build`). Every lab here is named
 * with a unique prefix and removed in afterAll, also on failure.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describePrivileged, uniquePrefix } from '../../helpers/privileged.ts';

const root = new URL('../../..', import.meta.url).pathname;
const bin = join(root, 'bin/palisade-lab');
const tmp = mkdtempSync(join(tmpdir(), 'lab-test-'));
const prefix = uniquePrefix('lab').toLowerCase();
const names: string[] = [];

function labName(tag: string): string {
  const n = `${prefix}-${tag}`;
  names.push(n);
  return n;
}

function netnsOf(name: string): string[] {
  try {
    return readdirSync('/var/run/netns').filter((n) => n.startsWith(`pl-${name}_`));
  } catch {
    return [];
  }
}

function run(args: string[], env: NodeJS.ProcessEnv = process.env): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(bin, args, { encoding: 'utf8', env, timeout: 300_000 });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

function scenarioFile(tag: string, text: string): string {
  const f = join(tmp, `${tag}.yaml`);
  writeFileSync(f, text);
  return f;
}

const base = `
namespaces: {x: {}, y: {}}
pods:
  - {namespace: x, name: a, labels: {pod: a}, node: 0, ports: [{name: serve-80-tcp, containerPort: 80}, {name: serve-80-udp, containerPort: 80, protocol: UDP}]}
  - {namespace: x, name: b, labels: {pod: b}, node: 1, ports: [{name: serve-80-tcp, containerPort: 80}, {name: serve-80-udp, containerPort: 80, protocol: UDP}]}
  - {namespace: y, name: a, labels: {pod: a}, node: 1, ports: [{name: serve-80-tcp, containerPort: 80}, {name: serve-80-udp, containerPort: 80, protocol: UDP}]}
`;

const denyStep = `
steps:
  - name: deny ingress to x/a except from x/b
    apply:
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: only-b, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]
    expect:
      - port: 80
        protocol: TCP
        matrix: |
          -    x/a x/b y/a
          x/a  -   .   .
          x/b  .   -   .
          y/a  EXPECTED   .   -
`;

describePrivileged('palisade-lab', () => {
  afterAll(() => {
    for (const n of names) spawnSync(bin, ['down', n], { encoding: 'utf8' });
    rmSync(tmp, { recursive: true, force: true });
  });

  it('exits 2 naming an unknown field, and builds nothing', () => {
    const name = labName('bad');
    const f = scenarioFile('bad', `${base}steps:\n  - name: s\n    probez: []\n`);
    const r = run(['run', f, '--name', name]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('"probez"');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(netnsOf(name)).toEqual([]);
    expect(existsSync(`/run/palisade-lab/${name}`)).toBe(false);
  });

  it('plays a scenario: exit 0 when every expect holds, with the JSON result; nothing left', () => {
    const name = labName('ok');
    const f = scenarioFile('ok', base + denyStep.replace('EXPECTED', 'X'));
    const r = run(['run', f, '--json', '--name', name]);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.nodes).toBe(2);
    expect(Object.keys(res.pods).sort()).toEqual(['x/a', 'x/b', 'y/a']);
    expect(res.pods['x/b'].node).toBe('lab-node-1');
    const step = res.steps[0];
    expect(step.mismatches).toEqual([]);
    expect(typeof step.convergedMs).toBe('number');
    const tcp = step.probes.find((p: { port: number; protocol: string }) => p.port === 80 && p.protocol === 'TCP');
    expect(tcp.results['y/a']['x/a']).toBe(false);
    expect(tcp.results['x/b']['x/a']).toBe(true);
    // UDP was not restricted for x/b -> x/a, blocked for y/a -> x/a (no port in the rule = all ports).
    const udp = step.probes.find((p: { port: number; protocol: string }) => p.port === 80 && p.protocol === 'UDP');
    expect(udp.results['x/b']['x/a']).toBe(true);
    expect(udp.results['y/a']['x/a']).toBe(false);
    expect(netnsOf(name)).toEqual([]);
    expect(existsSync(`/run/palisade-lab/${name}`)).toBe(false);
  });

  it('runs with the reference CNI plugins too (no agents, no policy): everything connects, same and cross node', () => {
    const name = labName('ptp');
    const f = scenarioFile('ptp', base + denyStep.replace('EXPECTED', '.'));
    const r = run(['run', f, '--json', '--cni', 'ptp', '--name', name]);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    for (const p of res.steps[0].probes) {
      for (const [from, row] of Object.entries(p.results as Record<string, Record<string, boolean>>)) {
        for (const [to, v] of Object.entries(row)) expect(v, `${from} -> ${to} ${p.port}/${p.protocol}`).toBe(true);
      }
    }
    expect(netnsOf(name)).toEqual([]);
  });

  it('exits 1 and lists the mismatching cell when an expect fails', () => {
    const name = labName('mis');
    const f = scenarioFile('mis', base + denyStep.replace('EXPECTED', '.'));
    const r = run(['run', f, '--json', '--name', name]);
    expect(r.code, r.stderr).toBe(1);
    const res = JSON.parse(r.stdout);
    expect(res.steps[0].mismatches).toEqual([
      { port: 80, protocol: 'TCP', from: 'y/a', to: 'x/a', expected: true, observed: false },
    ]);
    const text = run(['run', f, '--name', name]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/y\/a -> x\/a 80\/TCP: expected connected, observed blocked/);
  });

  it('a step that cannot complete gets an error, later steps are skipped, exit 2, partial result printed', () => {
    const name = labName('err');
    const f = scenarioFile('err', `${base}steps:
  - name: all open
  - name: a pod on a node the lab does not have
    apply:
      - {kind: Pod, metadata: {namespace: x, name: c}, spec: {nodeName: lab-node-7, containers: [{ports: [{containerPort: 80}]}]}}
  - name: never played
`);
    const r = run(['run', f, '--json', '--name', name]);
    expect(r.code, r.stderr).toBe(2);
    const res = JSON.parse(r.stdout);
    expect(res.steps).toHaveLength(2);
    expect(res.steps[0].error).toBeUndefined();
    expect(res.steps[1].error).toMatch(/lab-node-7/);
    expect(Object.keys(res.steps[1].pods).sort()).toEqual(['x/a', 'x/b', 'y/a']);
    expect(netnsOf(name)).toEqual([]);
  });

  it('--keep leaves a lab kubectl can use; down removes it', () => {
    const name = labName('keep');
    const f = scenarioFile('keep', base);
    const r = run(['run', f, '--keep', '--name', name]);
    expect(r.code, r.stderr).toBe(0);
    const m = /export KUBECONFIG=(\S+)/.exec(r.stderr);
    expect(m).not.toBeNull();
    const k = spawnSync('kubectl', ['get', 'pods', '-A', '-o', 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}={.status.podIP} {end}'],
      { encoding: 'utf8', env: { ...process.env, KUBECONFIG: m![1] } });
    expect(k.status, k.stderr).toBe(0);
    expect(k.stdout).toMatch(/x\/a=10\.244\.0\.\d+/);
    expect(netnsOf(name).length).toBeGreaterThan(4);
    // A second lab of the same name is refused while this one is up.
    const again = run(['run', f, '--name', name]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/is up/);
    const d = run(['down', name]);
    expect(d.code, d.stderr).toBe(0);
    expect(netnsOf(name)).toEqual([]);
    expect(existsSync(`/run/palisade-lab/${name}`)).toBe(false);
  });

  it('cleans up on SIGINT, and the next run removes leftovers of a killed one', async () => {
    const name = labName('sig');
    const f = scenarioFile('sig', base + denyStep.replace('EXPECTED', 'X'));
    const waitForPods = async () => {
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && !netnsOf(name).some((n) => n.includes('_p-'))) await new Promise((r) => setTimeout(r, 100));
    };
    // SIGINT: the lab removes itself.
    const child = spawn(bin, ['run', f, '--name', name], { stdio: 'ignore' });
    await waitForPods();
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(130);
    expect(netnsOf(name)).toEqual([]);
    expect(existsSync(`/run/palisade-lab/${name}`)).toBe(false);
    // SIGKILL: leftovers stay; the next run of the same name removes them first.
    const killed = spawn(bin, ['run', f, '--name', name], { stdio: 'ignore' });
    await waitForPods();
    killed.kill('SIGKILL');
    await new Promise((r) => killed.on('close', r));
    expect(netnsOf(name).length).toBeGreaterThan(0);
    const r = run(['run', f, '--name', name]);
    expect(r.stderr).toMatch(/leftovers/);
    expect(r.code, r.stderr).toBe(0);
    expect(netnsOf(name)).toEqual([]);
  });
});
