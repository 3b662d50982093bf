// Driven by the reference runtime: cnitool (libcni) reads a conflist, runs our plugin
// from CNI_PATH exactly as a container runtime would, caches results and passes
// prevResult to CHECK and DEL.
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../../helpers/privileged.ts';
import { CNI_JS, Node, NODE, ROOT, sh } from './harness.ts';

const CNITOOL = process.env.CNITOOL ?? join(ROOT, '.tools/go/bin/cnitool');
const haveCnitool = existsSync(CNITOOL);
if (!haveCnitool) {
  console.warn(`SKIP cnitool tests: ${CNITOOL} not found (make setup installs it)`);
}

describePrivileged('CNI driven by cnitool', () => {
  let node: Node;
  let env: NodeJS.ProcessEnv;
  let net: string;

  beforeAll(async () => {
    if (!haveCnitool) return;
    node = new Node('tool', '10.126.0.0/24');
    await node.init();
    await node.startAgent();
    net = `${node.prefix}net`;
    const binDir = join(node.dir, 'cni-bin');
    const confDir = join(node.dir, 'net.d');
    mkdirSync(binDir, { recursive: true });
    mkdirSync(confDir, { recursive: true });
    writeFileSync(join(binDir, 'palisade'), `#!/bin/sh\nexec "${NODE}" "${CNI_JS}" "$@"\n`);
    chmodSync(join(binDir, 'palisade'), 0o755);
    writeFileSync(join(confDir, '10-palisade.conflist'), JSON.stringify({
      cniVersion: '1.1.0', name: net,
      plugins: [{ type: 'palisade', agentSocket: node.socket }],
    }));
    env = {
      PATH: process.env.PATH, NETCONFPATH: confDir, CNI_PATH: binDir, CNI_IFNAME: 'eth0',
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=tool',
    };
  });
  afterAll(async () => { await node?.destroy(); });

  it.skipIf(!haveCnitool)('add, check, status, del through libcni', async () => {
    const p = await node.addPod('t1');
    const add = await sh(CNITOOL, ['add', net, p], { env });
    expect(add.code, add.stdout + add.stderr).toBe(0);
    const result = JSON.parse(add.stdout) as { ips: { address: string }[]; interfaces: { name: string }[] };
    const ip = result.ips[0]!.address.split('/')[0]!;
    expect(ip).toMatch(/^10\.126\.0\.\d+$/);
    const ping = await node.inPod(p, 'ping', ['-c', '1', '-W', '2', node.nodeIp]);
    expect(ping.code, ping.stdout).toBe(0);

    const check = await sh(CNITOOL, ['check', net, p], { env });
    expect(check.code, check.stdout + check.stderr).toBe(0);
    await node.must('nsenter', [`--net=${p}`, 'ip', 'addr', 'del', `${ip}/32`, 'dev', 'eth0']);
    const badCheck = await sh(CNITOOL, ['check', net, p], { env });
    expect(badCheck.code).not.toBe(0);
    expect(badCheck.stdout + badCheck.stderr).toMatch(/is missing/);

    const status = await sh(CNITOOL, ['status', net, p], { env });
    expect(status.code, status.stdout + status.stderr).toBe(0);

    const del = await sh(CNITOOL, ['del', net, p], { env });
    expect(del.code, del.stdout + del.stderr).toBe(0);
    expect(await node.hostLinks()).not.toContain(result.interfaces[0]!.name);
    expect(node.leases()).toEqual([]);
    const del2 = await sh(CNITOOL, ['del', net, p], { env });
    expect(del2.code, del2.stdout + del2.stderr).toBe(0);
  });

  it.skipIf(!haveCnitool)('gc through libcni removes every attachment it does not list', async () => {
    const p = await node.addPod('t2');
    const add = await sh(CNITOOL, ['add', net, p], { env });
    expect(add.code, add.stdout + add.stderr).toBe(0);
    // An attachment libcni does not know about (made behind its back).
    const orphan = await node.addPod('t3');
    const direct = await node.cni('ADD', { containerId: 'orphan', netns: orphan, config: node.netConfig({ name: net }) });
    expect(direct.code, direct.stdout).toBe(0);
    // An attachment of another network is not this network's GC's business.
    const other = await node.addPod('t4');
    const otherAdd = await node.cni('ADD', { containerId: 'other', netns: other, config: node.netConfig({ name: `${net}x` }) });
    expect(otherAdd.code, otherAdd.stdout).toBe(0);
    expect(node.leases()).toHaveLength(3);
    // cnitool passes no valid attachments ("all network interfaces should be GC'ed").
    const gc = await sh(CNITOOL, ['gc', net, p], { env });
    expect(gc.code, gc.stdout + gc.stderr).toBe(0);
    expect(node.leases().map((l) => l.containerId)).toEqual(['other']);
    expect(await node.hostLinks()).toEqual([(otherAdd.json!.interfaces as { name: string }[])[0]!.name]);
  });
});
