/**
 * The kubelet loop of a kept lab, as a user meets it: pods made with `kubectl run` /
 * `kubectl apply` get a network (IP, probe servers) and policies applied with kubectl
 * act on them; `kubectl delete pod` removes their netns and agent endpoint; the loop
 * picks up where it was after a restart; `down` leaves nothing. Real agents and
 * palisade-cni (root, `make build`); the lab is named with a unique prefix and removed
 * in afterAll, also on failure.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describePrivileged, uniquePrefix } from '../../helpers/privileged.ts';

const root = new URL('../../..', import.meta.url).pathname;
const bin = join(root, 'bin/palisade-lab');
const tmp = mkdtempSync(join(tmpdir(), 'kubelet-test-'));
const name = `${uniquePrefix('klt').toLowerCase()}`;
const dir = `/run/palisade-lab/${name}`;

interface Endpoint { pod: string; containerId: string; ipv4: string }
interface State { kubeletPid: number; apiPid: number; pods: { namespace: string; name: string; serverPid: number }[] }

function netnsOf(): string[] {
  try {
    return readdirSync('/var/run/netns').filter((n) => n.startsWith(`pl-${name}_`));
  } catch {
    return [];
  }
}

function lab(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

function kubectl(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('kubectl', args, {
    encoding: 'utf8', timeout: 60_000, input, env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig') },
  });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

function state(): State {
  return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as State;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function unixJson(sock: string, method: string, path: string, body?: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath: sock, method, path, timeout: 10_000, headers: data ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => { try { resolve(JSON.parse(text)); } catch (err) { reject(err as Error); } });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

/** One probe from inside scenario pod x/a's netns, as the lab probes (its probe server). */
async function probeFromA(to: string, port: number, protocol: 'TCP' | 'UDP'): Promise<boolean> {
  const r = await unixJson(join(dir, 'pods', 'x.a.sock'), 'POST', '/probe', { probes: [{ to, port, protocol }] }) as { results: unknown[] };
  return r.results[0] === true;
}

/** Polls the probe until it answers `want` (30 s); returns the last answer. */
async function probeUntil(to: string, port: number, protocol: 'TCP' | 'UDP', want: boolean): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  let got = !want;
  while (Date.now() < deadline) {
    got = await probeFromA(to, port, protocol);
    if (got === want) return got;
    await new Promise((r) => setTimeout(r, 300));
  }
  return got;
}

async function endpoints(node: number): Promise<Endpoint[]> {
  return await unixJson(join(dir, `n${node}`, 'agent.sock'), 'GET', '/v1/endpoints') as Endpoint[];
}

/** Waits (60 s) for a pod's status.podIP; returns it and the node it was bound to. */
async function podIP(ns: string, pod: string): Promise<{ ip: string; node: string }> {
  const deadline = Date.now() + 60_000;
  let last = '';
  while (Date.now() < deadline) {
    const r = kubectl(['get', 'pod', pod, '-n', ns, '-o', 'jsonpath={.status.podIP} {.spec.nodeName}']);
    last = r.stdout + r.stderr;
    const [ip, node] = r.stdout.trim().split(' ');
    if (r.code === 0 && ip && node) return { ip, node };
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`pod ${ns}/${pod} got no IP within 60 s (${last}); kubelet log: ${readFileSync(join(dir, 'kubelet.log'), 'utf8').slice(-500)}`);
}

const scenario = `
name: kubelet
namespaces: {x: {}}
pods:
  - {namespace: x, name: a, labels: {pod: a}, node: 0, ports: [{containerPort: 80}]}
steps:
  - name: nothing yet
`;

describePrivileged('palisade-lab kubelet loop (kept labs)', () => {
  afterAll(() => {
    spawnSync(bin, ['down', name], { encoding: 'utf8' });
    rmSync(tmp, { recursive: true, force: true });
  });

  it('wires kubectl-made pods, enforces kubectl-applied policy on them, unwires on delete, and down leaves nothing', async () => {
    const f = join(tmp, 'kubelet.yaml');
    writeFileSync(f, scenario);
    const r = lab(['run', f, '--keep', '--name', name, '--nodes', '2']);
    expect(r.code, r.stderr).toBe(0);
    const kubeletPid = state().kubeletPid;
    expect(alive(kubeletPid)).toBe(true);

    // kubectl run: no nodeName, so the loop binds it to a lab node.
    const run = kubectl(['run', 'web', '-n', 'x', '--image=example/web', '--port=8080', '--labels=app=web']);
    expect(run.code, run.stderr).toBe(0);
    const web = await podIP('x', 'web');
    expect(web.node).toMatch(/^lab-node-[01]$/);
    const webNode = Number(web.node.slice(-1));
    expect(web.ip.startsWith(`10.244.${webNode}.`)).toBe(true);
    expect(netnsOf()).toContain(`pl-${name}_p-x.web`);
    const ready = kubectl(['get', 'pod', 'web', '-n', 'x', '-o', 'jsonpath={.status.phase} {.status.conditions[?(@.type=="Ready")].status} {.status.podIPs[0].ip}']);
    expect(ready.stdout).toBe(`Running True ${web.ip}`);
    expect((await endpoints(webNode)).filter((e) => e.pod === 'x/web').map((e) => e.ipv4)).toEqual([web.ip]);

    // Reachable from the scenario pod's netns, then blocked by a policy applied with kubectl.
    expect(await probeUntil(web.ip, 8080, 'TCP', true)).toBe(true);
    const deny = kubectl(['apply', '-f', '-'], `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
`);
    expect(deny.code, deny.stderr).toBe(0);
    expect(await probeUntil(web.ip, 8080, 'TCP', false)).toBe(false);

    // kubectl apply with an explicit node and a UDP port; the policy does not select it.
    const apply = kubectl(['apply', '-f', '-'], `apiVersion: v1
kind: Pod
metadata: {name: echo, namespace: x, labels: {app: echo}}
spec:
  nodeName: lab-node-1
  containers: [{name: echo, image: example/echo, ports: [{containerPort: 9000, protocol: UDP}]}]
`);
    expect(apply.code, apply.stderr).toBe(0);
    const echo = await podIP('x', 'echo');
    expect(echo.node).toBe('lab-node-1');
    expect(echo.ip.startsWith('10.244.1.')).toBe(true);
    expect(await probeUntil(echo.ip, 9000, 'UDP', true)).toBe(true);

    // A restarted loop adopts what exists: same IPs, same endpoints, no second CNI ADD.
    const before = (await endpoints(webNode)).filter((e) => e.pod === 'x/web');
    process.kill(kubeletPid, 'SIGKILL');
    const restart = lab(['kubelet', name]);
    expect(restart.code, restart.stderr).toBe(0);
    expect(state().kubeletPid).not.toBe(kubeletPid);
    expect((await podIP('x', 'web')).ip).toBe(web.ip);
    expect((await endpoints(webNode)).filter((e) => e.pod === 'x/web')).toEqual(before);
    expect(await probeFromA(echo.ip, 9000, 'UDP')).toBe(true);

    // kubectl delete pod: CNI DEL (the agent forgets the endpoint), netns gone, object gone.
    const del = kubectl(['delete', 'pod', 'web', '-n', 'x']);
    expect(del.code, del.stderr).toBe(0);
    expect(netnsOf()).not.toContain(`pl-${name}_p-x.web`);
    expect((await endpoints(webNode)).filter((e) => e.pod === 'x/web')).toEqual([]);
    expect(kubectl(['get', 'pod', 'web', '-n', 'x']).stderr).toMatch(/NotFound|not found/);
    expect(state().pods.map((p) => `${p.namespace}/${p.name}`).sort()).toEqual(['x/a', 'x/echo']);

    // The runner's pod was handed over to the loop: deleting it unwires it too.
    const delA = kubectl(['delete', 'pod', 'a', '-n', 'x']);
    expect(delA.code, delA.stderr).toBe(0);
    expect(netnsOf()).not.toContain(`pl-${name}_p-x.a`);
    expect((await endpoints(0)).filter((e) => e.pod === 'x/a')).toEqual([]);

    // down: no netns with the lab's prefix, none of its processes, no directory.
    const s = state();
    const pids = [s.kubeletPid, s.apiPid, ...s.pods.map((p) => p.serverPid)];
    expect(pids.every(alive)).toBe(true);
    const d = lab(['down', name]);
    expect(d.code, d.stderr).toBe(0);
    expect(netnsOf()).toEqual([]);
    expect(pids.filter(alive)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  }, 300_000);
});
