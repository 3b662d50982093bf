/**
 * The real ListWatchSource on @kubernetes/client-node 2.x: the kubeconfig's server, TLS
 * and credentials (KubeConfig.applyToHTTPSOptions, which also refreshes exec/OIDC tokens
 * and honours proxies), plain GET requests for paginated lists, and client-node's `Watch`
 * for the chunked JSON-lines watch stream.
 *
 * Lists are read as raw JSON on purpose: client-node's typed models rename fields that
 * are reserved words in TypeScript (NetworkPolicyIngressRule.from becomes `_from`), so a
 * typed list would turn `from` peers into "any peer" - failing open.
 */
import http from 'node:http';
import https from 'node:https';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { httpStatusOf, type ListResult, type ListWatchSource } from './informer.ts';
import type { ResourceInfo } from './resources.ts';

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
}

interface Page {
  items?: unknown[];
  metadata?: { resourceVersion?: string; continue?: string };
}

/** A failed API request, with the HTTP status the informer reacts to (404, 410). */
export class ApiRequestError extends Error {
  readonly code = 'PAL_K8S_REQUEST';
  readonly statusCode: number | undefined;
  constructor(message: string, statusCode?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ApiRequestError';
    this.statusCode = statusCode;
  }
}

/** Loads a kubeconfig file (or the in-cluster service account when `path` is undefined). */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
  } catch (err) {
    throw new Error(`loading kubeconfig ${path ?? '(default)'}: ${(err as Error).message}`, { cause: err });
  }
  if (!kc.getCurrentCluster()) throw new Error(`loading kubeconfig ${path ?? '(default)'}: no current cluster`);
  return kc;
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
  readonly #kc: KubeConfig;
  readonly #server: string;
  readonly #watch: Watch;
  readonly #pageSize: number;
  readonly #minWatchTimeout: number;
  readonly #requestTimeoutMs: number;

  constructor(kc: KubeConfig, opts: ClientNodeSourceOptions = {}) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.#kc = kc;
    this.#server = cluster.server.replace(/\/+$/, '');
    this.#watch = new Watch(kc);
    this.#pageSize = opts.pageSize ?? 500;
    this.#minWatchTimeout = opts.minWatchTimeoutSeconds ?? 300;
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
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

  async watch(
    res: ResourceInfo,
    resourceVersion: string,
    onEvent: (type: string, obj: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<() => void> {
    const timeoutSeconds = Math.round(this.#minWatchTimeout * (1 + Math.random()));
    const controller = await this.#watch.watch(res.path, {
      allowWatchBookmarks: true, resourceVersion, timeoutSeconds,
    }, (type: string, obj: unknown) => onEvent(type, obj), (err: unknown) => onDone(err));
    return () => controller.abort();
  }
}
