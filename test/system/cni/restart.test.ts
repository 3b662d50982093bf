// The agent going away and coming back: DELs recorded while it is down are completed,
// endpoints are restored, and running connections never notice.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../../helpers/privileged.ts';
import { echoAcrossRestart, Node, testDatapath, watchEndpointEntries } from './harness.ts';

function ipOf(r: { json: Record<string, unknown> | undefined }): string {
  return (r.json!.ips as { address: string }[])[0]!.address.split('/')[0]!;
}

describePrivileged('agent restart', () => {
  let node: Node;
  beforeAll(async () => {
    node = new Node('rst', '10.125.0.0/24');
    await node.init();
    await node.startAgent();
  });
  afterAll(async () => { await node?.destroy(); });

  it('a DEL made while the agent is down succeeds and is completed when it returns', async () => {
    const p = await node.addPod('d1');
    const add = await node.cni('ADD', { containerId: 'down1', netns: p });
    expect(add.code, add.stdout).toBe(0);
    const host = (add.json!.interfaces as { name: string }[])[0]!.name;
    expect(await node.stopAgent()).toBe(0);
    const del = await node.cni('DEL', { containerId: 'down1', netns: p });
    expect(del.code, del.stdout).toBe(0);
    expect(del.stdout).toBe('');
    expect(del.stderr).toMatch(/DEL recorded/);
    // Nothing was torn down yet: the agent does that.
    expect(await node.hostLinks()).toContain(host);
    // ADD while the agent is down is "try again later".
    const p2 = await node.addPod('d2');
    const add2 = await node.cni('ADD', { containerId: 'down2', netns: p2 });
    expect(add2.json?.code).toBe(11);
    await node.startAgent();
    expect(await node.hostLinks()).not.toContain(host);
    expect(node.leases().map((l) => l.containerId)).not.toContain('down1');
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(node.pendingDelDir)).toEqual([]);
  });

  it('restart keeps endpoints and a running TCP connection alive', async () => {
    const ps = await node.addPod('srv');
    const pc = await node.addPod('cli');
    const a = await node.cni('ADD', { containerId: 'srv', netns: ps });
    const b = await node.cni('ADD', { containerId: 'cli', netns: pc });
    expect(a.code, a.stdout).toBe(0);
    expect(b.code, b.stdout).toBe(0);
    const srvIp = ipOf(a);
    const before = (await node.get('/v1/endpoints')).body as { ifindex: number }[];
    const watch = testDatapath() === 'linux' ? watchEndpointEntries(node, before.map((e) => e.ifindex)) : undefined;
    const r = await echoAcrossRestart(node, ps, pc, srvIp, 8080);
    // The pinned endpoint entries stayed in place through the restart.
    expect(await watch?.stop() ?? []).toEqual([]);
    expect(r.aliveAtRestart, r.out).toBe(true);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^ok \d+/);
    // The connection carried traffic before and after the restart (6 s at ~40/s).
    expect(Number(r.out.split(' ')[1])).toBeGreaterThan(100);
    const eps = (await node.get('/v1/endpoints')).body as { containerId: string; ipv4: string }[];
    expect(eps.map((e) => e.containerId).sort()).toEqual(['cli', 'srv']);
    // New ADDs after the restart never reuse a live address.
    const p3 = await node.addPod('new');
    const c = await node.cni('ADD', { containerId: 'new', netns: p3 });
    expect(c.code, c.stdout).toBe(0);
    expect([srvIp, ipOf(b)]).not.toContain(ipOf(c));
  });

  it('a pod deleted while the agent is down is cleaned up on start', async () => {
    const p = await node.addPod('gone');
    const add = await node.cni('ADD', { containerId: 'gone', netns: p });
    expect(add.code).toBe(0);
    const ip = ipOf(add);
    await node.stopAgent();
    await node.removePod(p); // the veth pair dies with the namespace
    await node.startAgent();
    expect(node.leases().map((l) => l.ip)).not.toContain(ip);
    const eps = (await node.get('/v1/endpoints')).body as { containerId: string }[];
    expect(eps.map((e) => e.containerId)).not.toContain('gone');
  });
});
