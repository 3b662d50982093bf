/**
 * `GET /v1/flows` (docs/agent-api.md#get-v1flows): recent flow records as JSON, or with
 * `follow=1` an NDJSON stream of the backlog and then every new matching record.
 *
 * A follow stream is bounded: at most MAX_FOLLOWERS at once (503 PAL_BUSY beyond), and a
 * client that lets more than MAX_QUEUED records pile up in its socket is disconnected
 * rather than buffered without bound. A keep-alive empty line goes out after
 * KEEPALIVE_MS without a record, so proxies in between do not time the stream out.
 */
import type { FastifyInstance } from 'fastify';
import { matchesFilter, type FlowStore } from '../flow/store.ts';
import { FlowQueryError, parseFlowQuery } from '../flow/query.ts';
import type { FlowRecord } from '../flow/types.ts';
import { apiError } from './errors.ts';

export const MAX_FOLLOWERS = 64;
export const MAX_QUEUED = 1024;
export const KEEPALIVE_MS = 15_000;

export interface FlowRouteOptions {
  flows: FlowStore;
  /** Called when a follow stream is cut for being slow. */
  onSlowFollower?: () => void;
  keepAliveMs?: number;
}

export function registerFlowRoutes(app: FastifyInstance, o: FlowRouteOptions): void {
  let followers = 0;
  const open = new Set<() => void>();
  // Follow streams never end on their own: without this, closing the server would wait
  // for them forever (fastify only closes idle connections).
  app.addHook('preClose', (done) => {
    for (const end of [...open]) end();
    done();
  });
  app.get('/v1/flows', async (req, reply) => {
    let q;
    try {
      q = parseFlowQuery(req.query as Record<string, unknown>, o.flows.capacity);
    } catch (err) {
      if (err instanceof FlowQueryError) return reply.code(400).send(apiError('PAL_BAD_REQUEST', err.message));
      throw err;
    }
    // HEAD never streams: it would hold a connection open with nothing to send.
    if (!q.follow || req.method === 'HEAD') return { items: o.flows.query(q.filter) };
    if (followers >= MAX_FOLLOWERS) {
      return reply.code(503).send(apiError('PAL_BUSY', `too many follow streams open (at most ${MAX_FOLLOWERS})`));
    }

    // The stream outlives this handler: fastify hands the raw response over.
    followers++;
    reply.hijack();
    const res = reply.raw;
    const filter = { ...q.filter, since: undefined, limit: undefined };
    let queued = 0;
    let closed = false;
    let keepAlive: NodeJS.Timeout | undefined;
    const finish = () => {
      if (closed) return;
      closed = true;
      open.delete(finish);
      followers--;
      unsubscribe();
      clearTimeout(keepAlive);
      if (!res.writableEnded) res.end();
    };
    const armKeepAlive = () => {
      clearTimeout(keepAlive);
      keepAlive = setTimeout(() => {
        if (closed) return;
        res.write('\n');
        armKeepAlive();
      }, o.keepAliveMs ?? KEEPALIVE_MS);
      keepAlive.unref();
    };
    const send = (r: FlowRecord) => {
      if (closed) return;
      if (queued >= MAX_QUEUED) {
        o.onSlowFollower?.();
        res.destroy();
        finish();
        return;
      }
      queued++;
      res.write(`${JSON.stringify(r)}\n`, () => { queued--; });
      armKeepAlive();
    };
    // Subscribed before the backlog is read: a record arriving in between is not lost
    // (the backlog read is synchronous, so it cannot be sent twice either).
    const unsubscribe = o.flows.subscribe((r) => { if (matchesFilter(r, filter)) send(r); });
    open.add(finish);
    res.on('close', finish);
    res.on('error', finish);
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.flushHeaders();
    for (const r of o.flows.query(q.filter)) send(r);
    armKeepAlive();
    return reply;
  });
}
