/**
 * An in-memory Kubernetes API server for the lab and for integration tests. It speaks
 * the wire protocol kubectl 1.32 and @kubernetes/client-node 2.x use (discovery, CRUD,
 * the four patch types, list/watch with bookmarks and 410 Gone, Tables for kubectl get,
 * CRDs) over plain HTTP. It is not a production server: no authentication or
 * authorization, no persistence, no admission, and only the defaulting and validation
 * Palisade relies on. See docs/lab-apiserver.md.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseAllDocuments } from 'yaml';
import { ApiError } from './errors.ts';
import { clone, isObj, type KObject, type Obj } from './json.ts';
import { EndpointSliceController } from './endpointslices.ts';
import { Handler } from './server.ts';
import { Store, type Subresource } from './store.ts';
import type { ProxyDialer } from './proxy.ts';

export { ApiError } from './errors.ts';
export { tcpDialer, type ProxyDialer, type ProxyTarget } from './proxy.ts';
export type { KObject } from './json.ts';

export interface ApiServerOptions {
  /** Address to bind; default 127.0.0.1. The lab binds its bridge address for agents in other netns. */
  host?: string;
  /** Port; 0 (default) picks a free one. */
  port?: number;
  /** YAML files of CustomResourceDefinitions registered before the server listens. */
  crdFiles?: string[];
  /** Watch events retained for resuming watches (default 10000); older resume points get 410. */
  compactAfter?: number;
  /** Interval of BOOKMARK events on watches that allow them (default 10000 ms; 0 disables). */
  bookmarkIntervalMs?: number;
  /**
   * Delay of the BOOKMARK sent, after any write, on every watch that allows bookmarks
   * (default 100 ms; 0 disables): watchers learn new resourceVersions promptly even when
   * the write was to another resource.
   */
  progressBookmarkMs?: number;
  /**
   * Runs the EndpointSlice controller (see endpointslices.ts): Services with selectors get
   * EndpointSlices of their Pods. Default false: the lab API server has no controllers
   * unless asked.
   */
  endpointSliceController?: boolean;
  /** IPv4 CIDR for Service ClusterIPs (default 10.96.0.0/16). */
  serviceCidr?: string;
  /** Receives one line per request (method, path, status, duration). */
  log?: (line: string) => void;
  /**
   * How the pods/proxy and nodes/proxy subresources reach their target (see proxy.ts);
   * default: TCP to the pod IP or the node's InternalIP.
   */
  dial?: ProxyDialer;
}

export interface ApiServer {
  /** Base URL, e.g. http://127.0.0.1:43121 */
  url: string;
  host: string;
  port: number;
  /** Ends open watches and stops listening. Idempotent. */
  close(): Promise<void>;
  /**
   * Writes a kubeconfig (context "lab", no credentials, mode 0600) pointing at this
   * server, or at `server` (e.g. the address agents in other network namespaces use when
   * the server listens on 0.0.0.0).
   */
  writeKubeconfig(path: string, opts?: { server?: string; namespace?: string }): Promise<void>;
  /** The latest issued resourceVersion. */
  resourceVersion(): string;
  /** Forces 410 Gone for every resourceVersion handed out so far (see Store.compact). */
  compact(): void;
  /** Ends every open watch stream from the server side (clients must reconnect). */
  closeWatches(): void;
  /** Number of open watch streams. */
  watchCount(): number;
  /** Direct store access with the same semantics as the HTTP API (for tests and the lab). */
  create(obj: Obj): KObject;
  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KObject;
  list(apiVersion: string, kind: string, namespace?: string): KObject[];
  update(obj: Obj, subresource?: Subresource): KObject;
  delete(apiVersion: string, kind: string, namespace: string | undefined, name: string): KObject;
  store: Store;
}

/**
 * A kubeconfig for `url` (plain HTTP, no credentials). `insecure-skip-tls-verify` is set
 * although no TLS is involved: @kubernetes/client-node 2.x refuses an http:// server
 * unless it is (kubectl does not care either way).
 */
export function kubeconfigYaml(url: string, namespace = 'default'): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: lab',
    '  cluster:',
    `    server: ${url}`,
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: lab',
    '  user: {}',
    'contexts:',
    '- name: lab',
    '  context:',
    '    cluster: lab',
    '    user: lab',
    `    namespace: ${namespace}`,
    'current-context: lab',
    '',
  ].join('\n');
}

/** Reads CRD documents from YAML files (multi-document files allowed). */
export async function loadCrdFiles(files: string[]): Promise<Obj[]> {
  const out: Obj[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (err) {
      throw new Error(`reading crd file ${f}: ${(err as Error).message}`, { cause: err });
    }
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new Error(`parsing crd file ${f}: ${doc.errors[0]?.message}`);
      const v: unknown = doc.toJS();
      if (v === null || v === undefined) continue;
      if (!isObj(v) || v.kind !== 'CustomResourceDefinition') {
        throw new Error(`crd file ${f}: document of kind ${isObj(v) ? String(v.kind) : typeof v} is not a CustomResourceDefinition`);
      }
      out.push(v);
    }
  }
  return out;
}

function typeFor(store: Store, apiVersion: string, kind: string) {
  const t = store.registry.byKind(apiVersion, kind);
  if (!t) throw new ApiError(404, 'NotFound', `no resource for ${apiVersion}, Kind=${kind}`);
  return t;
}

/** Starts the server; resolves once it listens. */
export async function startApiServer(opts: ApiServerOptions = {}): Promise<ApiServer> {
  const store = new Store({
    ...(opts.compactAfter !== undefined ? { compactAfter: opts.compactAfter } : {}),
    ...(opts.serviceCidr !== undefined ? { serviceCidr: opts.serviceCidr } : {}),
  });
  const crdType = store.type('apiextensions.k8s.io', 'v1', 'customresourcedefinitions');
  for (const crd of await loadCrdFiles(opts.crdFiles ?? [])) {
    try {
      store.create(crdType, crd);
    } catch (err) {
      throw new Error(`registering crd ${String((crd.metadata as Obj | undefined)?.name)}: ${(err as Error).message}`, { cause: err });
    }
  }
  const controller = opts.endpointSliceController ? new EndpointSliceController(store) : undefined;
  const host = opts.host ?? '127.0.0.1';
  let address = '';
  const handler = new Handler({
    store,
    serverAddress: () => address,
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 10_000,
    progressBookmarkMs: opts.progressBookmarkMs ?? 100,
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.dial ? { dial: opts.dial } : {}),
  });
  const server = createServer((req, res) => handler.handle(req, res));
  // Watches are long-lived; node's default request timeouts must not cut them.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      controller?.stop();
      reject(new Error(`listening on ${host}:${opts.port ?? 0}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  address = `${hostPart}:${port}`;
  const url = `http://${address}`;
  let closed: Promise<void> | undefined;
  const closeWatches = (): void => {
    for (const w of [...handler.watches]) w.end();
  };
  return {
    url,
    host,
    port,
    store,
    close() {
      closed ??= new Promise<void>((resolve) => {
        controller?.stop();
        closeWatches();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
    writeKubeconfig: (path, o = {}) => writeFile(path, kubeconfigYaml(o.server ?? url, o.namespace), { mode: 0o600 }),
    resourceVersion: () => store.resourceVersion(),
    compact: () => store.compact(),
    closeWatches,
    watchCount: () => handler.watches.size,
    create: (obj) => clone(store.create(typeFor(store, String(obj.apiVersion), String(obj.kind)), obj)),
    get: (apiVersion, kind, ns, name) => clone(store.get(typeFor(store, apiVersion, kind), ns, name)),
    list: (apiVersion, kind, ns) => clone(store.list(typeFor(store, apiVersion, kind), ns).items),
    update: (obj, sub) => clone(store.update(typeFor(store, String(obj.apiVersion), String(obj.kind)), obj, sub)),
    delete: (apiVersion, kind, ns, name) => clone(store.delete(typeFor(store, apiVersion, kind), ns, name)),
  };
}
