/**
 * Inspection end to end in a lab, as a user does it with real kubectl and the plugin on
 * PATH: a default-deny policy applied with `kubectl apply`, a denied probe, then
 * `kubectl get pep -A` shows the enforcement, `kubectl palisade trace` names the deciding
 * policy, `kubectl palisade observe --verdict dropped -o json` shows that very drop with
 * its policy and the agent's /metrics counts it; then an allow policy, and trace says
 * allowed and by which policy. Needs root and `make build`; the lab is uniquely named and
 * removed in afterAll, also on failure.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Lab } from '../../../pkg/lab/lab.ts';
import type { FlowRecord } from '../../../pkg/flow/types.ts';
import { describePrivileged, uniquePrefix } from '../../helpers/privileged.ts';

const root = new URL('../../..', import.meta.url).pathname;
const home = mkdtempSync(join(tmpdir(), 'inspect-test-'));
const name = uniquePrefix('ins').toLowerCase();
let lab: Lab | undefined;

function env(): NodeJS.ProcessEnv {
  // With bin/ on PATH, plain kubectl finds the plugin (kubectl-palisade).
  return { ...process.env, PATH: `${join(root, 'bin')}:${process.env.PATH ?? ''}`, KUBECONFIG: lab!.kubeconfig, HOME: home };
}

function kubectl(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('kubectl', args, { encoding: 'utf8', env: env(), timeout: 60_000, ...(input !== undefined ? { input } : {}) });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function eventually<T>(what: string, fn: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function probe(from: string, to: string): Promise<boolean> {
  const r = await lab!.probeAll([{ port: 80, protocol: 'TCP' }], [from, to]);
  return r[0]![from]![to] === true;
}

const defaultDeny = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
`;

const allowFromY = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-from-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: 'y'}}}]
      ports: [{protocol: TCP, port: 80}]
`;

describePrivileged('kubectl palisade in the lab', () => {
  beforeAll(async () => {
    lab = await Lab.create({ name, nodes: 2 });
    for (const ns of ['x', 'y']) await lab.ensureNamespace(ns, {});
    const ports = [{ name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' as const }];
    await lab.createPod({ namespace: 'x', name: 'a', labels: { pod: 'a' }, ports, node: 0 });
    await lab.createPod({ namespace: 'y', name: 'a', labels: { pod: 'a' }, ports, node: 1 });
  }, 180_000);

  afterAll(async () => {
    await lab?.destroy();
    rmSync(home, { recursive: true, force: true });
  }, 120_000);

  it('the plugin is found by kubectl and reaches every agent', () => {
    const r = kubectl(['palisade', 'status']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^NODE\s+AGENT\s+HEALTH/);
    expect(r.stdout).toMatch(/\nlab-node-0\s+palisade-agent-lab-node-0\s+\S+/);
    expect(r.stdout).toMatch(/\nlab-node-1\s+palisade-agent-lab-node-1\s+\S+/);
    expect(r.stdout).not.toMatch(/unreachable|no agent|not ready/);
  });

  let t0 = 0;

  it('default deny applied with kubectl: the probe is denied', async () => {
    expect(await probe('y/a', 'x/a')).toBe(true);
    t0 = Date.now();
    const applied = kubectl(['apply', '-f', '-'], defaultDeny);
    expect(applied.code, applied.stderr).toBe(0);
    await lab!.barrier();
    expect(await probe('y/a', 'x/a')).toBe(false);
  });

  it('trace names the deciding policy: default deny', () => {
    const trace = kubectl(['palisade', 'trace', 'y/a', 'x/a', '--port', '80']);
    expect(trace.code, trace.stderr).toBe(0);
    expect(trace.stdout).toMatch(/^DENIED: y\/a \(10\.244\.1\.\d+\) -> x\/a \(10\.244\.0\.\d+\) TCP\/80\ndecided by: default-deny\n/);
    expect(trace.stdout).toContain('isolated for ingress by NetworkPolicy:x/default-deny');
  });

  it('observe --verdict dropped shows that very drop with its policy', async () => {
    const drop = await eventually('the drop in observe', () => {
      const r = kubectl(['palisade', 'observe', '--verdict', 'dropped', '--pod', 'x/a', '-o', 'json']);
      if (r.code !== 0) throw new Error(r.stderr);
      return (JSON.parse(r.stdout) as FlowRecord[]).find((f) => f.time >= t0 && f.src.pod === 'a' && f.src.namespace === 'y'
        && f.dst.pod === 'a' && f.dst.namespace === 'x' && f.dst.port === 80);
    });
    expect(drop).toMatchObject({ verdict: 'dropped', reason: 'policy-denied', direction: 'ingress', protocol: 'TCP', node: 'lab-node-0', policy: 'default-deny' });
    const text = kubectl(['palisade', 'observe', '--verdict', 'dropped']);
    expect(text.stdout).toMatch(/lab-node-0\s+dropped\s+ingress\s+y\/a\s+x\/a:80\s+TCP\s+policy-denied\s+default-deny/);
  });

  it('the agent counts it: /metrics through the API server, drops in status', () => {
    const metrics = kubectl(['get', '--raw', '/api/v1/namespaces/kube-system/pods/palisade-agent-lab-node-0:9876/proxy/metrics']);
    expect(metrics.code, metrics.stderr).toBe(0);
    const dropped = metrics.stdout.split('\n').filter((l) => l.startsWith('palisade_datapath_drops_total{')
      && l.includes('reason="policy-denied"') && l.includes('direction="ingress"'));
    expect(dropped, metrics.stdout.slice(0, 2000)).toHaveLength(1);
    expect(Number(dropped[0]!.split(' ').at(-1))).toBeGreaterThanOrEqual(1);
    const status = kubectl(['palisade', 'status', '-o', 'json']);
    expect(status.code, status.stderr).toBe(0);
    const n0 = (JSON.parse(status.stdout) as { nodes: { node: string; status: { drops?: { lastMinute: number } } }[] }).nodes.find((n) => n.node === 'lab-node-0');
    expect(n0?.status.drops?.lastMinute).toBeGreaterThanOrEqual(1);
  });

  it('kubectl get pep -A shows the enforcement', async () => {
    // PalisadeEndpoint status writes are rate-limited: wait for it.
    const pep = await eventually('x/a enforced in kubectl get pep -A', () => {
      const r = kubectl(['get', 'pep', '-A', '--no-headers', '-o', 'custom-columns=NS:.metadata.namespace,NAME:.metadata.name,IN:.status.ingressEnforcement,POL:.status.policies']);
      const line = r.stdout.split('\n').find((l) => /^x\s+a\s/.test(l));
      return line && /enabled/.test(line) && /default-deny/.test(line) ? line : undefined;
    });
    expect(pep).toMatch(/^x\s+a\s+enabled\s+.*NetworkPolicy:x\/default-deny/);
    const table = kubectl(['get', 'palisadeendpoints', '-A']);
    expect(table.stdout).toMatch(/NAMESPACE\s+NAME\s+IDENTITY\s+INGRESS\s+EGRESS/);
    const eps = kubectl(['palisade', 'endpoints', '-n', 'x']);
    expect(eps.stdout).toMatch(/\na\s+lab-node-0\s+10\.244\.0\.\d+\s+\d+\s+enabled\s+disabled\s+NetworkPolicy:x\/default-deny/);
  });

  it('an allow policy: the probe passes and trace names the policy that allows it', async () => {
    const applied = kubectl(['apply', '-f', '-'], allowFromY);
    expect(applied.code, applied.stderr).toBe(0);
    await lab!.barrier();
    const t2 = Date.now();
    expect(await probe('y/a', 'x/a')).toBe(true);
    const trace = kubectl(['palisade', 'trace', 'y/a', 'x/a', '--port', '80', '-o', 'json']);
    expect(trace.code, trace.stderr).toBe(0);
    const t = JSON.parse(trace.stdout);
    expect(t.verdict).toBe('allowed');
    expect(t.decidedBy).toMatchObject({ direction: 'ingress', pod: 'x/a', policy: 'NetworkPolicy:x/allow-from-y', ruleIndex: 0 });
    // Another port stays denied by default.
    const other = kubectl(['palisade', 'trace', 'y/a', 'x/a', '--port', '81']);
    expect(other.stdout).toMatch(/^DENIED:.*\ndecided by: default-deny/);
    const policy = kubectl(['palisade', 'policy', 'x/a']);
    expect(policy.stdout).toMatch(/y\/a\s+TCP\/80\s+NetworkPolicy:x\/allow-from-y\s+0/);
    // The agent attributes the allowed flow to the same policy.
    const allowed = await eventually('the allowed flow in observe', () => {
      const r = kubectl(['palisade', 'observe', '--verdict', 'allowed', '--pod', 'x/a', '-o', 'json']);
      if (r.code !== 0) throw new Error(r.stderr);
      return (JSON.parse(r.stdout) as FlowRecord[]).find((f) => f.time >= t2 && f.direction === 'ingress' && f.src.namespace === 'y' && f.dst.pod === 'a' && f.dst.port === 80);
    });
    expect(allowed).toMatchObject({ direction: 'ingress', node: 'lab-node-0', policy: 'NetworkPolicy:x/allow-from-y' });
  });

  it('observe --follow streams a new drop through the API server as it happens', async () => {
    const child = spawn('kubectl', ['palisade', 'observe', '--follow', '--verdict', 'dropped', '--pod', 'x/a', '-o', 'json'], { env: env() });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      // Let the streams open (their backlog is printed first), then make a new drop: port 81.
      await new Promise((r) => setTimeout(r, 2500));
      const t1 = Date.now();
      expect(await lab!.probeAll([{ port: 81, protocol: 'TCP' }], ['y/a', 'x/a']).then((r) => r[0]!['y/a']!['x/a'])).toBe(false);
      const rec = await eventually('the port 81 drop on the stream', () => out.split('\n').filter(Boolean)
        .map((l) => JSON.parse(l) as FlowRecord).find((f) => f.time >= t1 && f.dst.port === 81 && f.src.namespace === 'y'));
      expect(rec).toMatchObject({ verdict: 'dropped', policy: 'default-deny', node: 'lab-node-0' });
    } finally {
      child.kill('SIGINT');
    }
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(0);
  });

  it('clear errors: an unknown pod exits 1', () => {
    const r = kubectl(['palisade', 'policy', 'x/nope']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('pod x/nope not found');
  });
});
