/**
 * `kubectl palisade` end to end without root: the lab API server in-process, two fake
 * agents (unix-socket HTTP servers answering /v1/status and /v1/flows as docs/agent-api.md
 * says) reached through pods/proxy, and the CLI's `main` with captured output.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../../pkg/apiserver/index.ts';
import { main } from '../../../pkg/inspect/cli.ts';
import { AGENT_POD_LABELS } from '../../../pkg/inspect/agents.ts';
import type { FlowRecord } from '../../../pkg/flow/types.ts';

const root = new URL('../../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'pal-inspect-'));
const kubeconfig = join(dir, 'kubeconfig');
const NOW = 1_764_280_000_000;

function flow(node: string, t: number, verdict: FlowRecord['verdict'], src: string, dst: string, policy?: string): FlowRecord {
  const [sns, spod] = src.split('/');
  const [dns, dpod] = dst.split('/');
  return {
    time: NOW - t, node, verdict, direction: 'ingress', protocol: 'TCP', ruleId: 0,
    ...(verdict === 'dropped' ? { reason: 'policy-denied' as const } : {}),
    src: { ip: '10.244.1.10', port: 40000, namespace: sns, pod: spod },
    dst: { ip: '10.244.0.10', port: 80, namespace: dns, pod: dpod },
    ...(policy ? { policy } : {}),
  };
}

const flows: Record<string, FlowRecord[]> = {
  n0: [flow('n0', 3000, 'dropped', 'y/a', 'x/a', 'default-deny'), flow('n0', 1000, 'allowed', 'x/b', 'x/a', 'NetworkPolicy:x/allow-b')],
  n1: [flow('n1', 2000, 'dropped', 'x/a', 'x/b', 'default-deny')],
};
const queries: string[] = [];
const followers = new Set<ServerResponse>();

function fakeAgent(node: string): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    queries.push(`${node} ${url.pathname}${url.search}`);
    if (url.pathname === '/v1/status') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ node, ready: true, version: '0.1.0', revision: 7, endpoints: 2, mapPressure: 1, drops: { lastMinute: node === 'n0' ? 1 : 3, total: 9 } }));
      return;
    }
    if (url.pathname === '/v1/flows') {
      const v = url.searchParams.get('verdict');
      const items = flows[node]!.filter((f) => !v || f.verdict === v);
      if (url.searchParams.get('follow') === '1') {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        for (const f of items) res.write(`${JSON.stringify(f)}\n`);
        res.write('\n');
        followers.add(res);
        res.on('close', () => followers.delete(res));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ items }));
      return;
    }
    res.writeHead(404).end();
  });
}

async function run(args: string[], signal = new AbortController().signal) {
  let out = '';
  let err = '';
  const code = await main(['--kubeconfig', kubeconfig, ...args], {
    out: (t) => { out += t; }, err: (t) => { err += t; }, signal, now: () => NOW,
  });
  return { code, out, err };
}

describe('kubectl palisade (in-process API server, fake agents)', () => {
  let api: ApiServer;
  const agents: Server[] = [];

  beforeAll(async () => {
    const sockets = new Map<string, string>();
    for (const node of ['n0', 'n1']) {
      const sock = join(dir, `${node}.sock`);
      const s = fakeAgent(node);
      await new Promise<void>((r) => s.listen(sock, r));
      agents.push(s);
      sockets.set(`${node}:9876`, sock);
    }
    api = await startApiServer({
      crdFiles: ['palisadeendpoints', 'palisadenodes', 'palisadenetworkpolicies'].map((n) => join(root, `charts/palisade/crds/${n}.palisade.dev.yaml`)),
      dial: async (t) => {
        const sock = sockets.get(`${t.node}:${t.port}`);
        if (!sock) throw new Error('connect ECONNREFUSED');
        return connect(sock);
      },
    });
    await api.writeKubeconfig(kubeconfig);
    for (const [i, node] of ['n0', 'n1', 'n2'].entries()) {
      api.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: node }, status: { addresses: [{ type: 'InternalIP', address: `10.89.0.${10 + i}` }] } });
      if (node === 'n2') continue;
      const p = api.create({
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name: `palisade-agent-${node}`, namespace: 'kube-system', labels: { ...AGENT_POD_LABELS } },
        spec: { nodeName: node, hostNetwork: true, containers: [{ name: 'agent', image: 'x', ports: [{ name: 'health', containerPort: 9876 }] }] },
      });
      api.update({ ...p, status: { phase: 'Running', podIP: `10.89.0.${10 + i}`, conditions: [{ type: 'Ready', status: 'True' }] } }, 'status');
    }
    for (const ns of ['x', 'y']) api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const pod = (ns: string, name: string, node: string, ip: string) => {
      const p = api.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels: { pod: name } }, spec: { nodeName: node, containers: [{ name: 'c', image: 'x', ports: [{ containerPort: 80 }] }] } });
      api.update({ ...p, status: { phase: 'Running', podIP: ip } }, 'status');
    };
    pod('x', 'a', 'n0', '10.244.0.10');
    pod('x', 'b', 'n1', '10.244.1.10');
    pod('y', 'a', 'n1', '10.244.1.11');
    api.create({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'default-deny', namespace: 'x' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } });
    const pep = api.create({ apiVersion: 'palisade.dev/v1alpha1', kind: 'PalisadeEndpoint', metadata: { name: 'a', namespace: 'x' } });
    api.update({ ...pep, status: { node: 'n0', ipv4: '10.244.0.10', identity: 300, ingressEnforcement: 'enabled', egressEnforcement: 'disabled', policies: ['NetworkPolicy:x/default-deny'], policyCount: 1, realizedRevision: 7, state: 'ready' } }, 'status');
  });

  afterAll(async () => {
    await api.close();
    for (const s of agents) await new Promise<void>((r) => s.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('--help prints usage and exits 0; a usage error exits 1 naming the problem', async () => {
    const h = await run(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toContain('kubectl palisade trace NS/SRC NS/DST --port P');
    const bad = await run(['trace', 'x/a', 'x/b']);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('trace needs --port');
  });

  it('status: one row per node, agents through pods/proxy, a node without an agent says so (exit 0)', async () => {
    const r = await run(['status']);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toMatch(/^NODE\s+AGENT\s+HEALTH\s+VERSION\s+REVISION\s+ENDPOINTS\s+DROPS\/1M\s+MAP-PRESSURE\s+MESSAGE$/);
    expect(lines[1]).toMatch(/^n0\s+palisade-agent-n0\s+ready\s+0\.1\.0\s+7\s+2\s+1\s+1%\s+<none>$/);
    expect(lines[2]).toMatch(/^n1\s+palisade-agent-n1\s+ready\s+0\.1\.0\s+7\s+2\s+3\s+1%/);
    expect(lines[3]).toMatch(/^n2\s+<none>\s+no agent\s+.*no agent pod on this node$/);
    const j = await run(['status', '-o', 'json']);
    expect(JSON.parse(j.out).nodes[0]).toMatchObject({ node: 'n0', agent: 'kube-system/palisade-agent-n0', status: { drops: { lastMinute: 1 } } });
  });

  it('status in a namespace without agents: every node says so, with a hint', async () => {
    const r = await run(['status', '--agent-namespace', 'default']);
    expect(r.code).toBe(0);
    expect(r.out.trim().split('\n').slice(1).every((l) => /no agent/.test(l))).toBe(true);
    expect(r.err).toContain('no agent pods (app.kubernetes.io/name=palisade,app.kubernetes.io/component=agent) in namespace default');
    const o = await run(['observe', '--agent-namespace', 'default']);
    expect(o.code).toBe(2);
  });

  it('observe: flows of every agent merged by time, filters passed to the agents', async () => {
    queries.length = 0;
    const r = await run(['observe', '--verdict', 'dropped', '-o', 'json']);
    expect(r.code, r.err).toBe(0);
    const got = JSON.parse(r.out) as FlowRecord[];
    expect(got.map((f) => [f.node, f.src.pod, f.dst.pod, f.policy])).toEqual([
      ['n0', 'a', 'a', 'default-deny'], ['n1', 'a', 'b', 'default-deny'],
    ]);
    expect(queries.sort()).toEqual(['n0 /v1/flows?verdict=dropped&limit=100', 'n1 /v1/flows?verdict=dropped&limit=100']);
    const t = await run(['observe', '--pod', 'x/a', '--since', '5m']);
    expect(t.out.split('\n')[0]).toMatch(/^TIME\s+NODE\s+VERDICT\s+DIRECTION\s+SOURCE\s+DESTINATION\s+PROTOCOL\s+REASON\s+POLICY$/);
    expect(t.out).toMatch(/dropped\s+ingress\s+y\/a\s+x\/a:80\s+TCP\s+policy-denied\s+default-deny/);
    expect(queries).toContain(`n0 /v1/flows?pod=x%2Fa&since=${NOW - 300_000}&limit=100`);
  });

  it('observe --follow: the backlog in time order, then records as they come; ends on the signal', async () => {
    const ac = new AbortController();
    let out = '';
    const done = main(['--kubeconfig', kubeconfig, 'observe', '--follow', '-o', 'json'], {
      out: (t) => { out += t; }, err: () => {}, signal: ac.signal, now: () => NOW,
    });
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
    };
    await until(() => followers.size === 2 && out.split('\n').length > 3);
    const live = flow('n1', -10, 'dropped', 'y/a', 'x/b', 'default-deny');
    for (const f of followers) f.write(`${JSON.stringify(live)}\n`);
    await until(() => out.split('\n').filter(Boolean).length >= 5);
    ac.abort();
    expect(await done).toBe(0);
    const recs = out.trim().split('\n').map((l) => JSON.parse(l) as FlowRecord);
    expect(recs.slice(0, 3).map((f) => f.time)).toEqual([NOW - 3000, NOW - 2000, NOW - 1000]);
    expect(recs.slice(3).map((f) => f.time)).toEqual([NOW + 10, NOW + 10]);
  });

  it('observe --follow reconnects when a stream ends, without repeating what it printed', async () => {
    const ac = new AbortController();
    let out = '';
    let err = '';
    const done = main(['--kubeconfig', kubeconfig, 'observe', '--follow', '-o', 'json'], {
      out: (t) => { out += t; }, err: (t) => { err += t; }, signal: ac.signal, now: () => NOW,
    });
    const lines = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as FlowRecord);
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 120 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
    };
    await until(() => followers.size === 2 && lines().length === 3);
    queries.length = 0;
    // An agent restarts: its stream ends; the CLI comes back asking for newer records.
    [...followers][0]!.end();
    await until(() => followers.size === 2 && queries.some((q) => q.includes('follow=1')));
    const fresh = flow('n0', -20, 'dropped', 'y/a', 'x/a', 'default-deny');
    for (const f of followers) f.write(`${JSON.stringify(fresh)}\n`);
    await until(() => lines().length >= 5);
    ac.abort();
    expect(await done).toBe(0);
    expect(err).toMatch(/agent on n[01]: the stream ended; reconnecting/);
    const since = /since=(\d+)/.exec(queries.find((q) => q.includes('follow=1')) ?? '');
    expect(Number(since?.[1])).toBeGreaterThanOrEqual(NOW - 3000);
    // The backlog the agent resent on reconnect was not printed twice.
    expect(lines().map((f) => f.time)).toEqual([NOW - 3000, NOW - 2000, NOW - 1000, NOW + 20, NOW + 20]);
  });

  it('endpoints: PalisadeEndpoint objects of a namespace', async () => {
    const r = await run(['endpoints', '-n', 'x']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^POD\s+NODE\s+IP\s+IDENTITY\s+INGRESS\s+EGRESS\s+POLICIES\s+REVISION\s+STATE\n/);
    expect(r.out).toMatch(/a\s+n0\s+10\.244\.0\.10\s+300\s+enabled\s+disabled\s+NetworkPolicy:x\/default-deny\s+7\s+ready/);
    const none = await run(['endpoints', '-n', 'y']);
    expect(none.err).toContain('No endpoints found in y namespace.');
    const all = await run(['endpoints', '-A']);
    expect(all.out.split('\n')[0]).toMatch(/^NAMESPACE\s+POD/);
  });

  it('trace and policy read the cluster through the API and compile it', async () => {
    const r = await run(['trace', 'y/a', 'x/a', '--port', '80']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^DENIED: y\/a \(10\.244\.1\.11\) -> x\/a \(10\.244\.0\.10\) TCP\/80\ndecided by: default-deny\n/);
    const j = await run(['trace', 'y/a', 'x/a', '--port', '80', '-o', 'json']);
    expect(JSON.parse(j.out).decidedBy).toMatchObject({ direction: 'ingress', policy: 'default-deny', isolatedBy: ['NetworkPolicy:x/default-deny'] });
    const p = await run(['policy', 'x/a']);
    expect(p.out).toContain('Ingress: isolated by NetworkPolicy:x/default-deny; allowed only: nothing (default deny)');
    expect(p.out).toContain('Egress: not isolated');
  });

  it('exit 1 for an unknown pod or context, 2 when the API server cannot be reached', async () => {
    const nf = await run(['policy', 'x/nope']);
    expect(nf.code).toBe(1);
    expect(nf.err).toBe('kubectl palisade: pod x/nope not found\n');
    const ctx = await run(['--context', 'elsewhere', 'status']);
    expect(ctx.code).toBe(1);
    expect(ctx.err).toContain('context "elsewhere" not found');
    const dead = join(dir, 'dead-kubeconfig');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(dead, (await import('node:fs')).readFileSync(kubeconfig, 'utf8').replace(/server: .*/, 'server: http://127.0.0.1:1'));
    let err = '';
    const code = await main(['--kubeconfig', dead, 'status'], { out: () => {}, err: (t) => { err += t; }, signal: new AbortController().signal, now: Date.now });
    expect(code).toBe(2);
    expect(err).toMatch(/ECONNREFUSED/);
  });

  it('an agent that cannot be reached: the rest is printed, the failure on stderr, exit 2', async () => {
    const p = api.get('v1', 'Pod', 'kube-system', 'palisade-agent-n1');
    api.update({ ...p, spec: { ...(p.spec as object), containers: [{ name: 'agent', image: 'x', ports: [{ name: 'health', containerPort: 9999 }] }] } });
    try {
      const r = await run(['observe']);
      expect(r.code).toBe(2);
      expect(r.out).toMatch(/n0\s+allowed/);
      expect(r.err).toMatch(/agent on n1: .*HTTP 503: error trying to reach service/);
    } finally {
      const cur = api.get('v1', 'Pod', 'kube-system', 'palisade-agent-n1');
      api.update({ ...cur, spec: { ...(cur.spec as object), containers: [{ name: 'agent', image: 'x', ports: [{ name: 'health', containerPort: 9876 }] }] } });
    }
  });
});
