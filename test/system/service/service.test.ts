/**
 * ClusterIP translation on real sockets: a private "node" network namespace with three
 * pod namespaces joined to it by veths carrying from_pod/to_pod, Services written with
 * LinuxDatapath.applyServices, and servers that say who they are, on which port, and
 * which client address they saw. Nothing is created outside these namespaces except the
 * private bpffs mount.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LinuxDatapath } from '../../../pkg/datapath/linux/datapath.ts';
import { SVC_HAIRPIN_IPV4 } from '../../../pkg/datapath/service-codec.ts';
import {
  emptyState, PROTO_TCP, PROTO_UDP, type EndpointEntry, type PolicyEntry, type ServiceEntry,
} from '../../../pkg/datapath/types.ts';
import { diffState } from '../../../pkg/datapath/diff.ts';
import { lineReader, removeNetns, startInNetns, threePods, wirePods, type TestPod } from '../../helpers/netns.ts';
import { describePrivileged, uniquePrefix } from '../../helpers/privileged.ts';
import { bpffsDir, buildBpf, dropBpffs } from '../datapath/env.ts';

const sockTool = new URL('./svcsock.ts', import.meta.url).pathname;
const GW = '10.97.0.1';
const VIP = '10.96.0.10';
const VIP_NONE = '10.96.0.11';
const VIP_SELF = '10.96.0.12';
const VIP_AFF = '10.96.0.13';
const VIP_ONE = '10.96.0.14';
const VIP_ONE_UDP = '10.96.0.15';
const VIP_CLOSED = '10.96.0.16';

type Pod = TestPod;
interface ProbeResult { ok: boolean; banner?: string; remote?: string; error?: string; bytes?: number }

describePrivileged('ClusterIP Services on real sockets', () => {
  const prefix = uniquePrefix('svc');
  const node = `${prefix}n`;
  const pods = threePods(prefix, '10.97.0');
  const { a, b, c } = pods;
  const children: ChildProcess[] = [];
  let root = '';
  let dp: LinuxDatapath;
  let applied = emptyState();

  const ep = (p: Pod, ingressEnforced = false, egressEnforced = false): EndpointEntry =>
    ({ ifindex: p.ifindex, endpointId: p.id, identity: p.identity, ipv4: p.ip, ingressEnforced, egressEnforced });
  const allow = (p: Pod, direction: 'ingress' | 'egress', peer: number, protocol: number, port: number): PolicyEntry =>
    ({ endpointId: p.id, direction, peer, protocol, port, endPort: port, ruleId: 9, proxyPort: 0 });

  async function setPolicy(endpoints: EndpointEntry[], policy: PolicyEntry[]) {
    const desired = { ...applied, endpoints, policy };
    await dp.apply(diffState(desired, applied));
    applied = structuredClone(desired);
  }

  const svc = (name: string, ip: string, port: number, protocol: number, backends: [Pod, number][],
    affinityTimeoutSec = 0): ServiceEntry =>
    ({ name, ip, port, protocol, affinityTimeoutSec, backends: backends.map(([p, n]) => ({ ip: p.ip, port: n })) });

  /** The default set: VIP:80 -> b:8080, c:8081 (port != targetPort, and per backend). */
  const baseServices = (): ServiceEntry[] => [
    svc('x/web:tcp', VIP, 80, PROTO_TCP, [[b, 8080], [c, 8081]]),
    svc('x/web:udp', VIP, 80, PROTO_UDP, [[b, 8080], [c, 8081]]),
    svc('x/empty', VIP_NONE, 80, PROTO_TCP, []),
    svc('x/empty-udp', VIP_NONE, 53, PROTO_UDP, []),
    svc('x/self', VIP_SELF, 80, PROTO_TCP, [[a, 8080]]),
    svc('x/sticky', VIP_AFF, 80, PROTO_TCP, [[b, 8080], [c, 8081]], 60),
    svc('x/one', VIP_ONE, 80, PROTO_TCP, [[b, 8080]]),
    svc('x/one-udp', VIP_ONE_UDP, 53, PROTO_UDP, [[b, 8080]]),
    svc('x/closed', VIP_CLOSED, 80, PROTO_TCP, [[b, 9999]]),
    svc('x/closed-udp', VIP_CLOSED, 53, PROTO_UDP, [[b, 9999]]),
  ];

  function probe(from: Pod, proto: 'tcp' | 'udp', host: string, port: number, localPort?: number, size?: number): ProbeResult {
    const r = spawnSync('ip', ['netns', 'exec', from.ns, process.execPath, sockTool, 'probe', proto, host, String(port),
      String(localPort ?? 0), String(size ?? 4)],
      { encoding: 'utf8', timeout: 10_000 });
    return JSON.parse(r.stdout.trim() || '{"ok":false,"error":"no output"}') as ProbeResult;
  }

  function openSession(from: Pod, host: string, port: number) {
    const p = spawn('ip', ['netns', 'exec', from.ns, process.execPath, sockTool, 'session', host, String(port)],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(p);
    const next = lineReader(p);
    return {
      first: async () => JSON.parse(await next(3000)) as { banner: string; remote: string },
      send: async (line: string) => { p.stdin!.write(`${line}\n`); return next(3000); },
      close: () => p.kill(),
    };
  }

  beforeAll(async () => {
    buildBpf();
    root = bpffsDir(prefix);
    wirePods(node, GW, Object.values(pods));
    for (const p of Object.values(pods)) {
      children.push(await startInNetns(p.ns, process.execPath, [sockTool, 'server', p.name, '8080,8081'],
        { what: `server in ${p.ns}`, timeoutMs: 10_000, stderr: 'inherit' }));
    }
    dp = new LinuxDatapath({ bpffsRoot: root, netns: node, reload: true });
    await dp.init();
    const desired = {
      ...emptyState(),
      endpoints: [ep(a), ep(b), ep(c)],
      ipcache: [{ cidr: `${GW}/32`, identity: 1 }, ...Object.values(pods).map((p) => ({ cidr: `${p.ip}/32`, identity: p.identity }))],
    };
    await dp.apply({ upsert: desired, delete: emptyState() });
    applied = structuredClone(desired);
    for (const p of Object.values(pods)) await dp.attach(p.ifindex);
    await dp.applyServices(baseServices());
  });

  afterAll(async () => {
    for (const p of children) p.kill('SIGKILL');
    await dp?.close();
    removeNetns(node, Object.values(pods));
    if (root) dropBpffs(root);
  });

  test('TCP and UDP through the ClusterIP: the client sees the ClusterIP, the backend sees the client', () => {
    for (const proto of ['tcp', 'udp'] as const) {
      const r = probe(a, proto, VIP, 80);
      expect(r.ok, `${proto}: ${r.error}`).toBe(true);
      expect(r.remote).toBe(`${VIP}:80`);
      // Port != targetPort, and a different targetPort per backend.
      expect(['b 8080', 'c 8081']).toContain(r.banner!.split(' ').slice(0, 2).join(' '));
      expect(r.banner!.split(' ')[2]).toBe(a.ip);
    }
  });

  test('new flows spread over both backends; the pod IPs still work directly', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 16 && seen.size < 2; i++) seen.add(probe(a, 'tcp', VIP, 80).banner?.split(' ')[0] ?? 'failed');
    expect([...seen].sort()).toEqual(['b', 'c']);
    expect(probe(a, 'tcp', b.ip, 8080).banner).toBe(`b 8080 ${a.ip}`);
  });

  test('egress policy judges the backend: allowing only b:8080 lets VIP flows reach b and never c', async () => {
    await setPolicy([ep(a, false, true), ep(b), ep(c)], [allow(a, 'egress', b.identity, PROTO_TCP, 8080)]);
    try {
      const results = Array.from({ length: 12 }, () => probe(a, 'tcp', VIP, 80));
      expect(results.some((r) => r.ok && r.banner!.startsWith('b 8080'))).toBe(true);
      expect(results.some((r) => r.ok && r.banner!.startsWith('c'))).toBe(false);
      expect(results.some((r) => !r.ok)).toBe(true); // flows hashed to c are dropped
      // An allow on the Service port (80) instead of the targetPort opens nothing.
      await setPolicy([ep(a, false, true), ep(b), ep(c)], [allow(a, 'egress', b.identity, PROTO_TCP, 80)]);
      expect(probe(a, 'tcp', VIP_ONE, 80).ok).toBe(false);
    } finally {
      await setPolicy([ep(a), ep(b), ep(c)], []);
    }
  });

  test('ingress policy at the backend sees the real client: b admits a, not c', async () => {
    await setPolicy([ep(a), ep(b, true, false), ep(c)], [allow(b, 'ingress', a.identity, PROTO_TCP, 8080)]);
    try {
      expect(probe(a, 'tcp', VIP_ONE, 80).ok).toBe(true);
      expect(probe(c, 'tcp', VIP_ONE, 80).ok).toBe(false);
    } finally {
      await setPolicy([ep(a), ep(b), ep(c)], []);
    }
  });

  test('no ready backend: TCP connect and UDP are refused at once (ICMP port unreachable)', async () => {
    const before = await dp.serviceCounters();
    expect(probe(a, 'tcp', VIP_NONE, 80)).toEqual({ ok: false, error: 'ECONNREFUSED' });
    expect(probe(a, 'udp', VIP_NONE, 53)).toEqual({ ok: false, error: 'ECONNREFUSED' });
    const after = await dp.serviceCounters();
    expect(after.noBackend - before.noBackend).toBeGreaterThanOrEqual(2);
  });

  test('a backend that does not listen: its RST (TCP) and its ICMP port unreachable (UDP) reach the client as from the ClusterIP', () => {
    expect(probe(a, 'tcp', VIP_CLOSED, 80)).toEqual({ ok: false, error: 'ECONNREFUSED' });
    expect(probe(a, 'udp', VIP_CLOSED, 53)).toEqual({ ok: false, error: 'ECONNREFUSED' });
  });

  test('fragmented UDP both ways: every fragment of a datagram follows its first one', async () => {
    // 4000 bytes over a 1500-byte MTU: three fragments to the ClusterIP, three back.
    const before = await dp.serviceCounters();
    const r = probe(a, 'udp', VIP_ONE_UDP, 53, undefined, 4000);
    const after = await dp.serviceCounters();
    expect(after.translated - before.translated).toBeGreaterThanOrEqual(3);
    expect(after.reversed - before.reversed).toBeGreaterThanOrEqual(3);
    expect(r.ok, r.error).toBe(true);
    expect(r.remote).toBe(`${VIP_ONE_UDP}:53`);
    expect(r.banner).toBe(`b 8080 ${a.ip}`);
    expect(r.bytes).toBe(4000);
  });

  test('hairpin: a pod reaches itself through its own Service', async () => {
    const before = await dp.serviceCounters();
    const r = probe(a, 'tcp', VIP_SELF, 80);
    expect(r.ok, r.error).toBe(true);
    expect(r.remote).toBe(`${VIP_SELF}:80`);
    expect(r.banner).toBe(`a 8080 ${SVC_HAIRPIN_IPV4}`);
    const after = await dp.serviceCounters();
    expect(after.hairpin - before.hairpin).toBeGreaterThanOrEqual(2);
    // Egress policy applies to the hairpin flow (judged on the pod itself and its port).
    await setPolicy([ep(a, false, true), ep(b), ep(c)], []);
    try {
      expect(probe(a, 'tcp', VIP_SELF, 80).ok).toBe(false);
    } finally {
      await setPolicy([ep(a), ep(b), ep(c)], []);
    }
  });

  test('sessionAffinity ClientIP: every new connection of a client lands on the same backend', () => {
    const seen = new Set(Array.from({ length: 8 }, () => probe(a, 'tcp', VIP_AFF, 80).banner?.split(' ')[0]));
    expect(seen.size).toBe(1);
    expect(['b', 'c']).toContain([...seen][0]);
  });

  test('a backend removed while a connection is open: the connection stays on it, new ones move', async () => {
    const s = openSession(a, VIP_ONE, 80);
    try {
      const first = await s.first();
      expect(first.banner).toBe(`b 8080 ${a.ip}`);
      expect(first.remote).toBe(`${VIP_ONE}:80`);
      expect(await s.send('one')).toBe('echo one');
      await dp.applyServices(baseServices().map((e) => e.name === 'x/one'
        ? svc('x/one', VIP_ONE, 80, PROTO_TCP, [[c, 8081]]) : e));
      expect(await s.send('two')).toBe('echo two');
      expect(probe(a, 'tcp', VIP_ONE, 80).banner).toBe(`c 8081 ${a.ip}`);
    } finally {
      s.close();
      await dp.applyServices(baseServices());
    }
  });

  test('a direct flow reusing the source port of a translated one gets its replies untouched', () => {
    const via = probe(a, 'udp', VIP_ONE_UDP, 53, 40555);
    expect(via.ok, via.error).toBe(true);
    expect(via.remote).toBe(`${VIP_ONE_UDP}:53`);
    const direct = probe(a, 'udp', b.ip, 8080, 40555);
    expect(direct.ok, direct.error).toBe(true);
    expect(direct.remote).toBe(`${b.ip}:8080`);
    // And the other way round: the Service again from that port.
    expect(probe(a, 'udp', VIP_ONE_UDP, 53, 40555).remote).toBe(`${VIP_ONE_UDP}:53`);
  });

  test('the translation table and counters show what happened', async () => {
    const nat = await dp.serviceNat();
    expect(nat.some((n) => !n.reverse && n.daddr === VIP && n.saddr === a.ip)).toBe(true);
    expect(nat.some((n) => n.reverse && n.addr === VIP && n.dport > 0)).toBe(true);
    const cnt = await dp.serviceCounters();
    expect(cnt.translated).toBeGreaterThan(0);
    expect(cnt.newFlows).toBeGreaterThan(0);
    expect(cnt.reversed).toBeGreaterThan(0);
    expect(cnt.errors).toBe(0);
    expect((await dp.dumpServices()).map((e) => `${e.ip}:${e.port}/${e.protocol}`).sort())
      .toEqual(baseServices().map((e) => `${e.ip}:${e.port}/${e.protocol}`).sort());
  });

  test('agent restart: a new LinuxDatapath re-reads the frontends, the open connection keeps its translation', async () => {
    const s = openSession(a, VIP_ONE, 80);
    try {
      expect((await s.first()).banner).toBe(`b 8080 ${a.ip}`);
      await dp.close();
      dp = new LinuxDatapath({ bpffsRoot: root, netns: node });
      await dp.init();
      expect(await s.send('after restart')).toBe('echo after restart');
      const keys = (l: ServiceEntry[]) => l.map((e) => `${e.ip}:${e.port}/${e.protocol}>${e.backends.map((x) => `${x.ip}:${x.port}`).join(',')}`).sort();
      expect(keys(await dp.dumpServices())).toEqual(keys(baseServices()));
      await dp.applyServices(baseServices()); // same set: nothing to change
      expect(await s.send('after apply')).toBe('echo after apply');
      expect(probe(a, 'tcp', VIP, 80).ok).toBe(true);
    } finally {
      s.close();
    }
  });

  test('bad input changes nothing', async () => {
    await expect(dp.applyServices([svc('bad', '10.96.0.99', 0, PROTO_TCP, [])])).rejects.toThrow(/port 0/);
    expect(probe(a, 'tcp', VIP_ONE, 80).ok).toBe(true);
  });
});

