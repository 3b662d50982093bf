/**
 * A minimal Kubernetes REST client for the lab (fetch over plain HTTP to the lab's API
 * server): create, get, replace, replace status, delete, and the current
 * resourceVersion. Paths follow the API conventions, so any conformant server works.
 */

export interface KubeRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

export type Json = Record<string, unknown>;

export class KubeError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'KubeError';
    this.status = status;
  }
}

/** Lowercase plural resource name of a kind (the API's default pluralisation). */
export function pluralOf(kind: string): string {
  const k = kind.toLowerCase();
  if (k.endsWith('y')) return `${k.slice(0, -1)}ies`;
  if (k.endsWith('s')) return `${k}es`;
  return `${k}s`;
}

export function collectionPath(apiVersion: string, kind: string, namespace?: string): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const ns = namespace ? `/namespaces/${namespace}` : '';
  return `${base}${ns}/${pluralOf(kind)}`;
}

export function objectPath(ref: KubeRef): string {
  return `${collectionPath(ref.apiVersion, ref.kind, ref.namespace)}/${ref.name}`;
}

function rvOf(obj: Json): number {
  const rv = (obj.metadata as Json | undefined)?.resourceVersion;
  const n = Number(rv);
  return Number.isFinite(n) ? n : 0;
}

export class KubeClient {
  readonly url: string;
  /** Highest resourceVersion seen in any write response. */
  lastWriteRV = 0;

  constructor(url: string) {
    this.url = url.replace(/\/$/, '');
  }

  private async call(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Json> {
    const init: RequestInit = { method, headers: { accept: 'application/json' } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { ...init.headers, 'content-type': contentType };
    }
    let res: Response;
    try {
      res = await fetch(this.url + path, init);
    } catch (err) {
      throw new KubeError(0, `${method} ${path}: ${(err as Error).message}`);
    }
    const text = await res.text();
    let json: Json = {};
    try { json = text ? (JSON.parse(text) as Json) : {}; } catch { /* not JSON */ }
    if (!res.ok) {
      const msg = typeof json.message === 'string' ? json.message : text.slice(0, 200);
      throw new KubeError(res.status, `${method} ${path}: ${res.status} ${msg}`);
    }
    if (method !== 'GET') this.lastWriteRV = Math.max(this.lastWriteRV, rvOf(json));
    return json;
  }

  create(obj: Json & { apiVersion: string; kind: string }): Promise<Json> {
    const md = (obj.metadata ?? {}) as Json;
    return this.call('POST', collectionPath(obj.apiVersion, obj.kind, md.namespace as string | undefined), obj);
  }

  get(ref: KubeRef): Promise<Json> {
    return this.call('GET', objectPath(ref));
  }

  /** GET that returns undefined on 404. */
  async find(ref: KubeRef): Promise<Json | undefined> {
    try {
      return await this.get(ref);
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return undefined;
      throw err;
    }
  }

  replace(ref: KubeRef, obj: Json): Promise<Json> {
    return this.call('PUT', objectPath(ref), obj);
  }

  replaceStatus(ref: KubeRef, obj: Json): Promise<Json> {
    return this.call('PUT', `${objectPath(ref)}/status`, obj);
  }

  /** JSON merge patch (RFC 7386) of an object, or of its status with `subresource`. */
  patch(ref: KubeRef, body: Json, subresource?: 'status'): Promise<Json> {
    return this.call('PATCH', `${objectPath(ref)}${subresource ? `/${subresource}` : ''}`, body, 'application/merge-patch+json');
  }

  /**
   * Watches a collection from `resourceVersion`: calls `onEvent` per event until the
   * server ends the stream (resolves) or `signal` aborts (resolves). An HTTP error or
   * an ERROR event rejects with a KubeError carrying the status (410: too old, relist).
   */
  async watch(apiVersion: string, kind: string, resourceVersion: string, onEvent: (type: string, obj: Json) => void, signal: AbortSignal): Promise<void> {
    const path = `${collectionPath(apiVersion, kind)}?watch=true&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(resourceVersion)}`;
    let res: Response;
    try {
      res = await fetch(this.url + path, { headers: { accept: 'application/json' }, signal });
    } catch (err) {
      if (signal.aborted) return;
      throw new KubeError(0, `watch ${path}: ${(err as Error).message}`);
    }
    if (!res.ok || !res.body) {
      const text = await res.text().catch(() => '');
      throw new KubeError(res.status, `watch ${path}: ${res.status} ${text.slice(0, 200)}`);
    }
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const ev = JSON.parse(line) as { type: string; object: Json };
          if (ev.type === 'ERROR') {
            const code = Number(ev.object.code);
            throw new KubeError(Number.isFinite(code) ? code : 500, `watch ${path}: ${String(ev.object.message ?? 'error event')}`);
          }
          onEvent(ev.type, ev.object);
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }
  }

  /** Creates, or replaces the existing object (carrying over its resourceVersion). */
  async apply(obj: Json & { apiVersion: string; kind: string; metadata: Json }): Promise<Json> {
    try {
      return await this.create(obj);
    } catch (err) {
      if (!(err instanceof KubeError) || err.status !== 409) throw err;
    }
    const ref = refOf(obj);
    const cur = await this.get(ref);
    const md = { ...obj.metadata, resourceVersion: (cur.metadata as Json).resourceVersion };
    return this.replace(ref, { ...obj, metadata: md });
  }

  /** Deletes; a missing object is not an error. Returns whether it existed. */
  async delete(ref: KubeRef): Promise<boolean> {
    try {
      await this.call('DELETE', objectPath(ref));
      return true;
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return false;
      throw err;
    }
  }

  list(apiVersion: string, kind: string, namespace?: string): Promise<Json> {
    return this.call('GET', collectionPath(apiVersion, kind, namespace));
  }

  /**
   * The server's current resourceVersion: the newest of the last write we saw and what
   * a list reports (a list's resourceVersion is the store's revision, which also
   * covers deletes whose response carries an older version).
   */
  async currentRV(): Promise<number> {
    const l = await this.list('v1', 'Namespace');
    return Math.max(this.lastWriteRV, rvOf(l));
  }
}

export function refOf(obj: { apiVersion: string; kind: string; metadata: Json }): KubeRef {
  const ref: KubeRef = { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name as string };
  if (typeof obj.metadata.namespace === 'string') ref.namespace = obj.metadata.namespace;
  return ref;
}
