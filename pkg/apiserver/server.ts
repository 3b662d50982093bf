/**
 * HTTP layer of the lab API server: routing of the Kubernetes REST paths, content
 * negotiation (JSON, Table, PartialObjectMetadata, aggregated discovery), request bodies
 * (JSON, YAML, the four patch types), and watch streams (newline-delimited JSON events
 * over a chunked response, as client-go and @kubernetes/client-node read them).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import {
  aggregatedDiscovery,
  AGGREGATED_V2,
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  openApiV3Doc,
  openApiV3Index,
  SERVER_VERSION,
} from './discovery.ts';
import {
  ApiError,
  badRequest,
  cause,
  internal,
  invalid,
  methodNotSupported,
  notFound,
  notFoundPath,
  unsupportedMediaType,
} from './errors.ts';
import { isObj, metaOf, objAt, strAt, type KObject, type Obj } from './json.ts';
import { applyConfiguration } from './apply.ts';
import { jsonPatch, mergePatch, PATCH_SCHEMAS, strategicMergePatch } from './patch.ts';
import { Pager, type Page } from './paging.ts';
import { decodeProtobufObject } from './protobuf.ts';
import { apiVersionOf, type ResourceType } from './registry.ts';
import { matchFields, matchLabels, parseFieldSelector, parseLabelSelector } from './selectors.ts';
import type { ObjectFilter, Store, WatchEvent, WriteOptions } from './store.ts';
import { partialMetadata, toTable, type IncludeObject } from './table.ts';
import { matchProxyPath, proxyRequest, tcpDialer, type ProxyDialer } from './proxy.ts';

export interface HandlerOptions {
  store: Store;
  /** host:port clients should use (for /api serverAddressByClientCIDRs). */
  serverAddress: () => string;
  bookmarkIntervalMs: number;
  /** Delay of the BOOKMARK that follows any write (see watch()); 0 disables. */
  progressBookmarkMs: number;
  log?: (line: string) => void;
  /** How pods/proxy and nodes/proxy reach their target (proxy.ts); default TCP. */
  dial?: ProxyDialer;
}

const MAX_BODY = 16 * 1024 * 1024;

/** An open watch stream; `end()` closes it from the server side. */
export interface OpenWatch {
  end(): void;
}

export class Handler {
  private readonly opts: HandlerOptions;
  readonly watches = new Set<OpenWatch>();
  private readonly pager = new Pager();

  constructor(opts: HandlerOptions) {
    this.opts = opts;
  }

  private get store(): Store {
    return this.opts.store;
  }

  /** Entry point for node:http. Never throws; every failure becomes a Status response. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const started = Date.now();
    res.on('finish', () => this.opts.log?.(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - started}ms`));
    this.route(req, res).catch((err: unknown) => {
      const e = err instanceof ApiError ? err : internal(err instanceof Error ? err.message : String(err));
      if (res.headersSent) {
        res.end();
        return;
      }
      sendJson(res, e.code, e.toStatus());
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://lab');
    const segs = url.pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
    const accept = req.headers.accept ?? '';
    const [s0, s1, s2] = segs;
    if (segs.length === 0) {
      sendJson(res, 200, { paths: ['/api', '/api/v1', '/apis', '/healthz', '/livez', '/openapi/v3', '/readyz', '/version'] });
      return;
    }
    if (s0 === 'version' && segs.length === 1) return sendJson(res, 200, SERVER_VERSION);
    if ((s0 === 'healthz' || s0 === 'livez' || s0 === 'readyz') && segs.length === 1) {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return;
    }
    if (s0 === 'openapi') {
      if (s1 === 'v3' && segs.length === 2) return sendJson(res, 200, openApiV3Index(this.store.registry));
      if (s1 === 'v3' && (s2 === 'api' || s2 === 'apis')) {
        const rest = segs.slice(3);
        const [g, v] = s2 === 'api' ? ['', rest[0] ?? ''] : [rest[0] ?? '', rest[1] ?? ''];
        if ((g === '' && v === 'v1') || this.store.registry.hasGroupVersion(g, v)) {
          return sendJson(res, 200, openApiV3Doc(this.store.registry, g, v));
        }
      }
      // /openapi/v2 is deliberately absent: kubectl treats that as "no client-side schema".
      throw notFoundPath(url.pathname);
    }
    if (s0 === 'api') {
      if (segs.length === 1) {
        if (wantsAggregated(accept)) return sendJson(res, 200, aggregatedDiscovery(this.store.registry, true), AGGREGATED_V2);
        return sendJson(res, 200, apiVersions(this.opts.serverAddress()));
      }
      if (s1 !== 'v1') throw notFoundPath(url.pathname);
      const proxy = matchProxyPath(url.pathname);
      if (proxy) return proxyRequest(req, res, this.store, proxy, url.search, this.opts.dial ?? tcpDialer);
      return this.resource(req, res, url, '', 'v1', segs.slice(2));
    }
    if (s0 === 'apis') {
      if (segs.length === 1) {
        if (wantsAggregated(accept)) return sendJson(res, 200, aggregatedDiscovery(this.store.registry, false), AGGREGATED_V2);
        return sendJson(res, 200, apiGroupList(this.store.registry));
      }
      if (segs.length === 2) {
        const g = apiGroup(this.store.registry, s1 ?? '');
        if (!g) throw notFoundPath(url.pathname);
        return sendJson(res, 200, g);
      }
      return this.resource(req, res, url, s1 ?? '', s2 ?? '', segs.slice(3));
    }
    throw notFoundPath(url.pathname);
  }

  private async resource(req: IncomingMessage, res: ServerResponse, url: URL, group: string, version: string, rest: string[]): Promise<void> {
    const reg = this.store.registry;
    if (!reg.hasGroupVersion(group, version)) throw notFoundPath(url.pathname);
    if (rest.length === 0) {
      if (req.method !== 'GET') throw new ApiError(405, 'MethodNotAllowed', 'only GET is supported on a discovery path');
      return sendJson(res, 200, apiResourceList(reg, group, version));
    }
    let ns: string | undefined;
    let plural: string;
    let name: string | undefined;
    let sub: string | undefined;
    const nsScoped = rest[0] === 'namespaces' && rest.length >= 3 ? reg.lookup(group, version, rest[2] as string) : undefined;
    if (nsScoped?.namespaced) {
      ns = rest[1];
      [plural, name, sub] = [rest[2] as string, rest[3], rest[4]];
      if (rest.length > 5) throw notFoundPath(url.pathname);
    } else {
      [plural, name, sub] = [rest[0] as string, rest[1], rest[2]];
      if (rest.length > 3) throw notFoundPath(url.pathname);
    }
    const t = reg.lookup(group, version, plural);
    if (!t) throw notFoundPath(url.pathname);
    if (!t.namespaced) ns = undefined;
    if (sub !== undefined && !(sub === 'status' && t.statusSubresource)) throw notFoundPath(url.pathname);
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    const dryRun = q.getAll('dryRun').includes('All');
    const fv = q.get('fieldValidation') ?? 'Warn';
    if (fv !== 'Strict' && fv !== 'Warn' && fv !== 'Ignore') throw badRequest(`fieldValidation must be one of Ignore, Warn, Strict (got "${fv}")`);
    const warnings: string[] = [];
    const wopts: WriteOptions = { dryRun, fieldValidation: fv, warnings };
    const sendWarnings = (): void => {
      // Warning headers as upstream sends them (RFC 7234 code 299); kubectl prints them.
      if (warnings.length > 0 && !res.headersSent) res.setHeader('Warning', warnings.map((w) => `299 - ${JSON.stringify(w)}`));
    };
    if (t.namespaced && ns === undefined) {
      // Across all namespaces only list and watch exist, as upstream.
      if (name !== undefined) throw notFoundPath(url.pathname);
      if (method !== 'GET') throw methodNotSupported(t, `${method} across all namespaces`);
    }
    const accept = req.headers.accept ?? '';

    if (method === 'GET') {
      if (name !== undefined) return this.respondObject(res, t, this.store.get(t, ns, name), accept, q);
      if (isTrue(q.get('watch'))) return this.watch(req, res, t, ns, q, accept);
      return this.list(res, t, ns, q, accept);
    }
    if (method === 'POST') {
      if (name !== undefined) throw methodNotSupported(t, 'create on a named object');
      const body = objBody(await readBody(req));
      this.checkBodyIdentity(t, body, ns, undefined);
      const created = this.store.create(t, body, wopts);
      sendWarnings();
      return this.respondObject(res, t, created, accept, q, 201);
    }
    if (method === 'PUT') {
      if (name === undefined) throw methodNotSupported(t, 'update on a collection');
      const body = objBody(await readBody(req));
      this.checkBodyIdentity(t, body, ns, name);
      const sr = sub === 'status' ? 'status' : undefined;
      const updated = this.store.update(t, body, sr, wopts);
      sendWarnings();
      return this.respondObject(res, t, updated, accept, q);
    }
    if (method === 'PATCH') {
      if (name === undefined) throw methodNotSupported(t, 'patch on a collection');
      const out = await this.patch(req, t, ns, name, sub === 'status' ? 'status' : undefined, q, wopts);
      sendWarnings();
      return this.respondObject(res, t, out.obj, accept, q, out.created ? 201 : 200);
    }
    if (method === 'DELETE') {
      const body = await readBody(req);
      if (body !== undefined && !isObj(body)) throw badRequest('DeleteOptions must be a JSON object');
      const opts = isObj(body) ? body : {};
      const pre = objAt(opts.preconditions);
      const dryDel = dryRun || (Array.isArray(opts.dryRun) && opts.dryRun.includes('All'));
      if (name === undefined) {
        const filter = this.filterFor(t, ns, q);
        const items = this.store.list(t, ns, filter).items;
        const deleted = items.map((o) => this.store.delete(t, o.metadata.namespace, o.metadata.name ?? '', { dryRun: dryDel }));
        return sendJson(res, 200, { kind: t.listKind, apiVersion: apiVersionOf(t), metadata: { resourceVersion: this.store.resourceVersion() }, items: deleted });
      }
      const del = this.store.delete(t, ns, name, {
        dryRun: dryDel,
        preconditions: { uid: strAt(pre.uid), resourceVersion: strAt(pre.resourceVersion) },
      });
      return this.respondObject(res, t, del, accept, q, 200);
    }
    throw methodNotSupported(t, method);
  }

  /** Body namespace/name must agree with the URL; missing ones are filled in from it. */
  private checkBodyIdentity(t: ResourceType, body: KObject, ns: string | undefined, name: string | undefined): void {
    const meta = metaOf(body);
    if (body.apiVersion !== undefined && body.apiVersion !== apiVersionOf(t)) {
      throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersionOf(t)})`);
    }
    if (body.kind !== undefined && body.kind !== t.kind) {
      throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (${t.kind})`);
    }
    if (t.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== ns) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = ns;
    }
    if (name !== undefined) {
      if (meta.name !== undefined && meta.name !== name) {
        throw badRequest(`the name of the object (${meta.name}) does not match the name on the URL (${name})`);
      }
      meta.name = name;
    }
  }

  private async patch(
    req: IncomingMessage,
    t: ResourceType,
    ns: string | undefined,
    name: string,
    sub: 'status' | undefined,
    q: URLSearchParams,
    wopts: WriteOptions,
  ): Promise<{ obj: KObject; created: boolean }> {
    const ctype = (req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    const raw = await readRaw(req);
    if (ctype === 'application/apply-patch+yaml') {
      return this.apply(t, ns, name, sub, raw, q, wopts);
    }
    let patch: unknown;
    try {
      patch = JSON.parse(raw);
    } catch (err) {
      throw badRequest(`error decoding patch: ${(err as Error).message}`);
    }
    const current = this.store.get(t, ns, name);
    let next: unknown;
    switch (ctype) {
      case 'application/merge-patch+json':
        next = mergePatch(current, patch);
        break;
      case 'application/json-patch+json':
        next = jsonPatch(current, patch);
        break;
      case 'application/strategic-merge-patch+json':
        // Upstream refuses strategic merge on custom resources: they carry no patch metadata.
        if (t.custom) throw new ApiError(415, 'UnsupportedMediaType', `strategic merge patch is not supported for ${t.group}/${t.version}, Kind=${t.kind}: use merge or json patch`);
        next = strategicMergePatch(current, patch, PATCH_SCHEMAS[t.kind] ?? {});
        break;
      default:
        throw unsupportedMediaType(ctype);
    }
    if (!isObj(next)) throw badRequest('patch result is not an object');
    const meta = metaOf(next);
    if (meta.name !== name) throw badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`);
    if (t.namespaced && meta.namespace !== ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    // A patch is conditional only if it names a resourceVersion itself.
    if (!meta.resourceVersion) meta.resourceVersion = current.metadata.resourceVersion;
    return { obj: this.store.update(t, next, sub, wopts), created: false };
  }

  /** Server-side apply (see apply.ts for the subset). */
  private apply(
    t: ResourceType,
    ns: string | undefined,
    name: string,
    sub: 'status' | undefined,
    raw: string,
    q: URLSearchParams,
    wopts: WriteOptions,
  ): { obj: KObject; created: boolean } {
    const manager = q.get('fieldManager');
    if (!manager) {
      throw invalid('meta.k8s.io', 'PatchOptions', '', [cause.required('fieldManager')]);
    }
    let cfg: unknown;
    try {
      cfg = parseYaml(raw);
    } catch (err) {
      throw badRequest(`error decoding YAML: ${(err as Error).message}`);
    }
    if (!isObj(cfg)) throw badRequest('apply configuration must be an object');
    const body = cfg as KObject;
    metaOf(body);
    if (body.apiVersion === undefined || body.kind === undefined) {
      throw badRequest('apply configuration must set apiVersion and kind');
    }
    this.checkBodyIdentity(t, body, ns, name);
    let current: KObject | undefined;
    try {
      current = this.store.get(t, ns, name);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
    }
    if (!current && sub === 'status') throw notFound(t, name);
    const schema = t.custom ? {} : (PATCH_SCHEMAS[t.kind] ?? {});
    const next = applyConfiguration(current, body, manager, schema, apiVersionOf(t), isTrue(q.get('force')));
    if (!current) return { obj: this.store.create(t, next, wopts), created: true };
    const meta = metaOf(next);
    meta.resourceVersion = body.metadata.resourceVersion ?? current.metadata.resourceVersion;
    return { obj: this.store.update(t, next, sub, wopts), created: false };
  }

  private filterFor(t: ResourceType, ns: string | undefined, q: URLSearchParams): ObjectFilter {
    const labels = parseLabelSelector(q.get('labelSelector') ?? '');
    const fields = parseFieldSelector(q.get('fieldSelector') ?? '', ['metadata.name', 'metadata.namespace', ...(t.selectableFields ?? [])]);
    return (o) =>
      (ns === undefined || !t.namespaced || o.metadata.namespace === ns) && matchLabels(labels, o.metadata.labels) && matchFields(fields, o);
  }

  private list(res: ServerResponse, t: ResourceType, ns: string | undefined, q: URLSearchParams, accept: string): void {
    const limit = Pager.limit(q.get('limit'));
    const token = q.get('continue');
    let page: Page;
    if (token) {
      page = this.pager.next(token, limit, Number(this.store.oldestResourceVersion()));
    } else {
      const { items, resourceVersion } = this.store.list(t, ns, this.filterFor(t, ns, q));
      page = this.pager.first(items, resourceVersion, limit);
    }
    const metadata: Obj = { resourceVersion: page.resourceVersion };
    if (page.continue) {
      metadata.continue = page.continue;
      metadata.remainingItemCount = page.remainingItemCount;
    }
    if (accept.includes('as=Table')) {
      const table = toTable(t, page.items, page.resourceVersion, includeObject(q));
      return sendJson(res, 200, { ...table, metadata });
    }
    if (accept.includes('as=PartialObjectMetadataList')) {
      return sendJson(res, 200, { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata, items: page.items.map(partialMetadata) });
    }
    // Typed lists of built-in kinds carry no apiVersion/kind on their items, as upstream.
    const out = t.custom ? page.items : page.items.map(({ apiVersion: _a, kind: _k, ...rest }) => rest);
    sendJson(res, 200, { kind: t.listKind, apiVersion: apiVersionOf(t), metadata, items: out });
  }

  private respondObject(res: ServerResponse, t: ResourceType, o: KObject, accept: string, q: URLSearchParams, code = 200): void {
    if (accept.includes('as=Table')) return sendJson(res, code, toTable(t, [o], o.metadata.resourceVersion ?? '', includeObject(q)));
    if (accept.includes('as=PartialObjectMetadata')) return sendJson(res, code, partialMetadata(o));
    sendJson(res, code, o);
  }

  private watch(req: IncomingMessage, res: ServerResponse, t: ResourceType, ns: string | undefined, q: URLSearchParams, accept: string): void {
    const filter = this.filterFor(t, ns, q);
    const asTable = accept.includes('as=Table');
    const include = includeObject(q);
    const bookmarks = isTrue(q.get('allowWatchBookmarks'));
    const initialEvents = isTrue(q.get('sendInitialEvents'));
    let firstTable = true;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    let open = true;
    // The newest resourceVersion this stream has told its client (event or bookmark).
    let sentRv = '';
    const write = (e: WatchEvent | { type: 'BOOKMARK' | 'ERROR'; object: Obj }): void => {
      if (!open) return;
      let object: Obj = e.object;
      if (asTable && (e.type === 'ADDED' || e.type === 'MODIFIED' || e.type === 'DELETED')) {
        object = toTable(t, [e.object as KObject], String((e.object as KObject).metadata.resourceVersion ?? ''), include, firstTable);
        firstTable = false;
      }
      if (e.type !== 'ERROR') sentRv = String((e.object as KObject).metadata?.resourceVersion ?? sentRv);
      res.write(`${JSON.stringify({ type: e.type, object })}\n`);
    };
    let unsubscribe = (): void => undefined;
    let bookmarkTimer: NodeJS.Timeout | undefined;
    let progressTimer: NodeJS.Timeout | undefined;
    let stopProgress = (): void => undefined;
    let timeoutTimer: NodeJS.Timeout | undefined;
    const handle: OpenWatch = {
      end: () => {
        if (!open) return;
        open = false;
        unsubscribe();
        clearInterval(bookmarkTimer);
        clearTimeout(progressTimer);
        stopProgress();
        clearTimeout(timeoutTimer);
        this.watches.delete(handle);
        res.end();
      },
    };
    this.watches.add(handle);
    req.on('close', handle.end);
    res.on('close', handle.end);
    const bookmark = (annotations?: Record<string, string>): void => {
      sentRv = this.store.resourceVersion();
      const metadata: Obj = { resourceVersion: sentRv };
      if (annotations) metadata.annotations = annotations;
      write({ type: 'BOOKMARK', object: { kind: t.kind, apiVersion: apiVersionOf(t), metadata } });
    };
    try {
      const from = initialEvents ? undefined : (q.get('resourceVersion') ?? undefined);
      unsubscribe = this.store.watch(t, from, filter, write, handle.end);
    } catch (err) {
      // The real server reports an expired resourceVersion inside the stream: an ERROR
      // event carrying a 410 Status, then the end of the response.
      const e = err instanceof ApiError ? err : internal(String(err));
      write({ type: 'ERROR', object: e.toStatus() });
      handle.end();
      return;
    }
    if (initialEvents && bookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    if (bookmarks && this.opts.bookmarkIntervalMs > 0) bookmarkTimer = setInterval(() => bookmark(), this.opts.bookmarkIntervalMs);
    // Progress bookmarks: shortly after any write, a watch that allows bookmarks learns
    // the new resourceVersion even when the write was to another resource. Clients that
    // wait until they have "seen" a resourceVersion (the lab waits on the agents that
    // way) then never wait for the periodic bookmark.
    if (bookmarks && this.opts.progressBookmarkMs > 0) {
      stopProgress = this.store.onWrite(() => {
        progressTimer ??= setTimeout(() => {
          progressTimer = undefined;
          if (this.store.resourceVersion() !== sentRv) bookmark();
        }, this.opts.progressBookmarkMs);
      });
    }
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    if (timeout > 0) timeoutTimer = setTimeout(handle.end, timeout * 1000);
  }
}

function isTrue(v: string | null): boolean {
  return v === '1' || v === 'true';
}

function includeObject(q: URLSearchParams): IncludeObject {
  const v = q.get('includeObject');
  return v === 'None' || v === 'Object' ? v : 'Metadata';
}

function wantsAggregated(accept: string): boolean {
  return accept.includes('as=APIGroupDiscoveryList') && accept.includes('v=v2') && accept.includes('g=apidiscovery.k8s.io');
}

function sendJson(res: ServerResponse, code: number, body: unknown, contentType = 'application/json'): void {
  const data = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

async function readRaw(req: IncomingMessage): Promise<string> {
  return (await readBytes(req)).toString('utf8');
}

async function readBytes(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new ApiError(413, 'RequestEntityTooLarge', 'request entity too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Decodes a JSON or YAML request body. */
async function readBody(req: IncomingMessage): Promise<unknown> {
  const bytes = await readBytes(req);
  const ctype = (req.headers['content-type'] ?? 'application/json').split(';')[0]?.trim();
  if (ctype === 'application/vnd.kubernetes.protobuf') return decodeProtobufObject(bytes);
  const raw = bytes.toString('utf8');
  if (raw.trim() === '') return undefined;
  try {
    if (ctype === 'application/yaml' || ctype === 'application/x-yaml') return parseYaml(raw);
    return JSON.parse(raw);
  } catch (err) {
    throw badRequest(`error decoding request body: ${(err as Error).message}`);
  }
}

function objBody(v: unknown): KObject {
  if (!isObj(v)) throw badRequest('the body of the request must be a JSON object');
  if (v.metadata !== undefined && !isObj(v.metadata)) throw badRequest('metadata must be an object');
  metaOf(v);
  return v as KObject;
}
