/**
 * The real ListWatchSource: plain GET requests on node:http(s) for paginated lists and
 * for the chunked JSON-lines watch stream, with the server, TLS material and credentials
 * of a `KubeConfigLike` (applyToHTTPSOptions; a client-node KubeConfig works as is and
 * then also refreshes exec/OIDC tokens).
 *
 * Lists are read as raw JSON on purpose: client-node's typed models rename fields that
 * are reserved words in TypeScript (NetworkPolicyIngressRule.from becomes `_from`), so a
 * typed list would turn `from` peers into "any peer" - failing open. Watches are read
 * here rather than with client-node's `Watch` so that the agent does not load undici and
 * client-node's models for them (see kubeconfig.ts: memory).
 */
import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import { HttpStatusError } from './errors.ts';
import { httpStatusOf, type ListResult, type ListWatchSource } from './informer.ts';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadClientNodeKubeConfig, type KubeConfigLike } from './kubeconfig.ts';
import type { ResourceInfo } from './resources.ts';

export type { KubeConfigLike };

export interface ClientNodeSourceOptions {
  /** Objects per list page (default 500, as client-go). */
  pageSize?: number;
  /**
   * Server-side watch timeout range, seconds: each watch asks for a random value in
   * [min, 2*min] so that agents spread their reconnects (client-go does the same).
   */
  minWatchTimeoutSeconds?: number;
  /** Timeout of one list page request, ms (default 60 s). */
  requestTimeoutMs?: number;
  /**
   * A watch silent for this long is closed and reopened, ms (default 90 s): a broken
   * connection may never report an error. Servers send bookmarks well within it.
   */
  watchIdleTimeoutMs?: number;
}

interface Page {
  items?: unknown[];
  metadata?: { resourceVersion?: string; continue?: string };
}

/** A failed API request, with the HTTP status the informer reacts to (404, 410). */
export class ApiRequestError extends HttpStatusError {
  readonly code = 'PAL_K8S_REQUEST';
  override readonly name = 'ApiRequestError';
}

/**
 * Loads a kubeconfig file (or the default loading rules when `path` is undefined) as
 * client-node's KubeConfig, for code that uses client-node's API classes. Loads
 * client-node; the agent's own requests use kubeconfig.ts's `loadApiConfig` instead.
 */
export function loadKubeConfig(path?: string): KubeConfig {
  return loadClientNodeKubeConfig(path);
}

/** The slim form, or the item itself when it is malformed (the informer logs it). */
function slimOrKeep(res: ResourceInfo, item: unknown): unknown {
  try {
    return res.slim(item);
  } catch {
    return item;
  }
}

export class ClientNodeSource implements ListWatchSource {
  readonly #kc: KubeConfigLike;
  readonly #server: string;
  readonly #pageSize: number;
  readonly #minWatchTimeout: number;
  readonly #requestTimeoutMs: number;
  readonly #watchIdleMs: number;

  constructor(kc: KubeConfigLike, opts: ClientNodeSourceOptions = {}) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.#kc = kc;
    this.#server = cluster.server.replace(/\/+$/, '');
    this.#pageSize = opts.pageSize ?? 500;
    this.#minWatchTimeout = opts.minWatchTimeoutSeconds ?? 300;
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
    this.#watchIdleMs = opts.watchIdleTimeoutMs ?? 90_000;
  }

  async list(res: ResourceInfo, signal: AbortSignal): Promise<ListResult> {
    // A continue token can expire (410) mid-way through a long list: start over once.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#listAll(res, signal);
      } catch (err) {
        if (httpStatusOf(err) !== 410 || attempt >= 1) throw err;
      }
    }
  }

  async #listAll(res: ResourceInfo, signal: AbortSignal): Promise<ListResult> {
    const items: unknown[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.#get(res.path, { limit: String(this.#pageSize), ...(cont ? { continue: cont } : {}) }, signal);
      // Slim page by page: holding 10k full pods until the end of the list would make the
      // initial sync's memory peak several times the store's size.
      for (const item of page.items ?? []) items.push(slimOrKeep(res, item));
      rv = page.metadata?.resourceVersion ?? rv;
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return { items, resourceVersion: rv };
  }

  async #get(path: string, query: Record<string, string>, signal: AbortSignal): Promise<Page> {
    const url = new URL(this.#server + path);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const opts: https.RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(opts);
    opts.headers = { ...opts.headers, accept: 'application/json' };
    const send = url.protocol === 'https:' ? https.request : http.request;
    const what = `listing ${path}`;
    const text = await new Promise<string>((resolve, reject) => {
      const req = send(url, { ...opts, method: 'GET', signal }, (resp) => {
        const chunks: Buffer[] = [];
        resp.on('data', (c: Buffer) => chunks.push(c));
        resp.on('error', (err) => reject(new ApiRequestError(`${what}: ${err.message}`, undefined, { cause: err })));
        resp.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          const status = resp.statusCode ?? 0;
          if (status === 200) return resolve(body);
          let reason = resp.statusMessage ?? '';
          try {
            reason = (JSON.parse(body) as { message?: string }).message ?? reason;
          } catch { /* not a Status object */ }
          reject(new ApiRequestError(`${what}: HTTP ${status}: ${reason}`, status));
        });
      });
      req.setTimeout(this.#requestTimeoutMs, () => {
        req.destroy(new Error(`no answer within ${this.#requestTimeoutMs} ms`));
      });
      req.on('error', (err) => reject(new ApiRequestError(`${what}: ${err.message}`, undefined, { cause: err })));
      req.end();
    });
    try {
      return JSON.parse(text) as Page;
    } catch (err) {
      throw new ApiRequestError(`${what}: invalid JSON: ${(err as Error).message}`, undefined, { cause: err });
    }
  }

  /**
   * Opens a watch stream. Resolves (with its abort function) once the server answered;
   * a non-200 answer or a failed connection is reported through `onDone` (with
   * `statusCode`), as is the end of the stream (null) and an idle timeout (an error
   * named `TimeoutError`, which the informer treats as a normal close).
   */
  async watch(
    res: ResourceInfo,
    resourceVersion: string,
    onEvent: (type: string, obj: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<() => void> {
    const timeoutSeconds = Math.round(this.#minWatchTimeout * (1 + Math.random()));
    const url = new URL(this.#server + res.path);
    url.searchParams.set('watch', 'true');
    url.searchParams.set('allowWatchBookmarks', 'true');
    url.searchParams.set('resourceVersion', resourceVersion);
    url.searchParams.set('timeoutSeconds', String(timeoutSeconds));
    const opts: https.RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(opts);
    opts.headers = { ...opts.headers, accept: 'application/json' };
    const send = url.protocol === 'https:' ? https.request : http.request;
    const controller = new AbortController();
    let done = false;
    let idle: NodeJS.Timeout | undefined;
    const finish = (err: unknown) => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      controller.abort();
      onDone(err);
    };
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        const err = new Error(`watch ${res.path}: no data for ${this.#watchIdleMs} ms`);
        err.name = 'TimeoutError';
        finish(err);
      }, this.#watchIdleMs);
      idle.unref();
    };
    const abort = () => finish(null);
    await new Promise<void>((answered) => {
      touch();
      const req = send(url, { ...opts, method: 'GET', signal: controller.signal }, (resp) => {
        const status = resp.statusCode ?? 0;
        if (status !== 200) {
          const chunks: Buffer[] = [];
          resp.on('data', (c: Buffer) => chunks.push(c));
          resp.on('error', () => {});
          resp.on('end', () => {
            let reason = resp.statusMessage ?? '';
            try {
              reason = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { message?: string }).message ?? reason;
            } catch { /* not a Status object */ }
            finish(new ApiRequestError(`watching ${res.path}: HTTP ${status}: ${reason}`, status));
            answered();
          });
          return;
        }
        answered();
        touch();
        resp.on('data', touch);
        resp.on('error', (err) => finish(done ? null : err));
        resp.on('close', () => finish(null));
        const lines = createInterface({ input: resp, crlfDelay: Infinity });
        // readline re-emits the response's errors (an abort is one): handled like it.
        lines.on('error', (err) => finish(done ? null : err));
        lines.on('line', (line) => {
          if (done || !line) return;
          let ev: { type?: unknown; object?: unknown };
          try {
            ev = JSON.parse(line) as typeof ev;
          } catch {
            return finish(new ApiRequestError(`watching ${res.path}: invalid JSON line`));
          }
          if (typeof ev.type === 'string') onEvent(ev.type, ev.object);
        });
      });
      req.on('error', (err) => {
        finish(controller.signal.aborted && done ? null
          : new ApiRequestError(`watching ${res.path}: ${err.message}`, undefined, { cause: err }));
        answered();
      });
      req.end();
    });
    return abort;
  }
}
