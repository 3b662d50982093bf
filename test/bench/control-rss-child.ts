/**
 * The process bench-control measures for "agent RSS": only what the agent's control plane
 * loads (client-node, the compiler, the control plane, an in-memory datapath), started
 * against the kubeconfig in argv[2]. Reports memory over IPC after sync and a full GC.
 */
import { createKubernetesControlPlane } from '../../pkg/controlplane/kubernetes.ts';
import { MemoryDatapath } from '../../pkg/datapath/memory/index.ts';
import type { LocalEndpoint } from '../../pkg/policy/snapshot.ts';

async function settledMemory(): Promise<NodeJS.MemoryUsage> {
  const g = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    g?.();
    await new Promise((r) => setTimeout(r, 50));
  }
  return process.memoryUsage();
}

async function main(): Promise<void> {
  const [kubeconfig, nodeName, localPods] = process.argv.slice(2);
  // Everything is imported by now: the process's own baseline.
  const base = await settledMemory();
  const cp = await createKubernetesControlPlane({ kubeconfig: kubeconfig!, nodeName: nodeName!, datapath: new MemoryDatapath() });
  for (let i = 0; i < Number(localPods); i++) {
    const ep: LocalEndpoint = {
      endpointId: i + 1, ifindex: 1000 + i, ifname: `lxc${i}`, containerId: `c${i}`,
      podNamespace: 'ns-0', podName: `local-${i}`, ipv4: `10.100.0.${i + 2}`,
    };
    void cp.upsertEndpoint(ep);
  }
  await cp.start();
  await cp.whenReady();
  const m = await settledMemory();
  process.send!({
    rss: m.rss, heapUsed: m.heapUsed, baseRss: base.rss, baseHeapUsed: base.heapUsed,
    pods: cp.cluster.store.size('pods'),
  });
  await cp.stop();
}

main().catch((err: unknown) => {
  console.error(`control-rss-child: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
