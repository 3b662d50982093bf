/**
 * The control plane wired for Kubernetes mode: informers on the API server named by a
 * kubeconfig, the policy compiler (with identity numbers persisted across restarts when
 * `identityStatePath` is given), and a ControlPlane over the given datapath and routing.
 * The agent's composition root calls `createKubernetesControlPlane` and uses the result
 * as its EndpointRealizer; see docs/control-plane.md.
 */
import type { Datapath } from '../datapath/types.ts';
import { KubernetesCluster } from '../k8s/cluster.ts';
import { errorMessage, silentLogger, type Clock, type Logger } from '../k8s/clock.ts';
import { loadApiConfig, type KubeConfigLike } from '../k8s/kubeconfig.ts';
import { ClientNodeSource } from '../k8s/source.ts';
import { PolicyCompiler, type PolicyCompilerOptions } from '../policy/compile.ts';
import { ControlPlane, type ControlPlaneOptions } from './controlplane.ts';
import { apiEventSink, ProblemEvents } from './events.ts';
import { loadIdentityState, saveIdentityState } from './identity-state.ts';
import type { Routing } from './routes.ts';

export interface KubernetesControlPlaneOptions {
  /**
   * The API server and credentials: a loaded config (the agent passes its in-cluster
   * credentials, see pkg/k8s/kubeconfig.ts; a client-node KubeConfig works too). Wins
   * over `kubeconfig`.
   */
  kubeConfig?: KubeConfigLike;
  /** kubeconfig file, when `kubeConfig` is not given; neither = client-node's default rules. */
  kubeconfig?: string;
  nodeName: string;
  datapath: Datapath;
  /** Cross-node routing (the agent passes a LinuxRouting); omitted = not managed. */
  routing?: Routing;
  /** Cluster pod CIDRs for masquerading (default: union of the nodes' pod CIDRs). */
  clusterCIDRs?: string[];
  /** Compiler options other than the allocators (l7ProxyPort, hostAddresses). */
  compilerOptions?: Omit<PolicyCompilerOptions, 'labelIdentities' | 'cidrIdentities'>;
  /** Report compile problems as Events on the policies (default true). */
  problemEvents?: boolean;
  /** File that keeps identity numbers across restarts (e.g. /var/run/palisade/identities.json). */
  identityStatePath?: string;
  clock?: Clock;
  log?: Logger;
  /** See ControlPlaneOptions / KubernetesClusterOptions. */
  minIntervalMs?: number;
  maxDelayMs?: number;
  quietMs?: number;
  endpointTimeoutMs?: number;
}

/** A ControlPlane that also persists identity numbers (after reconciles and on stop). */
export class KubernetesControlPlane extends ControlPlane {
  readonly cluster: KubernetesCluster;
  readonly compiler: PolicyCompiler;
  readonly #statePath: string | undefined;
  readonly #log: Logger;
  #saving: Promise<void> | undefined;
  #saveAgain = false;
  #lastSave = 0;

  constructor(opts: ControlPlaneOptions & {
    cluster: KubernetesCluster; compiler: PolicyCompiler; identityStatePath?: string;
  }) {
    super(opts);
    this.cluster = opts.cluster;
    this.compiler = opts.compiler;
    this.#statePath = opts.identityStatePath;
    this.#log = opts.log ?? silentLogger;
    if (this.#statePath) this.onRealized((e) => {
      if (e.synced && e.operations > 0) this.#scheduleSave();
    });
  }

  override async stop(): Promise<void> {
    await super.stop();
    await this.#saving;
    if (this.#statePath && this.ready) await this.#save();
  }

  #scheduleSave(): void {
    if (this.#saving) {
      this.#saveAgain = true;
      return;
    }
    // At most one write per second: identity numbers change with label sets, not packets.
    const wait = Math.max(0, this.#lastSave + 1000 - Date.now());
    this.#saving = new Promise<void>((r) => setTimeout(r, wait)).then(() => this.#save()).finally(() => {
      this.#saving = undefined;
      if (this.#saveAgain) {
        this.#saveAgain = false;
        this.#scheduleSave();
      }
    });
  }

  async #save(): Promise<void> {
    this.#lastSave = Date.now();
    try {
      await saveIdentityState(this.#statePath!, this.compiler);
    } catch (err) {
      this.#log.warn('saving identity state failed', { path: this.#statePath, error: errorMessage(err) });
    }
  }
}

/**
 * Builds the Kubernetes-mode control plane (not started: call `start()`). Rejects with a
 * clear error when the kubeconfig cannot be loaded or an option is invalid.
 */
export async function createKubernetesControlPlane(
  opts: KubernetesControlPlaneOptions,
): Promise<KubernetesControlPlane> {
  const log = opts.log ?? silentLogger;
  const kc = opts.kubeConfig ?? loadApiConfig(opts.kubeconfig);
  const cluster = new KubernetesCluster({
    source: new ClientNodeSource(kc), clock: opts.clock, log, quietMs: opts.quietMs,
  });
  const ids = opts.identityStatePath
    ? await loadIdentityState(opts.identityStatePath, log)
    : undefined;
  const compiler = new PolicyCompiler({ ...opts.compilerOptions, ...ids });
  return new KubernetesControlPlane({
    cluster, compiler, identityStatePath: opts.identityStatePath,
    datapath: opts.datapath, nodeName: opts.nodeName, routing: opts.routing,
    clusterCIDRs: opts.clusterCIDRs, clock: opts.clock, log,
    minIntervalMs: opts.minIntervalMs, maxDelayMs: opts.maxDelayMs,
    endpointTimeoutMs: opts.endpointTimeoutMs,
    problemReporter: opts.problemEvents === false ? undefined
      : new ProblemEvents({ sink: apiEventSink(kc), nodeName: opts.nodeName, clock: opts.clock, log }),
  });
}
