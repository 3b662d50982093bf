/**
 * Where the agent plugs in parts other modules own: the datapath implementation and,
 * in Kubernetes mode, the control plane. Both are loaded lazily so that standalone mode
 * and the tests do not pay for (or depend on) what they do not use.
 */
import type { Datapath } from '../datapath/types.ts';
import type { EndpointRealizer } from '../endpoint/types.ts';
import type { LogFn } from '../endpoint/manager.ts';
import type { WaitResult } from '../api/server.ts';
import type { CompileResult } from '../policy/types.ts';
import type { RealizedEvent } from '../controlplane/controlplane.ts';
import type { Pod } from '../policy/snapshot.ts';
import type { StatusApi } from '../status/api.ts';
import { NullDatapath } from './null-datapath.ts';

/** What the agent needs from the control plane (pkg/controlplane) in Kubernetes mode. */
export interface ControlPlaneHandle extends EndpointRealizer {
  /** Starts watching; endpoints registered before are kept by the first reconcile. */
  start(): Promise<void>;
  /** Why the control plane is not ready (informers not synced, ...), or undefined. */
  notReadyReason(): string | undefined;
  revision(): number;
  resourceVersion(): string | undefined;
  waitFor(resourceVersion: string, timeoutMs: number): Promise<WaitResult>;
  /** Identity, enforcement, selecting policies, realized revision of an endpoint. */
  endpointDetails?(endpointId: number): Record<string, unknown> | undefined;
  /** The latest compile result (the L7 decider reads it per request). */
  lastCompile?(): CompileResult | undefined;
  /** Calls `listener` after every completed reconcile (metrics, status objects); returns the remover. */
  onRealized?(listener: (e: RealizedEvent) => void): () => void;
  /** Every pod the control plane knows (flow records name the pods behind addresses). */
  pods?(): ReadonlyMap<string, Pod>;
  stop(): Promise<void>;
}

export interface ControlPlaneFactoryOptions {
  /** Undefined: the in-cluster service account. */
  kubeconfig?: string;
  nodeName: string;
  datapath: Datapath;
  stateDir: string;
  log: LogFn;
  /** L7 proxy port for the compiler (PalisadeNetworkPolicy http rules); 0/absent = none. */
  l7ProxyPort?: number;
}

/** Kubernetes mode's parts: the control plane and this node's pod CIDR (Node spec.podCIDR). */
export interface KubernetesParts {
  controlPlane: ControlPlaneHandle;
  podCidr: string;
  /** Where PalisadeEndpoint/PalisadeNode objects are written (pkg/status). */
  statusApi?: StatusApi;
}

/** Builds the Kubernetes-mode parts (pkg/agent/kubernetes.ts, loaded only in that mode). */
export async function loadKubernetes(o: ControlPlaneFactoryOptions): Promise<KubernetesParts> {
  const mod = await import('./kubernetes.ts');
  return mod.createKubernetesParts(o);
}

/** Resolves a sibling module under pkg/ for a dynamic import, in source (.ts) or dist (.js). */
function pkgModule(rel: string): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`../${rel}${ext}`, import.meta.url).href;
}

async function importFirst(rels: string[]): Promise<Record<string, unknown> | undefined> {
  for (const rel of rels) {
    try {
      return await import(pkgModule(rel)) as Record<string, unknown>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    }
  }
  return undefined;
}

export interface DatapathFactoryOptions {
  kind: 'linux' | 'memory' | 'none';
  bpffsRoot: string;
  log: LogFn;
  /** linux only: attach with clsact even where tcx exists. */
  attach?: 'tcx' | 'clsact';
}

/** Builds the datapath chosen on the command line (not yet initialized). */
export async function createDatapath(o: DatapathFactoryOptions): Promise<Datapath> {
  if (o.kind === 'none') return new NullDatapath();
  const rels = o.kind === 'linux'
    ? ['datapath/linux/index', 'datapath/linux/datapath']
    : ['datapath/memory/index', 'datapath/memory/datapath'];
  const mod = await importFirst(rels);
  const Ctor = (o.kind === 'linux' ? mod?.LinuxDatapath : mod?.MemoryDatapath) as
    (new (opts: Record<string, unknown>) => Datapath) | undefined;
  if (typeof Ctor !== 'function') {
    throw new Error(`datapath ${o.kind}: pkg/${rels[0]} does not export ${o.kind === 'linux' ? 'LinuxDatapath' : 'MemoryDatapath'}`);
  }
  return new Ctor({ bpffsRoot: o.bpffsRoot, log: o.log, forceClsact: o.attach === 'clsact' });
}
