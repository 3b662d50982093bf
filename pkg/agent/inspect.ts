/**
 * The agent's inspection parts wired together (docs/inspect.md): the flow store fed from
 * the datapath's events, the facts /v1/status and /metrics read, the realization latency
 * histogram, and in Kubernetes mode the status objects (PalisadeEndpoint, PalisadeNode).
 * The composition root (agent.ts) builds one and hands `apiDeps` to the API.
 */
import type { Metrics } from '../api/metrics.ts';
import type { Datapath, DatapathState } from '../datapath/types.ts';
import type { EndpointManager, LogFn } from '../endpoint/manager.ts';
import { collectFlows, type FlowCollector } from '../flow/collector.ts';
import { PodIpIndex } from '../flow/pods.ts';
import { FlowStore } from '../flow/store.ts';
import type { FlowPeer, FlowRecord } from '../flow/types.ts';
import type { StatusApi } from '../status/api.ts';
import { mapUsage, type MapUsage } from '../status/maps.ts';
import { startStatusPublisher, type StatusPublisher } from '../status/publisher.ts';
import type { EndpointFacts } from '../status/reporter.ts';
import { agentVersion } from '../status/version.ts';
import type { ControlPlaneHandle } from './seams.ts';

/** How long a map usage read from the datapath (standalone, or before the first compile) is reused. */
const DUMP_TTL_MS = 10_000;
/** Identity of every standalone endpoint (docs/agent-api.md). */
const STANDALONE_IDENTITY = 256;

export interface InspectionOptions {
  node: string;
  datapath: Datapath;
  manager: EndpointManager;
  controlPlane?: ControlPlaneHandle;
  metrics: Metrics;
  log: LogFn;
  /** Flow records kept (default 8192). */
  flowCapacity?: number;
  /**
   * The configured attach mode (`--attach`) or the test datapath's name: reported until
   * the datapath tells what it did (Datapath.attachMode, after its first attach).
   */
  datapathMode?: string;
}

export interface Inspection {
  flows: FlowStore;
  /**
   * Records a flow from outside the datapath (the L7 proxy's requests), naming the pods
   * behind its addresses when the record does not. Throws TypeError for a malformed record.
   */
  record(r: FlowRecord): void;
  version: string;
  /**
   * PalisadeNode.status.datapathMode and /v1/status `datapathMode`: the attach mode the
   * datapath actually used last (clsact where tcx was asked for and the kernel has none),
   * else the configured one.
   */
  datapathMode(): string | undefined;
  identities(): number;
  mapUsage(): Promise<readonly MapUsage[]>;
  /**
   * Starts writing status objects (Kubernetes mode). Never rejects: the API server may be
   * unreachable for a while; the publisher retries on its own.
   */
  startStatus(api: StatusApi, notReadyReason: () => string | undefined): void;
  /** Asks the status publisher for a refresh (after CNI ADD/DEL). */
  refreshStatus(): void;
  stop(): Promise<void>;
}

export function startInspection(o: InspectionOptions): Inspection {
  const { controlPlane: cp, manager } = o;
  const version = agentVersion();
  const flows = new FlowStore({ capacity: o.flowCapacity });
  const pods = new PodIpIndex(() => cp?.pods?.());

  const podByIp = (ip: string) => {
    const pod = pods.lookup(ip);
    if (pod) return pod;
    // Standalone, or a local pod the informers have not delivered yet.
    const r = manager.list().find((e) => e.ipv4 === ip);
    return r?.podName ? { namespace: r.podNamespace, name: r.podName } : undefined;
  };
  const collector: FlowCollector = collectFlows(o.datapath, flows, {
    node: o.node,
    podByIp,
    policyOfRule: (ruleId) => cp?.lastCompile?.()?.rules.get(ruleId)?.policy,
    podOfEndpoint: (id) => {
      const r = manager.list().find((e) => e.endpointId === id);
      return r?.podName ? { namespace: r.podNamespace, name: r.podName } : undefined;
    },
    endpoint: (id) => {
      if (cp) return cp.lastCompile?.()?.endpoints.get(id);
      return manager.list().some((r) => r.endpointId === id)
        ? { identity: STANDALONE_IDENTITY, ingressEnforced: false, egressEnforced: false }
        : undefined;
    },
  }, (err) => o.log('warn', 'flow record dropped', { error: err.message }));

  const datapathMode = (): string | undefined => o.datapath.attachMode?.() ?? o.datapathMode;

  let dumped: { at: number; usage: Promise<readonly MapUsage[]> } | undefined;
  const readMaps = (): Promise<readonly MapUsage[]> => {
    const compiled: DatapathState | undefined = cp?.lastCompile?.()?.state;
    if (compiled) return Promise.resolve(mapUsage(compiled));
    const now = Date.now();
    if (!dumped || now - dumped.at > DUMP_TTL_MS) {
      const usage = o.datapath.dump().then(mapUsage);
      // A failed read is not cached.
      usage.catch(() => { dumped = undefined; });
      dumped = { at: now, usage };
    }
    return dumped.usage;
  };

  let publisher: StatusPublisher | undefined;
  let publisherStarting: Promise<void> | undefined;
  let stopped = false;
  const unsubscribe = cp?.onRealized?.((e) => {
    // Reconciles that changed nothing in the datapath are not policy realizations.
    if (e.synced && e.operations > 0) o.metrics.policyRealized(e.latencyMs);
    publisher?.refresh();
  });

  const endpointFacts = (): EndpointFacts[] => manager.list().map((r) => {
    const d = cp?.endpointDetails?.(r.endpointId) as {
      identity?: number; ingressEnforced?: boolean; egressEnforced?: boolean;
      ingressPolicies?: string[]; egressPolicies?: string[]; revision?: number;
    } | undefined;
    return {
      endpointId: r.endpointId, podNamespace: r.podNamespace, podName: r.podName,
      podUid: r.podUid || undefined, containerId: r.containerId, hostIfName: r.hostIfName, ipv4: r.ipv4,
      identity: d?.identity, ingressEnforced: d?.ingressEnforced, egressEnforced: d?.egressEnforced,
      policies: { ingress: d?.ingressPolicies ?? [], egress: d?.egressPolicies ?? [] },
      revision: d?.revision,
    };
  });

  const named = (p: FlowPeer): FlowPeer => {
    if (p.pod) return p;
    const pod = podByIp(p.ip);
    return pod ? { ...p, namespace: pod.namespace, pod: pod.name } : p;
  };

  return {
    flows,
    // A record without peers goes to the store as is, which refuses it with a clear error.
    record: (r) => flows.record(r?.src?.ip && r.dst?.ip ? { ...r, src: named(r.src), dst: named(r.dst) } : r),
    version,
    datapathMode,
    identities: () => cp?.lastCompile?.()?.identities.size ?? 0,
    mapUsage: readMaps,
    startStatus(api, notReadyReason) {
      if (publisherStarting || stopped) return;
      publisherStarting = startStatusPublisher({
        api,
        sources: {
          node: o.node, version, datapathMode,
          endpoints: endpointFacts,
          notReadyReason,
          revision: () => cp?.revision() ?? 0,
          maps: readMaps,
        },
        // Refreshing is local and cheap (no API call unless something changed): once a
        // second bounds how long a new endpoint waits for its object.
        refreshMs: 1000,
        onWrite: (kind, op, outcome) => o.metrics.statusWrite(kind, op, outcome),
        log: o.log,
      }).then(async (p) => {
        if (stopped) await p.stop();
        else publisher = p;
      }, (err: Error) => o.log('error', 'status objects not published', { error: err.message }));
    },
    refreshStatus: () => publisher?.refresh(),
    async stop() {
      stopped = true;
      unsubscribe?.();
      collector.stop();
      // A publisher still listing its objects on an unreachable API server: not waited
      // for long (it stops itself once the listing ends, see startStatus).
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([publisherStarting, new Promise<void>((r) => { timer = setTimeout(r, 2000); })]);
      clearTimeout(timer);
      await publisher?.stop();
    },
  };
}
