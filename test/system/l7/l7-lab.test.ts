/**
 * L7 HTTP policy end to end in the lab: real agents (their proxy and the datapath
 * redirect), real pods on two nodes, real HTTP clients and servers. The scenario covers
 * GET /public 200, POST /public 403, GET /admin 403, a header rule, the union with an
 * L3/L4-only policy, an egress rule on the client side (same-node and cross-node pairs)
 * and the union across lookups (an ipBlock allow without http covering pods an http rule
 * names; an http rule on any pod united with one on those pods); then, in the kept lab,
 * a client in a pod checks a host rule, a policy update between two requests of one
 * keep-alive connection, a large upload and a malformed request. Also runs
 * examples/l7-http.yaml. Needs root and `make build`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged, uniquePrefix } from '../../helpers/privileged.ts';

const root = new URL('../../..', import.meta.url).pathname;
const lab = join(root, 'bin/palisade-lab');
const client = join(root, 'test/system/l7/client.py');
const tmp = mkdtempSync(join(tmpdir(), 'l7-lab-'));
const name = `${uniquePrefix('l7').toLowerCase()}`;

const pods = `
namespaces: {x: {}, y: {}}
pods:
  - {namespace: x, name: a, labels: {pod: a}, node: 0, ports: [{name: http, containerPort: 80}]}
  - {namespace: x, name: b, labels: {pod: b}, node: 1, ports: [{name: http, containerPort: 80}]}
  - {namespace: x, name: c, labels: {pod: c}, node: 0, ports: [{name: http, containerPort: 80}]}
  - {namespace: y, name: d, labels: {pod: d}, node: 1, ports: [{name: http, containerPort: 80}]}
`;

const head = '-    x/a  x/b  x/c  y/d';
const matrix = (rows: string[]): string => [head, ...rows].join('\n');

/** One `expect` entry of a step: the HTTP request on TCP port 80 and its matrix rows. */
function expect80(http: string, rows: string[]): string {
  return `      - port: 80
        protocol: TCP
        http: ${http}
        matrix: |
${indent(matrix(rows))}`;
}

const scenario = `${pods}
steps:
  - name: ingress http rules on x/a
    apply:
      - apiVersion: palisade.dev/v1alpha1
        kind: PalisadeNetworkPolicy
        metadata: {name: l7, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          policyTypes: [Ingress]
          ingress:
            - ports:
                - port: 80
                  http:
                    - {method: GET, path: "/public(/.*)?"}
                    - {headers: [{name: x-token, value: s3cret}]}
                    - {host: api.example.com, path: /host-only}
    probes:
      - {port: 80, protocol: TCP, http: {method: GET, path: /public}}
      - {port: 80, protocol: TCP, http: {method: POST, path: /public}}
      - {port: 80, protocol: TCP, http: {method: GET, path: /admin}}
      - {port: 80, protocol: TCP, http: {method: GET, path: /admin, headers: {x-token: s3cret}}}
    expect:
${expect80('{method: GET, path: /public}', ['x/a  -    .    .    .', 'x/b  .    -    .    .', 'x/c  .    .    -    .', 'y/d  .    .    .    -'])}
${expect80('{method: POST, path: /public}', ['x/a  -    .    .    .', 'x/b  D    -    .    .', 'x/c  D    .    -    .', 'y/d  D    .    .    -'])}
${expect80('{method: GET, path: /admin}', ['x/a  -    .    .    .', 'x/b  D    -    .    .', 'x/c  D    .    -    .', 'y/d  D    .    .    -'])}
${expect80('{method: GET, path: /admin, headers: {x-token: s3cret}}', ['x/a  -    .    .    .', 'x/b  .    -    .    .', 'x/c  .    .    -    .', 'y/d  .    .    .    -'])}
  - name: union with an L3/L4-only policy (x/b may send anything)
    apply:
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: l4-from-b, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}], ports: [{port: 80}]}]
    probes:
      - {port: 80, protocol: TCP, http: {method: POST, path: /public}}
    expect:
${expect80('{method: POST, path: /public}', ['x/a  -    .    .    .', 'x/b  .    -    .    .', 'x/c  D    .    -    .', 'y/d  D    .    .    -'])}
  - name: egress http rule on the client x/c (GET only)
    apply:
      - apiVersion: palisade.dev/v1alpha1
        kind: PalisadeNetworkPolicy
        metadata: {name: c-get-only, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: c}}
          policyTypes: [Egress]
          egress: [{ports: [{port: 80, http: [{method: GET}]}]}]
    probes:
      - {port: 80, protocol: TCP, http: {method: GET, path: /anything}}
      - {port: 80, protocol: TCP, http: {method: DELETE, path: /anything}}
    expect:
${expect80('{method: GET, path: /anything}', ['x/a  -    .    .    .', 'x/b  .    -    .    .', 'x/c  D    .    -    .', 'y/d  D    .    .    -'])}
${expect80('{method: DELETE, path: /anything}', ['x/a  -    .    .    .', 'x/b  .    -    .    .', 'x/c  D    D    -    D', 'y/d  D    .    .    -'])}
  - name: union across lookups on y/d (ipBlock without http, any pod with http)
    apply:
      - apiVersion: palisade.dev/v1alpha1
        kind: PalisadeNetworkPolicy
        metadata: {name: d-l7, namespace: y}
        spec:
          podSelector: {matchLabels: {pod: d}}
          policyTypes: [Ingress]
          ingress:
            - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}, podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b, c]}]}}]
              ports: [{port: 80, http: [{method: GET, path: "/public(/.*)?"}]}]
            - from: [{namespaceSelector: {}}]
              ports: [{port: 80, http: [{method: POST}]}]
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: d-node0-pods, namespace: y}
        spec:
          podSelector: {matchLabels: {pod: d}}
          ingress: [{from: [{ipBlock: {cidr: 10.244.0.0/24}}], ports: [{port: 80}]}]
    probes:
      - {port: 80, protocol: TCP, http: {method: GET, path: /admin}}
      - {port: 80, protocol: TCP, http: {method: POST, path: /admin}}
    expect:
${expect80('{method: GET, path: /admin}', ['x/a  -    .    .    .', 'x/b  .    -    .    D', 'x/c  D    .    -    .', 'y/d  D    .    .    -'])}
${expect80('{method: POST, path: /admin}', ['x/a  -    .    .    .', 'x/b  .    -    .    .', 'x/c  D    D    -    D', 'y/d  D    .    .    -'])}
`;

function indent(s: string): string {
  return s.split('\n').map((l) => `          ${l}`).join('\n');
}

interface LabResult {
  pods: Record<string, { ip: string; node: string }>;
  steps: { name: string; mismatches: unknown[]; error?: string }[];
}

let result: LabResult | undefined;
let labOutput = '';

function podNetns(pod: string): string {
  return `pl-${name}_p-${pod.replace('/', '.')}`;
}

function runClient(from: string, to: string, args: string[]): Record<string, unknown> {
  const ip = result!.pods[to]!.ip;
  const r = spawnSync('ip', ['netns', 'exec', podNetns(from), 'python3', client, ip, '80', ...args],
    { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`client ${from} -> ${to} ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

describePrivileged('L7 HTTP policy in the lab', () => {
  beforeAll(() => {
    const file = join(tmp, 'l7.yaml');
    writeFileSync(file, scenario);
    const r = spawnSync(lab, ['run', file, '--json', '--keep', '--name', name], { encoding: 'utf8', timeout: 300_000 });
    labOutput = `exit ${r.status}\n${r.stdout}\n${r.stderr}`;
    try {
      result = JSON.parse(r.stdout) as LabResult;
    } catch {
      result = undefined;
    }
  }, 320_000);

  afterAll(() => {
    spawnSync(lab, ['down', name], { encoding: 'utf8', timeout: 120_000 });
    rmSync(tmp, { recursive: true, force: true });
  }, 130_000);

  it('plays the scenario: method, path, header rules, union with L3/L4, egress rule, union across lookups', () => {
    expect(result, labOutput).toBeDefined();
    for (const s of result!.steps) {
      expect(s.error, `${s.name}: ${labOutput}`).toBeUndefined();
      expect(s.mismatches, `${s.name}`).toEqual([]);
    }
    expect(result!.steps).toHaveLength(4);
  });

  it('kubectl get pnp lists the policies with their printer columns', () => {
    const r = spawnSync('kubectl', ['--kubeconfig', `/run/palisade-lab/${name}/kubeconfig`, 'get', 'pnp', '-n', 'x'],
      { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const [header, ...rows] = r.stdout.trim().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual(['NAME', 'POD-SELECTOR', 'POLICY-TYPES', 'AGE']);
    expect(rows.map((l) => l.split(/\s+/)[0]).sort()).toEqual(['c-get-only', 'l7']);
  });

  it('a host rule matches the Host header (same node, through the client egress rule too)', () => {
    expect(runClient('x/c', 'x/a', ['host'])).toEqual({ match: 200, other: 403 });
  });

  it('a policy update applies to the next request of an open keep-alive connection', async () => {
    const ip = result!.pods['x/a']!.ip;
    const child = spawn('ip', ['netns', 'exec', podNetns('y/d'), 'python3', client, ip, '80', 'keepalive', '20'],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const done = new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
    try {
      const deadline = Date.now() + 15_000;
      while (!out.includes('"ready"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(out, err).toContain('"ready"');
      const policy = join(tmp, 'admin.yaml');
      writeFileSync(policy, `apiVersion: palisade.dev/v1alpha1
kind: PalisadeNetworkPolicy
metadata: {name: admin, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress]
  ingress: [{ports: [{port: 80, http: [{path: /admin}]}]}]
`);
      const k = spawnSync('kubectl', ['--kubeconfig', `/run/palisade-lab/${name}/kubeconfig`, 'apply', '-f', policy],
        { encoding: 'utf8', timeout: 30_000 });
      expect(k.status, k.stderr).toBe(0);
      child.stdin.end('go\n');
      expect(await done, err).toBe(0);
    } finally {
      child.kill();
    }
    const r = JSON.parse(out.trim().split('\n').pop()!) as { first: number; firstBody: string; then: (number | string)[] };
    expect(r.first).toBe(403);
    expect(r.firstBody).toContain('Access denied');
    // Same connection throughout: it never closed, and ended with a 200.
    expect(r.then).not.toContain('closed');
    expect(r.then.at(-1)).toBe(200);
  }, 60_000);

  it('requests are flow records of the server node agent; redirected flows are flow events', () => {
    const node = result!.pods['x/a']!.node.replace('lab-node-', 'n');
    const flows = (q: string) => {
      const r = spawnSync('curl', ['-s', '--unix-socket', `/run/palisade-lab/${name}/${node}/agent.sock`, `http://agent/v1/flows?${q}`],
        { encoding: 'utf8', timeout: 10_000 });
      return (JSON.parse(r.stdout) as { items: Record<string, unknown>[] }).items;
    };
    const denied = flows('verdict=denied&limit=1000');
    expect(denied).toContainEqual(expect.objectContaining({
      verdict: 'denied', reason: 'http-denied', direction: 'ingress', policy: 'PalisadeNetworkPolicy:x/l7',
      dst: expect.objectContaining({ ip: result!.pods['x/a']!.ip, port: 80 }),
      http: expect.objectContaining({ method: 'GET', path: '/admin', status: 403 }),
    }));
    expect(flows('verdict=allowed&limit=1000')).toContainEqual(expect.objectContaining({
      http: expect.objectContaining({ method: 'GET', path: '/public', status: 200 }),
    }));
    expect(flows('verdict=redirected&limit=1000')).toContainEqual(expect.objectContaining({
      verdict: 'redirected', direction: 'ingress', dst: expect.objectContaining({ ip: result!.pods['x/a']!.ip, port: 80 }),
    }));
  });

  it('a large upload is streamed through (20 MiB)', () => {
    expect(runClient('y/d', 'x/a', ['upload', String(20 << 20)])).toEqual({ status: 200 });
  });

  it('a malformed request is answered 400 and the connection closed', () => {
    expect(runClient('y/d', 'x/a', ['malformed'])).toEqual({ status: 400, closed: true });
  });

  it('agent restart: open proxied connections are reset, new ones are redirected once it is ready', async () => {
    const ip = result!.pods['x/a']!.ip;
    const node = result!.pods['x/a']!.node.replace('lab-node-', 'n');
    const sock = `/run/palisade-lab/${name}/${node}/agent.sock`;
    // The agent of x/a's node, found by its own API socket in its command line.
    const agentPid = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).find((p) => {
      try {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv.some((a) => a.endsWith('palisade-agent.js')) && argv.includes(sock);
      } catch {
        return false;
      }
    });
    expect(agentPid, 'agent process').toBeDefined();
    const argv = readFileSync(`/proc/${agentPid}/cmdline`, 'utf8').split('\0').filter(Boolean);

    const child = spawn('ip', ['netns', 'exec', podNetns('y/d'), 'python3', client, ip, '80', 'hold'],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const done = new Promise<void>((resolve) => child.on('close', () => resolve()));
    try {
      const deadline = Date.now() + 15_000;
      while (!out.includes('"ready"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(out).toContain('"ready"');

      process.kill(agentPid!, 'SIGTERM');
      while (existsSync(`/proc/${agentPid}`)) await new Promise((r) => setTimeout(r, 50));
      child.stdin.end('go\n');
      await done;
      const held = JSON.parse(out.trim().split('\n').pop()!) as { first: number; after: number | string };
      expect(held.first).toBe(200);
      expect(held.after).toBe('closed');

      // Restarted with the same command line, in the node's namespace (the lab's down
      // removes it with everything else in that namespace).
      const restarted = Date.now();
      const log = openSync(join(`/run/palisade-lab/${name}/${node}`, 'agent.log'), 'a');
      spawn('ip', ['netns', 'exec', `pl-${name}_${node}`, ...argv], { detached: true, stdio: ['ignore', log, log] }).unref();
      let status: unknown;
      while (Date.now() - restarted < 30_000) {
        try {
          status = runClient('y/d', 'x/a', ['host']);
          if ((status as { other?: number }).other === 403) break;
        } catch (e) {
          status = (e as Error).message;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      // A denied and an allowed request on a new connection: the proxy judges again.
      expect(status).toEqual({ match: 200, other: 403 });
      console.log(`l7: proxied requests served again ${Date.now() - restarted} ms after the agent restart`);
    } finally {
      child.kill();
    }
  }, 90_000);

  it('examples/l7-http.yaml passes (exit 0)', () => {
    const r = spawnSync(lab, ['run', join(root, 'examples/l7-http.yaml'), '--name', `${name}e`],
      { encoding: 'utf8', timeout: 300_000 });
    spawnSync(lab, ['down', `${name}e`], { encoding: 'utf8' });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  }, 320_000);
});
