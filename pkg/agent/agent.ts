/**
 * The agent's composition root: builds the datapath, the realizer (standalone or the
 * Kubernetes control plane), IPAM, the endpoint manager and the API, restores the
 * endpoints of a previous run, and completes DELs the shim recorded while the agent was
 * down. `stop()` closes the socket and leaves pinned state and veths in place.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Metrics } from '../api/metrics.ts';
import { buildApi, listenOnSocket } from '../api/server.ts';
import { listSpooledDels, removeSpooled } from '../cni/spool.ts';
import { defaultRouteMtu, enableIpv4Forwarding, LinuxPodNetwork } from '../datapath/linux/net/podnet.ts';
import type { Datapath } from '../datapath/types.ts';
import { EndpointManager, type LogFn } from '../endpoint/manager.ts';
import type { PodNetwork } from '../endpoint/podnet.ts';
import { StandaloneRealizer } from '../endpoint/standalone-realizer.ts';
import { EndpointStore } from '../endpoint/store.ts';
import type { EndpointRealizer } from '../endpoint/types.ts';
import { Ipam } from '../ipam/ipam.ts';
import { removeCniConf, writeCniConf } from './cniconf.ts';
import { listenHealth, type HealthListener } from './health.ts';
import { startInspection } from './inspect.ts';
import { startL7, type L7Handle } from './l7.ts';
import type { AgentOptions } from './options.ts';
import { createDatapath, loadKubernetes, type ControlPlaneHandle } from './seams.ts';
import type { FlowStore } from '../flow/store.ts';
import type { StatusApi } from '../status/api.ts';

export interface Agent {
  manager: EndpointManager;
  ipam: Ipam;
  datapath: Datapath;
  /** The TCP health listener's port (the chosen one when --health-port 0). */
  healthPort: number;
  /** Flow records (GET /v1/flows); the L7 proxy's request records go here too. */
  flows: FlowStore;
  /** Completes recorded DELs now; resolves with how many were completed. */
  drainPendingDels(): Promise<number>;
  stop(): Promise<void>;
}

/** Overrides for tests: in-memory pod network, a fake control plane. */
export interface AgentSeams {
  podnet?: PodNetwork;
  datapath?: Datapath;
  controlPlane?: ControlPlaneHandle;
  /** Where status objects are written (with a fake control plane; Kubernetes mode). */
  statusApi?: StatusApi;
  log?: LogFn;
}

const LEVELS = { debug: -1, info: 0, warn: 1, error: 2 } as const;

/** JSON lines on stderr (stdout stays clean for tools that wrap the agent). */
export function stderrLogger(min: AgentOptions['logLevel']): LogFn {
  return (level, msg, fields) => {
    if (LEVELS[level] < LEVELS[min]) return;
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
  };
}

const DRAIN_INTERVAL_MS = 5_000;

export async function startAgent(opts: AgentOptions, seams: AgentSeams = {}): Promise<Agent> {
  const log = seams.log ?? stderrLogger(opts.logLevel);
  await mkdir(opts.stateDir, { recursive: true, mode: 0o700 });

  const datapath = seams.datapath
    ?? await createDatapath({ kind: opts.datapath, bpffsRoot: opts.bpffsRoot, log, attach: opts.attach });
  try {
    await datapath.init();
  } catch (err) {
    throw new Error(`initializing the ${opts.datapath} datapath: ${(err as Error).message}`, { cause: err });
  }

  let controlPlane: ControlPlaneHandle | undefined;
  let realizer: EndpointRealizer;
  let podCidr = opts.podCidr;
  let statusApi = seams.statusApi;
  if (opts.mode === 'kubernetes') {
    if (seams.controlPlane) {
      controlPlane = seams.controlPlane;
    } else {
      const k8s = await loadKubernetes({
        kubeconfig: opts.kubeconfig, nodeName: opts.nodeName, datapath, stateDir: opts.stateDir, log,
        l7ProxyPort: opts.datapath === 'linux' ? opts.l7ProxyPort : 0,
      });
      controlPlane = k8s.controlPlane;
      podCidr ??= k8s.podCidr;
      statusApi ??= k8s.statusApi;
    }
    realizer = controlPlane;
  } else {
    realizer = new StandaloneRealizer(datapath);
  }
  if (!podCidr) throw new Error(`node ${opts.nodeName} has no pod CIDR`);

  const ipam = await Ipam.open({ stateDir: opts.stateDir, cidr: podCidr });
  const podnet = seams.podnet ?? new LinuxPodNetwork();
  if (!seams.podnet) await enableIpv4Forwarding();
  const mtu = opts.mtu ?? (seams.podnet ? 1500 : await defaultRouteMtu().catch(() => undefined)) ?? 1500;
  const store = new EndpointStore(opts.stateDir);
  const manager = new EndpointManager({
    ipam, podnet, datapath, realizer, store, defaultMtu: mtu,
    realizeTimeoutMs: opts.realizeTimeoutMs, log,
  });

  let draining: Promise<number> | undefined;
  const drainPendingDels = (): Promise<number> => {
    draining ??= (async () => {
      const { dels, bad } = listSpooledDels(opts.pendingDelDir);
      for (const f of bad) {
        log('warn', 'removing unreadable pending DEL record', { file: f });
        removeSpooled(f);
      }
      let done = 0;
      for (const d of dels) {
        try {
          await manager.del(d.request.containerId, d.request.ifName);
          removeSpooled(d.file);
          done++;
          log('info', 'completed a DEL recorded while the agent was down',
            { containerId: d.request.containerId, ifName: d.request.ifName });
        } catch (err) {
          log('error', 'completing a recorded DEL failed; will retry',
            { containerId: d.request.containerId, error: (err as Error).message });
        }
      }
      return done;
    })().finally(() => { draining = undefined; });
    return draining;
  };

  let restored = false;
  let cniConfWritten = false;
  const metrics = new Metrics();
  // Before the control plane starts: the first realization is measured, no event is missed.
  const inspection = startInspection({
    node: opts.nodeName, datapath, manager, controlPlane, metrics, log,
    datapathMode: opts.datapath === 'linux' ? opts.attach ?? 'clsact' : opts.datapath,
  });
  // Restored endpoints are registered before the control plane starts, so that its first
  // reconcile keeps their entries (established connections never see a gap).
  // L7 proxy (docs/l7.md): before the first reconcile, so redirect entries find it ready.
  // Not fatal: without it, redirected connections are dropped (http rules fail closed).
  let l7: L7Handle | undefined;
  if (controlPlane && opts.datapath === 'linux' && opts.l7ProxyPort > 0) {
    const cp = controlPlane;
    l7 = await startL7({
      port: opts.l7ProxyPort, node: opts.nodeName, log,
      bpfDir: join(opts.bpffsRoot, 'palisade'), stateDir: opts.stateDir,
      compileResult: () => cp.lastCompile?.(),
      // Counted by the flow store: palisade_l7_requests_total{verdict,direction}.
      onRecord: (r) => {
        try {
          inspection.record(r);
        } catch (err) {
          log('warn', 'l7 flow record refused', { error: (err as Error).message });
        }
        log('debug', 'l7 request', { ...r });
      },
    }).catch((err: Error) => {
      log('error', 'l7 proxy not started: http rules fail closed', { error: err.message });
      return undefined;
    });
  }
  const restoring = await manager.beginRestore();
  await controlPlane?.start();
  await restoring.finish();
  await drainPendingDels();
  restored = true;

  metrics.gauge('palisade_ipam_addresses_used', () => ipam.used);
  metrics.gauge('palisade_ipam_addresses_capacity', () => ipam.capacity);
  if (l7) {
    const proxy = l7.proxy;
    metrics.gauge('palisade_l7_connections', () => proxy.connections());
  }
  const notReadyReason = (): string | undefined => {
    if (!restored) return 'restoring endpoints';
    if (opts.cniConfDir && !cniConfWritten) return 'CNI config not written yet';
    const cp = controlPlane?.notReadyReason();
    if (cp) return cp;
    if (ipam.used >= ipam.capacity) return `no free address in ${ipam.cidr}`;
    return undefined;
  };
  const app = buildApi({
    node: opts.nodeName, mode: opts.mode, manager, notReadyReason, metrics, log,
    revision: () => controlPlane?.revision() ?? 0,
    resourceVersion: () => controlPlane?.resourceVersion(),
    waitFor: controlPlane ? (rv, t) => controlPlane.waitFor(rv, t) : undefined,
    endpointDetails: controlPlane?.endpointDetails
      ? (id) => controlPlane.endpointDetails!(id)
      : () => ({ identity: 256, ingressEnforced: false, egressEnforced: false, policies: [], revision: 0 }),
    version: inspection.version,
    datapathMode: inspection.datapathMode,
    flows: inspection.flows,
    identities: inspection.identities,
    mapUsage: inspection.mapUsage,
    counters: () => datapath.counters(),
    ...(datapath.serviceCounters ? { serviceCounters: () => datapath.serviceCounters!() } : {}),
  });
  await listenOnSocket(app, opts.apiSocket);
  let health: HealthListener | undefined;
  try {
    health = await listenHealth(app, opts.healthBindAddress, opts.healthPort);
    // The socket serves ADDs from here on: only now may the runtime see the config.
    if (opts.cniConfDir) {
      const path = await writeCniConf(opts.cniConfDir, opts.apiSocket);
      cniConfWritten = true;
      log('info', 'wrote CNI config', { path });
    }
  } catch (err) {
    await health?.close();
    await app.close();
    await inspection.stop();
    await l7?.stop();
    await controlPlane?.stop();
    await datapath.close();
    throw err;
  }
  // A DEL recorded while we were starting (socket not yet there) is completed now.
  await drainPendingDels();
  if (opts.mode === 'kubernetes' && statusApi) inspection.startStatus(statusApi, notReadyReason);
  const timer = setInterval(() => { void drainPendingDels(); }, DRAIN_INTERVAL_MS);
  timer.unref();
  log('info', 'agent ready', {
    node: opts.nodeName, mode: opts.mode, podCidr: ipam.cidr, socket: opts.apiSocket,
    datapath: opts.datapath, mtu, endpoints: manager.list().length,
    health: `${opts.healthBindAddress}:${health.port}`,
  });

  let stopped = false;
  return {
    manager, ipam, datapath, drainPendingDels, healthPort: health.port, flows: inspection.flows,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      // First, so the runtime stops sending ADDs to an agent that is going away.
      if (opts.cniConfDir && opts.removeCniConfOnShutdown) {
        await removeCniConf(opts.cniConfDir).catch((err: Error) => log('error', err.message));
      }
      await health?.close();
      await app.close();
      await draining?.catch(() => undefined);
      await inspection.stop();
      await l7?.stop();
      await controlPlane?.stop();
      await datapath.close();
      log('info', 'agent stopped', { node: opts.nodeName });
    },
  };
}
