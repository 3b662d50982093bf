/**
 * The real ListWatchSource: @kubernetes/client-node 2.x. Lists go through the typed API
 * clients (paginated, `limit` per page); watches through client-node's `Watch`, which
 * speaks the chunked JSON-lines watch protocol and applies the kubeconfig's auth.
 */
import {
  CoreV1Api, CustomObjectsApi, KubeConfig, NetworkingV1Api, Watch,
} from '@kubernetes/client-node';
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
}

interface Page {
  items?: unknown[];
  metadata?: { resourceVersion?: string; _continue?: string; continue?: string };
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
  readonly #core: CoreV1Api;
  readonly #net: NetworkingV1Api;
  readonly #custom: CustomObjectsApi;
  readonly #watch: Watch;
  readonly #pageSize: number;
  readonly #minWatchTimeout: number;

  constructor(kc: KubeConfig, opts: ClientNodeSourceOptions = {}) {
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#net = kc.makeApiClient(NetworkingV1Api);
    this.#custom = kc.makeApiClient(CustomObjectsApi);
    this.#watch = new Watch(kc);
    this.#pageSize = opts.pageSize ?? 500;
    this.#minWatchTimeout = opts.minWatchTimeoutSeconds ?? 300;
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
      if (signal.aborted) throw new Error('list aborted');
      const page = await this.#page(res, cont);
      // Slim page by page: holding 10k full (deserialized) pods until the end of the list
      // would make the initial sync's memory peak several times the store's size.
      for (const item of page.items ?? []) items.push(slimOrKeep(res, item));
      rv = page.metadata?.resourceVersion ?? rv;
      cont = page.metadata?._continue ?? page.metadata?.continue;
    } while (cont);
    return { items, resourceVersion: rv };
  }

  #page(res: ResourceInfo, cont: string | undefined): Promise<Page> {
    const q = { limit: this.#pageSize, _continue: cont };
    switch (res.name) {
      case 'pods': return this.#core.listPodForAllNamespaces(q) as Promise<Page>;
      case 'namespaces': return this.#core.listNamespace(q) as Promise<Page>;
      case 'nodes': return this.#core.listNode(q) as Promise<Page>;
      case 'networkpolicies':
        return this.#net.listNetworkPolicyForAllNamespaces(q) as Promise<Page>;
      default: {
        // Custom resources: /apis/<group>/<version>/<plural>.
        const m = /^\/apis\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(res.path);
        if (!m) throw new Error(`listing ${res.name}: unsupported path ${res.path}`);
        return this.#custom.listClusterCustomObject({
          group: m[1]!, version: m[2]!, plural: m[3]!, ...q,
        }) as Promise<Page>;
      }
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
