/**
 * Kubernetes mode: the control plane (pkg/controlplane) adapted to what the agent needs,
 * and this node's pod CIDR read from its Node object. Loaded only in this mode, so that
 * standalone agents never load the Kubernetes client.
 */
import { join } from 'node:path';
import { createKubernetesControlPlane, type KubernetesControlPlane } from '../controlplane/kubernetes.ts';
import { LinuxRouting } from '../datapath/linux/routing.ts';
import type { LogFn } from '../endpoint/manager.ts';
import { loadApiConfig, type KubeConfigLike } from '../k8s/kubeconfig.ts';
import { apiRequest } from '../k8s/request.ts';
import type { Node } from '../policy/snapshot.ts';
import { KubeStatusApi } from '../status/kube.ts';
import { loadInClusterConfig } from './incluster.ts';
import type { Logger } from '../k8s/clock.ts';
import type { ControlPlaneFactoryOptions, ControlPlaneHandle, KubernetesParts } from './seams.ts';

/** How long the agent waits for its Node to exist and carry spec.podCIDR. */
const POD_CIDR_TIMEOUT_MS = 300_000;
const POD_CIDR_POLL_MS = 1_000;

function logger(log: LogFn): Logger {
  return {
    debug: () => {},
    info: (m, f) => log('info', m, f as Record<string, unknown>),
    warn: (m, f) => log('warn', m, f as Record<string, unknown>),
    error: (m, f) => log('error', m, f as Record<string, unknown>),
  };
}

/**
 * Reads spec.podCIDR (or the first IPv4 of spec.podCIDRs) of the node, polling until
 * the Node exists and has one (the node IPAM controller assigns it after registration).
 */
export async function readNodePodCidr(kubeconfig: string | KubeConfigLike | undefined, nodeName: string, log: LogFn,
  timeoutMs = POD_CIDR_TIMEOUT_MS): Promise<string> {
  const kc = typeof kubeconfig === 'object' ? kubeconfig
    : kubeconfig === undefined ? loadInClusterConfig() : loadApiConfig(kubeconfig);
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (;;) {
    try {
      const node = await apiRequest<Node>(kc, { method: 'GET', path: `/api/v1/nodes/${encodeURIComponent(nodeName)}` });
      const cidrs = [node.spec?.podCIDR, ...(node.spec?.podCIDRs ?? [])].filter((c): c is string => !!c);
      const v4 = cidrs.find((c) => /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(c));
      if (v4) return v4;
      last = `node ${nodeName} has no IPv4 spec.podCIDR yet`;
    } catch (err) {
      last = `reading node ${nodeName}: ${(err as Error).message}`;
    }
    if (Date.now() >= deadline) throw new Error(`${last} (gave up after ${timeoutMs} ms)`);
    log('warn', 'waiting for the node\'s pod CIDR', { reason: last });
    await new Promise((r) => setTimeout(r, POD_CIDR_POLL_MS));
  }
}

class Handle implements ControlPlaneHandle {
  readonly cp: KubernetesControlPlane;
  constructor(cp: KubernetesControlPlane) {
    this.cp = cp;
  }

  start(): Promise<void> { return this.cp.start(); }
  upsertEndpoint(ep: Parameters<KubernetesControlPlane['upsertEndpoint']>[0]): Promise<void> {
    return this.cp.upsertEndpoint(ep);
  }
  removeEndpoint(id: number): Promise<void> { return this.cp.removeEndpoint(id); }
  notReadyReason(): string | undefined {
    if (this.cp.ready) return undefined;
    const s = this.cp.status();
    return s.synced ? 'control plane: first reconcile not realized yet' : 'control plane: informers not synced';
  }
  revision(): number { return this.cp.realizedRevision; }
  resourceVersion(): string | undefined { return this.cp.status().realizedResourceVersion || undefined; }
  waitFor(rv: string, timeoutMs: number) { return this.cp.waitFor(rv, timeoutMs); }
  endpointDetails(endpointId: number): Record<string, unknown> | undefined {
    const e = this.cp.status().endpoints.find((x) => x.endpointId === endpointId);
    if (!e) return undefined;
    return {
      identity: e.policy?.identity,
      ingressEnforced: e.policy?.ingressEnforced ?? false,
      egressEnforced: e.policy?.egressEnforced ?? false,
      ingressPolicies: e.policy?.ingressPolicies ?? [],
      egressPolicies: e.policy?.egressPolicies ?? [],
      revision: e.realizedRevision,
    };
  }
  lastCompile() { return this.cp.lastCompile; }
  onRealized(listener: Parameters<KubernetesControlPlane['onRealized']>[0]) { return this.cp.onRealized(listener); }
  pods() { return this.cp.cluster.store.snapshot().pods; }
  stop(): Promise<void> { return this.cp.stop(); }
}

export async function createKubernetesParts(o: ControlPlaneFactoryOptions): Promise<KubernetesParts> {
  // Without --kubeconfig: the in-cluster credentials (failing clearly now if the
  // service-account files are absent); one loaded config for every request the agent makes.
  const kubeConfig = o.kubeconfig === undefined ? loadInClusterConfig() : loadApiConfig(o.kubeconfig);
  const podCidr = await readNodePodCidr(kubeConfig, o.nodeName, o.log);
  const cp = await createKubernetesControlPlane({
    kubeConfig,
    nodeName: o.nodeName,
    datapath: o.datapath,
    routing: new LinuxRouting(),
    identityStatePath: join(o.stateDir, 'identities.json'),
    log: logger(o.log),
    compilerOptions: { l7ProxyPort: o.l7ProxyPort ?? 0 },
  });
  return { controlPlane: new Handle(cp), podCidr, statusApi: new KubeStatusApi(kubeConfig) };
}
