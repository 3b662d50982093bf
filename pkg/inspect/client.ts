/**
 * The plugin's way to the cluster: the kubeconfig's server and credentials
 * (@kubernetes/client-node's KubeConfig: every auth method kubectl supports), JSON GETs,
 * the cluster view the agents' informers would build, and requests to agents through the
 * API server's pods/proxy subresource (JSON and NDJSON streams).
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { HttpStatusError } from '../k8s/errors.ts';
import { loadClientNodeKubeConfig } from '../k8s/kubeconfig.ts';
import { RESOURCES, keyOf, type AnyResource, type ResourceInfo } from '../k8s/resources.ts';
import type { Namespace, NetworkPolicy, Node, Pod } from '../policy/snapshot.ts';
import type { ClusterView } from './analysis.ts';
import { agentProxyPath } from './agents.ts';

/** The API server or an agent could not be reached or answered an error (exit status 2). */
export class ReachError extends HttpStatusError {
  readonly code = 'PAL_INSPECT_UNREACHABLE';
  override readonly name = 'ReachError';
}

/** A kubeconfig that names no usable cluster or context (exit status 1). */
export class ConfigError extends Error {
  readonly code = 'PAL_INSPECT_CONFIG';
}

export interface ClientOptions {
  kubeconfig?: string;
  context?: string;
  requestTimeoutMs: number;
}

/** An agent pod, as found by label in the agent namespace. */
export interface AgentPod {
  namespace: string;
  name: string;
  node: string;
  port: number;
  ready: boolean;
}

type Json = Record<string, unknown>;

export class InspectClient {
  readonly kc: KubeConfig;
  readonly server: string;
  readonly #timeoutMs: number;

  constructor(opts: ClientOptions) {
    let kc: KubeConfig;
    try {
      kc = loadClientNodeKubeConfig(opts.kubeconfig);
    } catch (err) {
      throw new ConfigError((err as Error).message, { cause: err });
    }
    if (opts.context !== undefined) {
      if (!kc.getContextObject(opts.context)) {
        throw new ConfigError(`context "${opts.context}" not found in the kubeconfig (have: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})`);
      }
      kc.setCurrentContext(opts.context);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new ConfigError('the kubeconfig has no current cluster');
    this.kc = kc;
    this.server = cluster.server.replace(/\/+$/, '');
    this.#timeoutMs = opts.requestTimeoutMs;
  }

  /** The current context's namespace (kubectl's default for -n). */
  get namespace(): string {
    const ctx = this.kc.getContextObject(this.kc.getCurrentContext());
    return ctx?.namespace || 'default';
  }

  async #request(path: string, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const url = new URL(this.server + path);
    const opts: https.RequestOptions = {};
    try {
      await this.kc.applyToHTTPSOptions(opts);
    } catch (err) {
      throw new ConfigError(`credentials: ${(err as Error).message}`, { cause: err });
    }
    opts.headers = { ...opts.headers, accept: 'application/json' };
    const send = url.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = send(url, { ...opts, method: 'GET', ...(signal ? { signal } : {}) }, resolve);
      req.setTimeout(this.#timeoutMs, () => req.destroy(new Error(`no answer within ${this.#timeoutMs} ms`)));
      req.on('error', (err) => reject(new ReachError(`GET ${url.pathname}: ${err.message}`, undefined, { cause: err })));
      req.end();
    });
  }

  /** GET a JSON document; a non-2xx answer is a ReachError with the server's message. */
  async getJson<T = Json>(path: string): Promise<T> {
    const res = await this.#request(path);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const msg = (json as { message?: string } | undefined)?.message ?? (text.trim().slice(0, 200) || res.statusMessage);
      throw new ReachError(`GET ${path.split('?')[0]}: HTTP ${status}: ${msg}`, status);
    }
    if (json === undefined) throw new ReachError(`GET ${path.split('?')[0]}: not JSON`);
    return json as T;
  }

  /** Items of a list (all pages). */
  async list(path: string, query: Record<string, string> = {}): Promise<Json[]> {
    const items: Json[] = [];
    let cont = '';
    do {
      const q = new URLSearchParams({ ...query, limit: '500', ...(cont ? { continue: cont } : {}) });
      const page = await this.getJson<{ items?: Json[]; metadata?: { continue?: string } }>(`${path}?${q}`);
      items.push(...(page.items ?? []));
      cont = page.metadata?.continue ?? '';
    } while (cont);
    return items;
  }

  async #slimList(res: ResourceInfo, optional = false): Promise<AnyResource[]> {
    let items: Json[];
    try {
      items = await this.list(res.path);
    } catch (err) {
      // An absent CRD (PalisadeNetworkPolicy not installed) means "none", as for the agents.
      if (optional && err instanceof ReachError && err.statusCode === 404) return [];
      throw err;
    }
    const out: AnyResource[] = [];
    for (const it of items) {
      try {
        out.push(res.slim({ ...it, kind: res.objectKind }));
      } catch { /* malformed objects are skipped, as the agents' informers do */ }
    }
    return out;
  }

  /** Pods, namespaces, nodes and policies, slimmed and keyed exactly as the agents keep them. */
  async clusterView(): Promise<ClusterView> {
    const [pods, namespaces, nodes, nps, pnps] = await Promise.all([
      this.#slimList(RESOURCES.pods), this.#slimList(RESOURCES.namespaces), this.#slimList(RESOURCES.nodes),
      this.#slimList(RESOURCES.networkPolicies), this.#slimList(RESOURCES.palisadeNetworkPolicies, true),
    ]);
    return {
      pods: new Map(pods.map((p) => [keyOf('pods', p), p as Pod])),
      namespaces: new Map(namespaces.map((n) => [keyOf('namespaces', n), n as Namespace])),
      nodes: new Map(nodes.map((n) => [keyOf('nodes', n), n as Node])),
      policies: new Map([...nps, ...pnps].map((p) => [keyOf('policies', p), p as NetworkPolicy])),
      resourceVersion: '',
    };
  }

  /** Agent pods in `namespace` selected by `selector`, one per node (the newest wins). */
  async agentPods(namespace: string, selector: string, defaultPort: number): Promise<AgentPod[]> {
    const items = await this.list(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`, { labelSelector: selector });
    const byNode = new Map<string, AgentPod & { created: string }>();
    for (const it of items) {
      const meta = (it.metadata ?? {}) as Json;
      const spec = (it.spec ?? {}) as Json;
      const status = (it.status ?? {}) as Json;
      const node = typeof spec.nodeName === 'string' ? spec.nodeName : '';
      if (!node || typeof meta.name !== 'string') continue;
      let port = defaultPort;
      for (const c of Array.isArray(spec.containers) ? spec.containers as Json[] : []) {
        const p = (Array.isArray(c.ports) ? c.ports as Json[] : []).find((x) => x.name === 'health');
        if (p && typeof p.containerPort === 'number') port = p.containerPort;
      }
      const conds = Array.isArray(status.conditions) ? status.conditions as Json[] : [];
      const ready = status.phase === 'Running' && conds.some((c) => c.type === 'Ready' && c.status === 'True');
      const created = typeof meta.creationTimestamp === 'string' ? meta.creationTimestamp : '';
      const prev = byNode.get(node);
      if (!prev || created > prev.created || (ready && !prev.ready)) {
        byNode.set(node, { namespace, name: meta.name, node, port, ready, created });
      }
    }
    return [...byNode.values()].map(({ created: _created, ...a }) => a).sort((a, b) => a.node.localeCompare(b.node));
  }

  /** GET a JSON route of an agent through pods/proxy. */
  agentJson<T = Json>(a: AgentPod, path: string): Promise<T> {
    return this.getJson<T>(agentProxyPath(a.namespace, a.name, a.port, path));
  }

  /**
   * Streams an agent's NDJSON route through pods/proxy: calls `onLine` for every
   * non-empty line (empty lines are keep-alives) until the stream ends or `signal` aborts.
   */
  async agentStream(a: AgentPod, path: string, onLine: (line: string) => void, signal: AbortSignal): Promise<void> {
    const p = agentProxyPath(a.namespace, a.name, a.port, path);
    const res = await this.#request(p, signal);
    // A stream is quiet for as long as nothing happens: no idle timeout on the response.
    res.socket?.setTimeout(0);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      let text = '';
      for await (const c of res) text += String(c);
      let msg = text.trim().slice(0, 200);
      try {
        msg = (JSON.parse(text) as { message?: string }).message ?? msg;
      } catch { /* not JSON */ }
      throw new ReachError(`GET ${p.split('?')[0]}: HTTP ${status}: ${msg}`, status);
    }
    let buf = '';
    try {
      for await (const c of res) {
        buf += String(c);
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) onLine(line);
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      throw new ReachError(`streaming from ${a.node}: ${(err as Error).message}`, undefined, { cause: err });
    }
  }
}
