// IPv6 is off on the pod's interface after CNI ADD (docs/cni.md): the datapath is
// IPv4-only and drops every non-IPv4 frame of an enforced endpoint, so a pod interface
// with IPv6 on would only send router solicitations, MLD reports and DAD probes into
// the flow log. Both ways the pod side is set up: the persistent helper's pod-config
// (through a real agent) and the iproute2 fallback (LinuxPodNetwork without the helper,
// run inside the node namespace). lo keeps IPv6 (::1).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../../helpers/privileged.ts';
import { Node, NODE, ROOT, sh } from './harness.ts';

const hasIpv6 = (await sh('test', ['-e', '/proc/sys/net/ipv6/conf/default/disable_ipv6'])).code === 0;

describePrivileged('CNI ADD leaves IPv6 off on the pod interface', () => {
  let node: Node;

  beforeAll(async () => {
    node = new Node('ip6', '10.126.0.0/24');
    await node.init();
    await node.startAgent();
  });
  afterAll(async () => {
    await node?.destroy();
  });

  /** disable_ipv6 of eth0 and lo, and the IPv6 addresses of each, inside the pod. */
  async function podIpv6(netns: string) {
    const sysctl = async (dev: string) => (await node.inPod(netns, 'cat', [`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`])).stdout.trim();
    const addrs = async (dev: string) => {
      const r = await node.inPod(netns, 'ip', ['-j', '-6', 'addr', 'show', 'dev', dev]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout || '[]') as { addr_info?: { local: string }[] }[])
        .flatMap((l) => l.addr_info ?? []).map((a) => a.local);
    };
    return { eth0: await sysctl('eth0'), lo: await sysctl('lo'), eth0Addrs: await addrs('eth0'), loAddrs: await addrs('lo') };
  }

  it.skipIf(!hasIpv6)('through the agent (the helper\'s pod-config)', async () => {
    const p = await node.addPod('a');
    const r = await node.cni('ADD', { containerId: 'ctr-ip6a', netns: p });
    expect(r.code, `${r.stdout}\n${r.stderr}\n${node.agentLog}`).toBe(0);
    expect(await podIpv6(p)).toEqual({ eth0: '1', lo: '0', eth0Addrs: [], loAddrs: ['::1'] });
    // IPv4 is unaffected.
    const v4 = await node.inPod(p, 'ip', ['-j', '-4', 'addr', 'show', 'dev', 'eth0']);
    expect(v4.stdout).toMatch(/"local":"10\.126\.0\.\d+","prefixlen":32/);
  });

  it.skipIf(!hasIpv6)('through the iproute2 fallback (no helper binary)', async () => {
    const p = await node.addPod('b');
    const spec = {
      hostIfName: 'palip6fb0', hostMac: '02:00:00:00:6f:01', podIfName: 'eth0', podMac: '02:00:00:00:6f:02',
      netns: p, mtu: 1500, ipv4: '10.126.0.200', gateway: '169.254.1.1',
    };
    const script = [
      `import { LinuxPodNetwork } from ${JSON.stringify(`${ROOT}pkg/datapath/linux/net/podnet.ts`)};`,
      'const net = new LinuxPodNetwork({ helperPath: null });',
      `const info = await net.setup(${JSON.stringify(spec)});`,
      'console.log(JSON.stringify(info));',
    ].join('\n');
    const r = await sh('nsenter', [`--net=/var/run/netns/${node.nodeNs}`, NODE, '--input-type=module', '-e', script]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).hostIfindex).toBeGreaterThan(0);
    expect(await podIpv6(p)).toEqual({ eth0: '1', lo: '0', eth0Addrs: [], loAddrs: ['::1'] });
    const route = await node.inPod(p, 'ip', ['-j', 'route', 'show', 'default']);
    expect(route.stdout).toContain('"gateway":"169.254.1.1"');
  });
});
