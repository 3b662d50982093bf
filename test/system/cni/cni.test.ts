// The CNI plugin end to end: the real shim talking to a real agent process that sets up
// real veths and namespaces (root only). Each suite has its own node namespace, agent,
// state dir, socket and bpffs mount, all removed afterwards.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../../helpers/privileged.ts';
import { Node, testDatapath } from './harness.ts';

function expectSpecError(r: { code: number; json: Record<string, unknown> | undefined; stdout: string }, code: number): void {
  expect(r.code, r.stdout).not.toBe(0);
  expect(r.json, `stdout: ${r.stdout}`).toBeDefined();
  expect(r.json!.code).toBe(code);
  expect(typeof r.json!.msg).toBe('string');
  expect(typeof r.json!.cniVersion).toBe('string');
}

describePrivileged('CNI ADD/CHECK/DEL against a real agent', () => {
  let node: Node;
  let p1: string;
  let p2: string;
  let ip1: string;
  let ip2: string;
  let add1: Record<string, unknown>;

  beforeAll(async () => {
    node = new Node('cni', '10.123.0.0/24');
    await node.init();
    await node.startAgent();
    p1 = await node.addPod('p1');
    p2 = await node.addPod('p2');
  });
  afterAll(async () => {
    await node?.destroy();
  });

  it('ADD returns a spec result describing what it set up', async () => {
    const r = await node.cni('ADD', { containerId: 'ctr1', netns: p1 });
    expect(r.code, `${r.stdout}\n${r.stderr}\n${node.agentLog}`).toBe(0);
    add1 = r.json!;
    expect(add1.cniVersion).toBe('1.1.0');
    const ifs = add1.interfaces as { name: string; mac: string; sandbox?: string; mtu?: number }[];
    expect(ifs).toHaveLength(2);
    expect(ifs[0]!.name).toMatch(/^pal[0-9a-f]{11}$/);
    expect(ifs[0]!.sandbox).toBeUndefined();
    expect(ifs[1]).toMatchObject({ name: 'eth0', sandbox: p1 });
    for (const i of ifs) expect(i.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    const ips = add1.ips as { address: string; gateway: string; interface: number; version?: string }[];
    expect(ips).toHaveLength(1);
    expect(ips[0]!.address).toMatch(/^10\.123\.0\.\d+\/32$/);
    expect(ips[0]!.gateway).toBe('169.254.1.1');
    expect(ips[0]!.interface).toBe(1);
    expect(ips[0]!.version).toBeUndefined();
    expect(add1.routes).toEqual([{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
    ip1 = ips[0]!.address.split('/')[0]!;
    // What the result says is what the kernel has.
    const addr = await node.inPod(p1, 'ip', ['-j', 'addr', 'show', 'dev', 'eth0']);
    expect(addr.stdout).toContain(`"local":"${ip1}","prefixlen":32`);
    const link = await node.inPod(p1, 'ip', ['-j', 'link', 'show', 'dev', 'eth0']);
    expect(JSON.parse(link.stdout)[0].address).toBe(ifs[1]!.mac);
    expect(await node.hostLinks()).toContain(ifs[0]!.name);
    // Strict reverse-path filtering on the host veth (anti-spoofing).
    const rp = await node.inNode('cat', [`/proc/sys/net/ipv4/conf/${ifs[0]!.name}/rp_filter`]);
    expect(rp.stdout.trim()).toBe('1');
  });

  it('a 0.4.0 config gets a 0.4.0-shaped result', async () => {
    const r = await node.cni('ADD', { containerId: 'ctr2', netns: p2, config: node.netConfig({ cniVersion: '0.4.0' }) });
    expect(r.code, r.stdout).toBe(0);
    expect(r.json!.cniVersion).toBe('0.4.0');
    const ips = r.json!.ips as { address: string; version: string }[];
    expect(ips[0]!.version).toBe('4');
    ip2 = ips[0]!.address.split('/')[0]!;
    expect(ip2).not.toBe(ip1);
  });

  it('pod to pod on the node works', async () => {
    const r = await node.inPod(p1, 'ping', ['-c', '2', '-W', '2', ip2]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('node to pod and pod to node work', async () => {
    const a = await node.inNode('ping', ['-c', '2', '-W', '2', ip1]);
    expect(a.code, a.stdout + a.stderr).toBe(0);
    const b = await node.inPod(p2, 'ping', ['-c', '2', '-W', '2', node.nodeIp]);
    expect(b.code, b.stdout + b.stderr).toBe(0);
  });

  it('the agent lists the endpoints', async () => {
    const r = await node.get('/v1/endpoints');
    expect(r.status).toBe(200);
    const eps = r.body as { containerId: string; ipv4: string; pod: string }[];
    expect(eps.map((e) => e.ipv4).sort()).toEqual([ip1, ip2].sort());
    expect(eps.find((e) => e.containerId === 'ctr1')?.pod).toBe('default/ctr1');
  });

  it('ADD again for the same container returns the same result', async () => {
    const r = await node.cni('ADD', { containerId: 'ctr1', netns: p1 });
    expect(r.code).toBe(0);
    expect(r.json).toEqual(add1);
  });

  it('CHECK passes, then reports a removed address and a removed route', async () => {
    const ok = await node.cni('CHECK', { containerId: 'ctr1', netns: p1, config: node.netConfig({ prevResult: add1 }) });
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.stdout).toBe('');
    await node.must('nsenter', [`--net=${p1}`, 'ip', 'route', 'del', 'default']);
    const noRoute = await node.cni('CHECK', { containerId: 'ctr1', netns: p1, config: node.netConfig({ prevResult: add1 }) });
    expectSpecError(noRoute, 104);
    expect(String(noRoute.json!.details)).toMatch(/default route via 169.254.1.1 is missing/);
    await node.must('nsenter', [`--net=${p1}`, 'ip', 'addr', 'del', `${ip1}/32`, 'dev', 'eth0']);
    const noAddr = await node.cni('CHECK', { containerId: 'ctr1', netns: p1, config: node.netConfig({ prevResult: add1 }) });
    expectSpecError(noAddr, 104);
    expect(String(noAddr.json!.details)).toMatch(new RegExp(`address ${ip1.replace(/\./g, '\\.')}/32 is missing`));
    await node.must('ip', ['-n', node.nodeNs, 'route', 'del', `${ip1}/32`]);
    const noHostRoute = await node.cni('CHECK', { containerId: 'ctr1', netns: p1, config: node.netConfig({ prevResult: add1 }) });
    expectSpecError(noHostRoute, 104);
    expect(String(noHostRoute.json!.details)).toMatch(/host route .* is missing/);
  });

  it('CHECK without prevResult is code 7, CHECK of an unknown container is code 3', async () => {
    expectSpecError(await node.cni('CHECK', { containerId: 'ctr1', netns: p1 }), 7);
    expectSpecError(await node.cni('CHECK', { containerId: 'nope', netns: p1, config: node.netConfig({ prevResult: add1 }) }), 3);
  });

  it.skipIf(testDatapath() !== 'linux')('ADD attached the programs (clsact by default) and wrote the endpoint map entry', async () => {
    const eps = (await node.get('/v1/endpoints')).body as { containerId: string; ifindex: number; hostIfName: string }[];
    const ep = eps.find((e) => e.containerId === 'ctr1')!;
    expect(await node.clsactPrograms(ep.hostIfName, 'ingress')).toEqual(['from_pod']);
    expect(await node.clsactPrograms(ep.hostIfName, 'egress')).toEqual(['to_pod']);
    expect(node.pinnedLinks(ep.ifindex)).toEqual([]);
    expect(await node.endpointMapKeys()).toContain(ep.ifindex);
  });

  it('DEL removes the veth, the address, the lease and the endpoint; a second DEL succeeds', async () => {
    const host = (add1.interfaces as { name: string }[])[0]!.name;
    const ifindex = ((await node.get('/v1/endpoints')).body as { containerId: string; ifindex: number }[])
      .find((e) => e.containerId === 'ctr1')!.ifindex;
    const r = await node.cni('DEL', { containerId: 'ctr1', netns: p1, config: node.netConfig({ prevResult: add1 }) });
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toBe('');
    expect(await node.hostLinks()).not.toContain(host);
    const links = await node.inPod(p1, 'ip', ['-j', 'link', 'show']);
    expect(links.stdout).not.toContain('"eth0"');
    expect(node.leases().map((l) => l.ip)).not.toContain(ip1);
    const eps = (await node.get('/v1/endpoints')).body as { containerId: string }[];
    expect(eps.map((e) => e.containerId)).not.toContain('ctr1');
    if (testDatapath() === 'linux') {
      expect(node.pinnedLinks(ifindex)).toEqual([]);
      expect(await node.endpointMapKeys()).not.toContain(ifindex);
    }
    const again = await node.cni('DEL', { containerId: 'ctr1', netns: p1 });
    expect(again.code, again.stdout).toBe(0);
  });

  it('DEL succeeds when the netns is already gone, and frees the address', async () => {
    const p3 = await node.addPod('p3');
    const add = await node.cni('ADD', { containerId: 'ctr3', netns: p3 });
    expect(add.code).toBe(0);
    const ip = (add.json!.ips as { address: string }[])[0]!.address.split('/')[0];
    await node.removePod(p3);
    const del = await node.cni('DEL', { containerId: 'ctr3', netns: p3 });
    expect(del.code, del.stdout).toBe(0);
    expect(node.leases().map((l) => l.ip)).not.toContain(ip);
    const del2 = await node.cni('DEL', { containerId: 'ctr3', netns: '' });
    expect(del2.code, del2.stdout).toBe(0);
  });

  it('malformed stdin or environment gives spec error JSON and creates nothing', async () => {
    const p4 = await node.addPod('p4');
    const linksBefore = (await node.hostLinks()).sort();
    const leasesBefore = node.leases().length;
    expectSpecError(await node.cni('ADD', { containerId: 'bad1', netns: p4, stdin: '{"cniVersion": "1.1.0", nope' }), 6);
    expectSpecError(await node.cni('ADD', { containerId: 'bad2', netns: p4, config: node.netConfig({ cniVersion: '9.9.9' }) }), 1);
    expectSpecError(await node.cni('ADD', { containerId: 'bad3', netns: p4, config: node.netConfig({ ipam: { type: 'host-local' } }) }), 2);
    expectSpecError(await node.cni('ADD', { containerId: 'bad4', netns: p4, ifName: 'this-is-too-long0' }), 4);
    expectSpecError(await node.cni('ADD', { containerId: 'bad5', netns: p4, env: { CNI_COMMAND: '' } }), 4);
    expectSpecError(await node.cni('ADD', { containerId: 'bad6', netns: '' }), 4);
    expectSpecError(await node.cni('ADD', { containerId: 'bad7', netns: p4, args: 'FOO=bar' }), 4);
    expectSpecError(await node.cni('ADD', { containerId: 'bad8', netns: p4, config: { cniVersion: '1.1.0', type: 'palisade', agentSocket: node.socket } }), 7);
    expectSpecError(await node.cni('ADD', { containerId: 'bad9', netns: `${p4}-missing` }), 3);
    expect((await node.hostLinks()).sort()).toEqual(linksBefore);
    expect(node.leases()).toHaveLength(leasesBefore);
    const links = await node.inPod(p4, 'ip', ['-j', 'link', 'show']);
    expect(JSON.parse(links.stdout).map((l: { ifname: string }) => l.ifname)).toEqual(['lo']);
  });

  it('the network config\'s mtu is set on both ends and reported in the 1.1.0 result', async () => {
    const p = await node.addPod('mtu');
    const r = await node.cni('ADD', { containerId: 'mtu1', netns: p, config: node.netConfig({ mtu: 1280 }) });
    expect(r.code, r.stdout).toBe(0);
    const ifs = r.json!.interfaces as { name: string; mtu?: number }[];
    expect(ifs.map((i) => i.mtu)).toEqual([1280, 1280]);
    const pod = JSON.parse((await node.inPod(p, 'ip', ['-j', 'link', 'show', 'dev', 'eth0'])).stdout)[0];
    expect(pod.mtu).toBe(1280);
    const host = JSON.parse((await node.inNode('ip', ['-j', 'link', 'show', 'dev', ifs[0]!.name])).stdout)[0];
    expect(host.mtu).toBe(1280);
    expect((await node.cni('DEL', { containerId: 'mtu1', netns: p })).code).toBe(0);
  });

  it('CNI_NETNS may be a /proc/PID/ns/net path', async () => {
    const holder = spawn('unshare', ['-n', 'sleep', '60'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const netns = `/proc/${holder.pid}/ns/net`;
      const add = await node.cni('ADD', { containerId: 'procns', netns });
      expect(add.code, add.stdout).toBe(0);
      const ip = (add.json!.ips as { address: string }[])[0]!.address.split('/')[0]!;
      const ping = await node.inNode('ping', ['-c', '1', '-W', '2', ip]);
      expect(ping.code, ping.stdout).toBe(0);
      const check = await node.cni('CHECK', { containerId: 'procns', netns, config: node.netConfig({ prevResult: add.json }) });
      expect(check.code, check.stdout).toBe(0);
      const del = await node.cni('DEL', { containerId: 'procns', netns });
      expect(del.code, del.stdout).toBe(0);
      expect(node.leases().map((l) => l.ip)).not.toContain(ip);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('VERSION lists the supported versions', async () => {
    const r = await node.cni('VERSION', { containerId: '', stdin: '{"cniVersion":"1.0.0"}' });
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('STATUS succeeds while the agent is ready', async () => {
    const r = await node.cni('STATUS', { containerId: '' });
    expect(r.code, r.stdout).toBe(0);
  });

  it('GC removes attachments that are not valid any more', async () => {
    const p5 = await node.addPod('p5');
    const add = await node.cni('ADD', { containerId: 'ctr5', netns: p5 });
    expect(add.code).toBe(0);
    const host = (add.json!.interfaces as { name: string }[])[0]!.name;
    const r = await node.cni('GC', { containerId: '', config: node.netConfig({
      'cni.dev/valid-attachments': [{ containerID: 'ctr2', ifname: 'eth0' }],
    }) });
    expect(r.code, r.stdout).toBe(0);
    expect(await node.hostLinks()).not.toContain(host);
    expect(node.leases().map((l) => l.containerId)).toEqual(['ctr2']);
    // ctr2 is untouched and still reachable from the node.
    const ping = await node.inNode('ping', ['-c', '1', '-W', '2', ip2]);
    expect(ping.code).toBe(0);
  });

  it('twenty concurrent ADDs get distinct addresses, twenty DELs clean up', async () => {
    const paths = await Promise.all(Array.from({ length: 20 }, (_, i) => node.addPod(`c${i}`)));
    const adds = await Promise.all(paths.map((p, i) => node.cni('ADD', { containerId: `conc${i}`, netns: p })));
    for (const a of adds) expect(a.code, a.stdout).toBe(0);
    const ips = adds.map((a) => (a.json!.ips as { address: string }[])[0]!.address);
    expect(new Set(ips).size).toBe(20);
    const ping = await node.inPod(paths[0]!, 'ping', ['-c', '1', '-W', '2', ips[19]!.split('/')[0]!]);
    expect(ping.code, ping.stdout).toBe(0);
    const dels = await Promise.all(paths.map((p, i) => node.cni('DEL', { containerId: `conc${i}`, netns: p })));
    for (const d of dels) expect(d.code, d.stdout).toBe(0);
    expect(node.leases().map((l) => l.containerId)).toEqual(['ctr2']);
  });
});

describePrivileged('CNI with an exhausted pod CIDR', () => {
  let node: Node;
  beforeAll(async () => {
    node = new Node('exh', '10.124.0.0/29');
    await node.init();
    await node.startAgent();
  });
  afterAll(async () => { await node?.destroy(); });

  it('a /29 holds six pods; the seventh ADD fails clearly and leaves nothing', async () => {
    const paths = [];
    for (let i = 0; i < 7; i++) paths.push(await node.addPod(`x${i}`));
    for (let i = 0; i < 6; i++) {
      const r = await node.cni('ADD', { containerId: `full${i}`, netns: paths[i] });
      expect(r.code, r.stdout).toBe(0);
    }
    const links = (await node.hostLinks()).sort();
    const r = await node.cni('ADD', { containerId: 'full6', netns: paths[6] });
    expectSpecError(r, 102);
    expect(String(r.json!.details)).toMatch(/no free address in 10\.124\.0\.0\/29/);
    expect((await node.hostLinks()).sort()).toEqual(links);
    expect(node.leases()).toHaveLength(6);
    expect(node.endpointFiles()).toHaveLength(6);
    const inPod = await node.inPod(paths[6]!, 'ip', ['-j', 'link', 'show']);
    expect(JSON.parse(inPod.stdout).map((l: { ifname: string }) => l.ifname)).toEqual(['lo']);
    const status = await node.cni('STATUS', { containerId: '' });
    expectSpecError(status, 50);
    // Freeing one address makes room again.
    expect((await node.cni('DEL', { containerId: 'full0', netns: paths[0] })).code).toBe(0);
    const again = await node.cni('ADD', { containerId: 'full6', netns: paths[6] });
    expect(again.code, again.stdout).toBe(0);
  });
});

describePrivileged('CNI with --attach tcx', () => {
  let node: Node;
  beforeAll(async () => {
    node = new Node('tcx', '10.125.0.0/29');
    await node.init();
    await node.startAgent(['--attach', 'tcx']);
  });
  afterAll(async () => { await node?.destroy(); });

  it.skipIf(testDatapath() !== 'linux')('ADD attaches pinned tcx links, pods talk, DEL removes links and veth', async () => {
    const pa = await node.addPod('ta');
    const pb = await node.addPod('tb');
    const a = await node.cni('ADD', { containerId: 'tcxa', netns: pa });
    expect(a.code, `${a.stdout}${node.agentLog}`).toBe(0);
    const b = await node.cni('ADD', { containerId: 'tcxb', netns: pb });
    expect(b.code, b.stdout).toBe(0);
    const eps = (await node.get('/v1/endpoints')).body as { containerId: string; ifindex: number; hostIfName: string }[];
    const ea = eps.find((e) => e.containerId === 'tcxa')!;
    expect(node.pinnedLinks(ea.ifindex).sort()).toEqual([`${ea.ifindex}-egress`, `${ea.ifindex}-ingress`]);
    expect(await node.clsactPrograms(ea.hostIfName, 'ingress')).toEqual([]);
    const ipB = (b.json!.ips as { address: string }[])[0]!.address.split('/')[0]!;
    const ping = await node.inPod(pa, 'ping', ['-c', '1', '-W', '2', ipB]);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    const del = await node.cni('DEL', { containerId: 'tcxa', netns: pa });
    expect(del.code, del.stdout).toBe(0);
    expect(node.pinnedLinks(ea.ifindex)).toEqual([]);
    expect(await node.hostLinks()).not.toContain(ea.hostIfName);
    expect(await node.endpointMapKeys()).not.toContain(ea.ifindex);
  });

  it.skipIf(testDatapath() !== 'linux')('restarting with --attach clsact moves a running pod to clsact filters and releases its links', async () => {
    const pc = await node.addPod('tc');
    const pd = await node.addPod('td');
    const c = await node.cni('ADD', { containerId: 'tcxc', netns: pc });
    expect(c.code, c.stdout).toBe(0);
    const d = await node.cni('ADD', { containerId: 'tcxd', netns: pd });
    expect(d.code, d.stdout).toBe(0);
    const eps = (await node.get('/v1/endpoints')).body as { containerId: string; ifindex: number; hostIfName: string }[];
    const ec = eps.find((e) => e.containerId === 'tcxc')!;
    expect(node.pinnedLinks(ec.ifindex)).toHaveLength(2);
    await node.stopAgent();
    await node.startAgent(['--attach', 'clsact']);
    expect(await node.clsactPrograms(ec.hostIfName, 'ingress')).toEqual(['from_pod']);
    expect(await node.clsactPrograms(ec.hostIfName, 'egress')).toEqual(['to_pod']);
    expect(node.pinnedLinks(ec.ifindex)).toEqual([]);
    const ipD = (d.json!.ips as { address: string }[])[0]!.address.split('/')[0]!;
    const ping = await node.inPod(pc, 'ping', ['-c', '1', '-W', '2', ipD]);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
  });
});
