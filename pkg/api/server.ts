/**
 * The agent API (docs/agent-api.md): fastify on a unix socket. Routes are thin: they
 * validate, call into the agent's objects and map failures to stable PAL_* codes.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { connect } from 'node:net';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { handleCni, type CniHandlerDeps } from '../cni/handler.ts';
import type { CniErrorBody } from '../cni/errors.ts';
import { PAL_API_ERRORS, apiError } from './errors.ts';
import type { DatapathCounters, ServiceCounters } from '../datapath/types.ts';
import type { FlowStore } from '../flow/store.ts';
import { mapPressure, type MapUsage } from '../status/maps.ts';
import { registerFlowRoutes } from './flows.ts';
import { Metrics } from './metrics.ts';

/** What a Kubernetes control plane adds to the API; absent in standalone mode. */
export interface WaitResult {
  resourceVersion: string;
  revision: number;
  waitedMs: number;
}

export interface ApiDeps extends CniHandlerDeps {
  node: string;
  mode: 'standalone' | 'kubernetes';
  /** Whether the agent is ready (/readyz), with the reason when not. */
  notReadyReason: () => string | undefined;
  revision: () => number;
  resourceVersion: () => string | undefined;
  /** Waits for API state at least as new as `rv` to be realized; rejects on timeout. */
  waitFor?: (rv: string, timeoutMs: number) => Promise<WaitResult>;
  /** Extra per-endpoint facts (identity, enforcement, policies, revision) by endpoint id. */
  endpointDetails?: (endpointId: number) => Record<string, unknown> | undefined;
  metrics: Metrics;
  /** Agent version for /v1/status (default: unknown). */
  version?: string;
  /** The flow store behind GET /v1/flows (route absent without it). */
  flows?: FlowStore;
  /** How the datapath attaches (`tcx`, `clsact`, or the test datapath's name). */
  datapathMode?: () => string | undefined;
  /** Identities in the last compiled policy. */
  identities?: () => number;
  /** eBPF map usage (pkg/status/maps.ts). */
  mapUsage?: () => Promise<readonly MapUsage[]>;
  /** Datapath packet counters for /metrics. */
  counters?: () => Promise<DatapathCounters>;
  /** ClusterIP translation counters for /metrics (docs/services.md). */
  serviceCounters?: () => Promise<ServiceCounters>;
  log?: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

/** HTTP status for a CNI error: client mistakes 4xx, retryable 503, the rest 500. */
function cniHttpStatus(e: CniErrorBody): number {
  if ([1, 2, 4, 6, 7].includes(e.code)) return 400;
  if (e.code === 3) return 404;
  if (e.code === 11 || e.code === 50 || e.code === 51) return 503;
  if (e.code === 102) return 409;
  if (e.code === 104) return 409;
  return 500;
}

export function buildApi(deps: ApiDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 8 << 20 });
  /** Map usage for /v1/status; a failing source leaves the list empty (logged). */
  const readMaps = async (): Promise<readonly MapUsage[]> => {
    if (!deps.mapUsage) return [];
    try {
      return await deps.mapUsage();
    } catch (err) {
      deps.log?.('warn', 'status: reading map usage failed', { error: (err as Error).message });
      return [];
    }
  };

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    const status = err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
    const code = status === 400 ? 'PAL_BAD_REQUEST' : status === 404 ? 'PAL_NOT_FOUND' : 'PAL_INTERNAL';
    void reply.code(status).send(apiError(code, err.message));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(apiError('PAL_NOT_FOUND', `no route ${req.method} ${req.url}`));
  });

  app.post('/v1/cni', async (req, reply) => {
    const started = performance.now();
    const answer = await handleCni(req.body, deps);
    const cmd = String((req.body as { command?: unknown } | undefined)?.command ?? 'unknown');
    const ms = performance.now() - started;
    deps.metrics.cni(cmd, answer.error ? 'error' : 'ok', ms);
    const shimMs = Number(req.headers['x-palisade-shim-ms']);
    if (Number.isFinite(shimMs)) deps.metrics.shimStartup(shimMs);
    deps.log?.('debug', 'cni request timings (ms)', { command: cmd, handler: +ms.toFixed(2) });
    if (answer.error) {
      deps.log?.('warn', 'cni request failed', { command: cmd, ...answer.error, ms: Math.round(ms) });
      return reply.code(cniHttpStatus(answer.error)).send(answer);
    }
    return reply.code(200).send(answer);
  });

  app.get('/v1/status', async () => {
    const reason = deps.notReadyReason();
    const maps = await readMaps();
    return {
      node: deps.node,
      mode: deps.mode,
      version: deps.version ?? 'unknown',
      datapathMode: deps.datapathMode?.() ?? null,
      ready: reason === undefined,
      notReadyReason: reason ?? null,
      revision: deps.revision(),
      resourceVersion: deps.resourceVersion() ?? null,
      endpoints: deps.manager.list().length,
      identities: deps.identities?.() ?? 0,
      maps,
      mapPressure: mapPressure(maps),
      drops: { lastMinute: deps.flows?.dropsLastMinute() ?? 0, total: deps.flows?.dropsTotal ?? 0 },
      flows: { stored: deps.flows?.size ?? 0, capacity: deps.flows?.capacity ?? 0 },
    };
  });

  if (deps.flows) {
    registerFlowRoutes(app, { flows: deps.flows, onSlowFollower: () => deps.metrics.flowFollowerCut() });
  }

  app.get('/v1/wait', async (req, reply) => {
    const q = req.query as { resourceVersion?: string; timeoutMs?: string };
    if (!q.resourceVersion || !/^\d+$/.test(q.resourceVersion)) {
      return reply.code(400).send(apiError('PAL_BAD_REQUEST', 'resourceVersion must be an integer'));
    }
    const timeoutMs = q.timeoutMs === undefined ? 30_000 : Number(q.timeoutMs);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 600_000) {
      return reply.code(400).send(apiError('PAL_BAD_REQUEST', 'timeoutMs must be an integer in 0..600000'));
    }
    if (!deps.waitFor) {
      return reply.code(PAL_API_ERRORS.PAL_WAIT_UNSUPPORTED).send(apiError('PAL_WAIT_UNSUPPORTED',
        `${deps.mode} mode has no Kubernetes API state to wait for`));
    }
    try {
      return await deps.waitFor(q.resourceVersion, timeoutMs);
    } catch (err) {
      const code = (err as { code?: string }).code === 'PAL_WAIT_TIMEOUT' || /timeout|timed out/i.test(String((err as Error).message))
        ? 'PAL_WAIT_TIMEOUT' : 'PAL_INTERNAL';
      return reply.code(PAL_API_ERRORS[code]).send(apiError(code, (err as Error).message));
    }
  });

  app.get('/v1/endpoints', async () => deps.manager.list().map((r) => ({
    endpointId: r.endpointId,
    containerId: r.containerId,
    ifName: r.ifName,
    network: r.network,
    pod: r.podName ? `${r.podNamespace}/${r.podName}` : '',
    podUid: r.podUid,
    ipv4: r.ipv4,
    hostIfName: r.hostIfName,
    ifindex: r.ifindex,
    netns: r.netns,
    createdAt: r.createdAt,
    ...(deps.endpointDetails?.(r.endpointId) ?? {}),
  })));

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_req, reply) => {
    const reason = deps.notReadyReason();
    if (reason) return reply.code(503).send(apiError('PAL_NOT_READY', reason));
    return { ready: true };
  });
  app.get('/metrics', async (_req, reply) => {
    return reply.type('text/plain; version=0.0.4').send(await deps.metrics.render({
      endpoints: deps.manager.list().length,
      identities: deps.identities?.(),
      revision: deps.revision(),
      counters: deps.counters,
      serviceCounters: deps.serviceCounters,
      maps: deps.mapUsage,
      flows: deps.flows,
      onError: (what, err) => deps.log?.('warn', 'metrics: reading a source failed', { source: what, error: err.message }),
    }));
  });
  return app;
}

/** True when something answers on the socket path (another agent is running). */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Listens on the unix socket, replacing a stale socket file a crashed agent left
 * behind; refuses to start when another agent answers there.
 */
export async function listenOnSocket(app: FastifyInstance, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  if (await socketAlive(path)) throw new Error(`api socket ${path}: another agent is listening`);
  await rm(path, { force: true });
  await app.listen({ path });
  await chmod(path, 0o660);
}
