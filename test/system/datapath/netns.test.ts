/**
 * Real sockets through the programs: a private "node" network namespace with three pod
 * namespaces joined to it by veths (the node side of each carries from_pod/to_pod, as
 * the CNI sets them up), routes to the pods' /32s, and TCP/UDP echo servers in every
 * pod. Nothing is created outside these namespaces except the private bpffs mount.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LinuxDatapath } from '../../../pkg/datapath/linux/datapath.ts';
import { emptyState, type CidrEntry, type DatapathState, type EndpointEntry, type PolicyEntry } from '../../../pkg/datapath/types.ts';
import { lineReader, removeNetns, startInNetns, threePods, wirePods, type TestPod } from '../../helpers/netns.ts';
import { describePrivileged, uniquePrefix } from '../../helpers/privileged.ts';
import { bpffsDir, buildBpf, dropBpffs, repo, sh } from './env.ts';

const sockTool = new URL('./sock.ts', import.meta.url).pathname;
const GW = '10.99.0.1';
const ID_CIDR = 0x01000010;
const PORTS = '8080,8081,9000,9002,9003';

type Pod = TestPod;

describePrivileged('datapath on real sockets between network namespaces', () => {
  const prefix = uniquePrefix('nns');
  const node = `${prefix}n`;
  const pods = threePods(prefix, '10.99.0');
  const { a, b, c } = pods;
  const servers: ChildProcess[] = [];
  const sessions: ChildProcess[] = [];
  let root = '';
  let dp: LinuxDatapath;
  /** What is applied, so each test states the whole policy it needs. */
  let applied: DatapathState = emptyState();

  const ep = (p: Pod, ingressEnforced: boolean, egressEnforced: boolean): EndpointEntry =>
    ({ ifindex: p.ifindex, endpointId: p.id, identity: p.identity, ipv4: p.ip, ingressEnforced, egressEnforced });
  const rule = (p: Pod, direction: 'ingress' | 'egress', peer: number, protocol: number, port: number,
    endPort = port): PolicyEntry => ({ endpointId: p.id, direction, peer, protocol, port, endPort, ruleId: 7, proxyPort: 0 });

  /** Replaces the endpoints' flags, the policy and the cidrs with the given ones. */
  async function setState(endpoints: EndpointEntry[], policy: PolicyEntry[], cidrs: CidrEntry[] = []) {
    const { diffState } = await import('../../../pkg/datapath/diff.ts');
    const desired: DatapathState = { endpoints, ipcache: applied.ipcache, policy, cidrs };
    await dp.apply(diffState(desired, applied));
    applied = structuredClone(desired);
  }

  function probe(from: Pod | 'node', proto: 'tcp' | 'udp', to: Pod, port: number): boolean {
    const ns = from === 'node' ? node : from.ns;
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, sockTool, 'probe', proto, to.ip, String(port)],
      { encoding: 'utf8', timeout: 10_000 });
    return r.status === 0;
  }

  /** A long-lived TCP connection from `from` to `to`. */
  function openSession(from: Pod, to: Pod, port: number) {
    const p = spawn('ip', ['netns', 'exec', from.ns, process.execPath, sockTool, 'session', to.ip, String(port)],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    sessions.push(p);
    const next = lineReader(p);
    return {
      connected: () => next(3000),
      /** Sends a line; resolves with "echo LINE" or "timeout". */
      send: async (line: string) => { p.stdin!.write(`${line}\n`); return next(3000); },
      /** Waits for a later line (e.g. the echo of a retransmission). */
      next,
      close: () => p.kill(),
    };
  }

  beforeAll(async () => {
    buildBpf();
    root = bpffsDir(prefix);
    wirePods(node, GW, Object.values(pods));
    for (const p of Object.values(pods)) {
      servers.push(await startInNetns(p.ns, process.execPath, [sockTool, 'server', PORTS],
        { what: `server in ${p.ns}`, timeoutMs: 10_000, stderr: 'inherit' }));
    }
    dp = new LinuxDatapath({ bpffsRoot: root, netns: node });
    await dp.init();
    applied = {
      ...emptyState(),
      ipcache: [{ cidr: `${GW}/32`, identity: 1 }, ...Object.values(pods).map((p) => ({ cidr: `${p.ip}/32`, identity: p.identity }))],
    };
    await dp.apply({ upsert: { ...applied, endpoints: [ep(a, false, false), ep(b, false, false), ep(c, false, false)] }, delete: emptyState() });
    applied.endpoints = [ep(a, false, false), ep(b, false, false), ep(c, false, false)];
    for (const p of Object.values(pods)) await dp.attach(p.ifindex);
  });

  afterAll(async () => {
    for (const p of [...sessions, ...servers]) p.kill('SIGKILL');
    await dp?.close();
    removeNetns(node, Object.values(pods));
    if (root) dropBpffs(root);
  });

  test('no policy: TCP and UDP pass both ways', () => {
    expect([probe(a, 'tcp', b, 8080), probe(a, 'udp', b, 8080), probe(b, 'tcp', a, 8080)]).toEqual([true, true, true]);
  });

  test('ingress default deny on b: a cannot reach b, b still reaches a (replies pass)', async () => {
    await setState([ep(a, false, false), ep(b, true, false), ep(c, false, false)], []);
    expect([probe(a, 'tcp', b, 8080), probe(a, 'udp', b, 8080), probe(b, 'tcp', a, 8080), probe(b, 'udp', a, 8080)])
      .toEqual([false, false, true, true]);
  });

  test('both pods isolated both ways: only the allowed port and protocol connect, replies pass', async () => {
    await setState([ep(a, true, true), ep(b, true, true), ep(c, false, false)], [
      rule(a, 'egress', b.identity, 6, 8080), rule(b, 'ingress', a.identity, 6, 8080),
    ]);
    expect([probe(a, 'tcp', b, 8080), probe(a, 'tcp', b, 8081), probe(a, 'udp', b, 8080), probe(b, 'tcp', a, 8080)])
      .toEqual([true, false, false, false]);
    await setState(applied.endpoints, [...applied.policy,
      rule(a, 'egress', b.identity, 17, 8080), rule(b, 'ingress', a.identity, 17, 8080)]);
    expect(probe(a, 'udp', b, 8080)).toBe(true);
  });

  test('port range: endPort connects, endPort+1 does not', async () => {
    await setState([ep(a, false, true), ep(b, true, false), ep(c, false, false)], [
      rule(a, 'egress', b.identity, 6, 9000, 9003), rule(b, 'ingress', a.identity, 6, 9000, 9002),
    ]);
    expect([probe(a, 'tcp', b, 9000), probe(a, 'tcp', b, 9002), probe(a, 'tcp', b, 9003)]).toEqual([true, true, false]);
  });

  test('ipBlock with except: the excepted pod is denied, another pod in the block is allowed', async () => {
    await setState([ep(a, false, false), ep(b, true, false), ep(c, false, false)], [rule(b, 'ingress', ID_CIDR, 6, 8081)], [
      { endpointId: b.id, direction: 'ingress', cidr: '10.99.0.0/24', identity: ID_CIDR },
      { endpointId: b.id, direction: 'ingress', cidr: `${a.ip}/32`, identity: 2 },
    ]);
    expect([probe(c, 'tcp', b, 8081), probe(a, 'tcp', b, 8081), probe(c, 'tcp', b, 8080)]).toEqual([true, false, false]);
  });

  test('node to pod: allowed under ingress and egress default deny, TCP and UDP', async () => {
    await setState([ep(a, false, false), ep(b, true, true), ep(c, false, false)], []);
    expect([probe('node', 'tcp', b, 8080), probe('node', 'udp', b, 8080), probe(a, 'tcp', b, 8080)]).toEqual([true, true, false]);
  });

  test('NETPOL 25: removing the allow stops an open TCP connection; restoring it resumes the connection', async () => {
    const allowAB = [rule(b, 'ingress', a.identity, 6, 8080)];
    await setState([ep(a, false, false), ep(b, true, false), ep(c, false, false)], allowAB);
    const s = openSession(a, b, 8080);
    expect(await s.connected()).toBe('connected');
    expect(await s.send('one')).toBe('echo one');
    await setState(applied.endpoints, []);
    expect(await s.send('two')).toBe('timeout');
    await setState(applied.endpoints, allowAB);
    // TCP retransmits "two"; it now gets through on the same connection.
    expect(await s.next(8000)).toBe('echo two');
    expect(await s.send('three')).toBe('echo three');
    s.close();
  });

  test('restart and upgrade: close, new LinuxDatapath, init, attach; the established connection keeps flowing', async () => {
    await setState([ep(a, true, true), ep(b, true, true), ep(c, false, false)], [
      rule(a, 'egress', b.identity, 6, 8080), rule(b, 'ingress', a.identity, 6, 8080),
    ]);
    const s = openSession(a, b, 8080);
    expect(await s.connected()).toBe('connected');
    expect(await s.send('before')).toBe('echo before');
    const linksBefore = sh('ls', [`${root}/palisade/links`]).split('\n').filter(Boolean).sort();
    await dp.close();
    dp = new LinuxDatapath({ bpffsRoot: root, netns: node });
    await dp.init();
    expect((await dp.dump()).policy).toHaveLength(2);
    for (const p of Object.values(pods)) await dp.attach(p.ifindex);
    expect(await s.send('after')).toBe('echo after');
    expect(sh('ls', [`${root}/palisade/links`]).split('\n').filter(Boolean).sort()).toEqual(linksBefore);
    // One tcx link per hook per pod: re-attaching created no duplicates.
    const links = sh('bpftool', ['link', 'show']).split('\n').filter((l) => /^\d+: /.test(l));
    const progIds = new Set(sh('bpftool', ['prog', 'show', 'pinned', `${root}/palisade/progs/from_pod`]).match(/^(\d+):/)?.slice(1));
    const ours = links.filter((l) => [...progIds].some((id) => l.includes(`prog ${id} `) || l.endsWith(`prog ${id}`)));
    expect(ours).toHaveLength(3);

    // Upgrade: objects newer than the pinned programs are reloaded at init and every
    // pinned tcx link moves to the new program atomically; the connection keeps flowing.
    const objDir = mkdtempSync(join(tmpdir(), `${prefix}-obj-`));
    try {
      for (const o of ['from_pod.o', 'to_pod.o']) copyFileSync(join(repo, 'bpf', 'out', o), join(objDir, o));
      const progId = () => sh('bpftool', ['prog', 'show', 'pinned', `${root}/palisade/progs/to_pod`]).split(':')[0];
      const before = progId();
      await dp.close();
      dp = new LinuxDatapath({ bpffsRoot: root, netns: node, objDir });
      await dp.init();
      const after = progId();
      expect(after).not.toBe(before);
      expect(sh('bpftool', ['link', 'show']).includes(`prog ${after}`)).toBe(true);
      expect(await s.send('upgraded')).toBe('echo upgraded');
    } finally {
      rmSync(objDir, { recursive: true, force: true });
    }
    s.close();
  });

  test('clsact fallback enforces the same way, and detach removes the filter', async () => {
    await setState([ep(a, false, false), ep(b, false, false), ep(c, true, false)], []);
    await dp.detach(c.ifindex);
    expect(probe(a, 'tcp', c, 8080)).toBe(true); // nothing attached: nothing enforced
    const fb = new LinuxDatapath({ bpffsRoot: root, netns: node, forceClsact: true });
    try {
      expect(fb.attachMode()).toBeUndefined();
      await fb.attach(c.ifindex);
      await fb.attach(c.ifindex);
      expect(fb.attachMode()).toBe('clsact');
      expect(sh('ip', ['netns', 'exec', node, 'tc', 'filter', 'show', 'dev', c.hostIf, 'egress'])).toMatch(/to_pod/);
      expect(probe(a, 'tcp', c, 8080)).toBe(false);
      await fb.detach(c.ifindex);
      expect(sh('ip', ['netns', 'exec', node, 'tc', 'filter', 'show', 'dev', c.hostIf, 'egress'])).not.toMatch(/to_pod/);
      expect(probe(a, 'tcp', c, 8080)).toBe(true);
    } finally {
      await fb.close();
    }
  });

  test('a pod deleted without detach: init removes its stale links; detach still succeeds', async () => {
    await dp.attach(c.ifindex);
    expect(dp.attachMode()).toBe('tcx');
    const pins = () => sh('ls', [`${root}/palisade/links`]).split('\n').filter((n) => n.startsWith(`${c.ifindex}-`));
    expect(pins()).toHaveLength(2);
    sh('ip', ['-n', node, 'link', 'del', c.hostIf]);
    const again = new LinuxDatapath({ bpffsRoot: root, netns: node });
    try {
      await again.init();
      expect(pins()).toHaveLength(0);
      await expect(again.detach(c.ifindex)).resolves.toBeUndefined();
    } finally {
      await again.close();
    }
  });
});
