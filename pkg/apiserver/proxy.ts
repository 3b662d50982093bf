/**
 * The `proxy` subresources of pods and nodes, as upstream serves them:
 *
 *   /api/v1/namespaces/NS/pods/[SCHEME:]NAME[:PORT]/proxy/PATH?QUERY
 *   /api/v1/nodes/[SCHEME:]NAME[:PORT]/proxy/PATH?QUERY
 *
 * The request (any method, body, query) goes to PATH on the pod's IP (port: PORT, else
 * the first container port) or the node's InternalIP (port: PORT, else the kubelet's
 * 10250 over https), and the answer comes back as it is produced: status, headers and a
 * body piped chunk by chunk, so streams (NDJSON follow, watches) pass through.
 *
 * How the server reaches the target is pluggable (`ProxyDialer`): by default a TCP
 * connection to host:port; the lab, whose agents listen on unix sockets in other network
 * namespaces, supplies its own. A dial failure is upstream's `503 ServiceUnavailable`
 * ("error trying to reach service: ...").
 */
import { request, type IncomingMessage, type ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { ApiError, badRequest } from './errors.ts';
import { isObj, type KObject } from './json.ts';
import type { Store } from './store.ts';

/** Where a proxied request goes. */
export interface ProxyTarget {
  resource: 'pods' | 'nodes';
  /** Pods only. */
  namespace?: string;
  /** The pod's or node's name. */
  name: string;
  /** The node the target runs on (the node itself for nodes, spec.nodeName for pods). */
  node: string | undefined;
  /** The address the default dialer connects to (pod IP, node InternalIP). */
  host: string;
  port: number;
  scheme: 'http' | 'https';
}

/** Opens a byte stream to a target; rejects when it cannot be reached. */
export type ProxyDialer = (target: ProxyTarget) => Promise<Duplex>;

/** The kubelet port upstream proxies a node to when the URL names none. */
const KUBELET_PORT = 10250;

/** Connection setup timeout of the default dialer. */
const DIAL_TIMEOUT_MS = 10_000;

/**
 * TCP (or TLS for `https:`) to host:port. Kubelet and pod certificates are not verified,
 * as upstream's proxy does not verify them without a configured CA.
 */
export const tcpDialer: ProxyDialer = (t) => new Promise<Duplex>((resolve, reject) => {
  const sock = t.scheme === 'https'
    ? tlsConnect({ host: t.host, port: t.port, rejectUnauthorized: false })
    : connect({ host: t.host, port: t.port });
  const timer = setTimeout(() => sock.destroy(new Error(`dial tcp ${t.host}:${t.port}: i/o timeout`)), DIAL_TIMEOUT_MS);
  sock.once(t.scheme === 'https' ? 'secureConnect' : 'connect', () => {
    clearTimeout(timer);
    sock.removeAllListeners('error');
    resolve(sock);
  });
  sock.once('error', (err) => {
    clearTimeout(timer);
    reject(err);
  });
});

/** A parsed proxy URL. */
export interface ProxyPath {
  resource: 'pods' | 'nodes';
  namespace?: string;
  name: string;
  scheme?: 'http' | 'https';
  /** Port as written in the URL; undefined when absent. */
  port?: string;
  /** Raw (still percent-encoded) path after `/proxy`, at least `/`. */
  path: string;
}

const POD_RE = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/proxy(\/.*)?$/;
const NODE_RE = /^\/api\/v1\/nodes\/([^/]+)\/proxy(\/.*)?$/;

/** Recognizes a pod or node proxy path (raw pathname); undefined for anything else. */
export function matchProxyPath(pathname: string): ProxyPath | undefined {
  let m = POD_RE.exec(pathname);
  let out: ProxyPath;
  if (m) {
    out = { resource: 'pods', namespace: decodeURIComponent(m[1]!), name: '', path: m[3] || '/' };
  } else {
    m = NODE_RE.exec(pathname);
    if (!m) return undefined;
    out = { resource: 'nodes', name: '', path: m[2] || '/' };
  }
  // [scheme:]name[:port], as upstream's net.SplitSchemeNamePort.
  const parts = decodeURIComponent(m[out.resource === 'pods' ? 2 : 1]!).split(':');
  if (parts.length === 3) {
    if (parts[0] !== 'http' && parts[0] !== 'https') return { ...out, name: parts.join(':') };
    out.scheme = parts[0];
    out.name = parts[1]!;
    out.port = parts[2];
  } else if (parts.length === 2) {
    out.name = parts[0]!;
    out.port = parts[1];
  } else {
    out.name = parts.join(':');
  }
  return out;
}

function unreachable(what: string): ApiError {
  return new ApiError(503, 'ServiceUnavailable', `error trying to reach service: ${what}`);
}

function parsePort(p: string): number {
  const n = Number(p);
  if (!/^\d{1,5}$/.test(p) || n < 1 || n > 65535) throw badRequest(`invalid port "${p}" in the proxy path`);
  return n;
}

/** Resolves a proxy path to its target from the store (404 when the object is absent). */
export function resolveTarget(store: Store, p: ProxyPath): ProxyTarget {
  if (p.resource === 'pods') {
    const pod = store.get(store.type('', 'v1', 'pods'), p.namespace, p.name);
    const spec = isObj(pod.spec) ? pod.spec : {};
    const status = isObj(pod.status) ? pod.status : {};
    let port = p.port === undefined || p.port === '' ? undefined : parsePort(p.port);
    if (port === undefined) {
      for (const c of Array.isArray(spec.containers) ? spec.containers : []) {
        const first = isObj(c) && Array.isArray(c.ports) ? c.ports.find(isObj) : undefined;
        if (first && typeof first.containerPort === 'number') {
          port = first.containerPort;
          break;
        }
      }
    }
    const ip = typeof status.podIP === 'string' ? status.podIP : '';
    if (!ip) throw unreachable(`pod ${p.namespace}/${p.name} has no IP address`);
    if (port === undefined) throw unreachable(`pod ${p.namespace}/${p.name} names no port`);
    return {
      resource: 'pods', namespace: p.namespace!, name: p.name, host: ip, port,
      node: typeof spec.nodeName === 'string' ? spec.nodeName : undefined, scheme: p.scheme ?? 'http',
    };
  }
  const node: KObject = store.get(store.type('', 'v1', 'nodes'), undefined, p.name);
  const status = isObj(node.status) ? node.status : {};
  const addrs = (Array.isArray(status.addresses) ? status.addresses : []).filter(isObj);
  const addr = ['InternalIP', 'ExternalIP', 'Hostname']
    .map((t) => addrs.find((a) => a.type === t && typeof a.address === 'string'))
    .find((a) => a !== undefined);
  if (!addr) throw unreachable(`node ${p.name} has no address`);
  const explicit = p.port !== undefined && p.port !== '';
  return {
    resource: 'nodes', name: p.name, node: p.name, host: String(addr.address),
    port: explicit ? parsePort(p.port!) : KUBELET_PORT,
    scheme: p.scheme ?? (explicit ? 'http' : 'https'),
  };
}

// Hop-by-hop headers (RFC 9110 7.6.1) and the caller's credentials stay on this side.
const DROP_REQUEST = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'host', 'authorization', 'proxy-authorization',
]);
const DROP_RESPONSE = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

function forwardHeaders(h: IncomingMessage['headers'], drop: Set<string>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !drop.has(k)) out[k] = v;
  return out;
}

/**
 * Proxies one request. Rejects with an ApiError before anything was sent (404 object,
 * 503 unreachable); once the target answered, its status and body are relayed as they
 * come, and a failure mid-stream ends the response.
 */
export async function proxyRequest(
  req: IncomingMessage, res: ServerResponse, store: Store, p: ProxyPath, search: string, dial: ProxyDialer,
): Promise<void> {
  const target = resolveTarget(store, p);
  let sock: Duplex;
  try {
    sock = await dial(target);
  } catch (err) {
    throw unreachable(`dial ${target.host}:${target.port}: ${(err as Error).message}`);
  }
  await new Promise<void>((resolve, reject) => {
    const headers = forwardHeaders(req.headers, DROP_REQUEST);
    headers.host = `${target.host}:${target.port}`;
    const up = request({
      method: req.method ?? 'GET', path: p.path + search, headers, createConnection: () => sock,
    }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, forwardHeaders(answer.headers, DROP_RESPONSE));
      // Streams must reach the client chunk by chunk, not when the target ends.
      res.flushHeaders();
      answer.pipe(res);
      answer.on('end', resolve);
      answer.on('error', () => {
        res.end();
        resolve();
      });
    });
    up.on('error', (err) => {
      if (res.headersSent) {
        res.end();
        resolve();
      } else {
        reject(unreachable(`${target.host}:${target.port}: ${err.message}`));
      }
    });
    // The client went away (e.g. a stopped `observe --follow`): stop the target's stream.
    res.on('close', () => {
      up.destroy();
      sock.destroy();
    });
    req.pipe(up);
  });
}
