/**
 * Where the API server is and how to authenticate to it, for the agent's own requests
 * (lists, watches, events, its Node).
 *
 * `KubeConfigLike` is the part of @kubernetes/client-node's `KubeConfig` the agent uses,
 * so a KubeConfig object can be passed wherever one is accepted. The agent itself avoids
 * loading client-node when it can: client-node's KubeConfig module pulls in every
 * generated API model, undici and proxy agents (about 80 MB of RSS measured on Node 24,
 * more than half the agent's budget at 10k pods; docs/control-plane.md). So:
 * - in-cluster credentials (service-account token and CA, KUBERNETES_SERVICE_HOST/PORT)
 *   and kubeconfig files with static credentials (CA, client certificate, token, token
 *   file, basic auth, insecure-skip-tls-verify) are handled here with node:https;
 * - anything else (exec plugins, auth providers, proxies, the default loading rules) is
 *   delegated to client-node's KubeConfig, loaded only then.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import type https from 'node:https';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';

const requireLazily = createRequire(import.meta.url);

/**
 * client-node's KubeConfig class, loaded on first use (synchronously: Node 24 can
 * `require` an ES module without top-level await).
 */
export function clientNodeKubeConfig(): typeof KubeConfig {
  return (requireLazily('@kubernetes/client-node') as typeof import('@kubernetes/client-node')).KubeConfig;
}

export interface KubeConfigLike {
  /** The API server, e.g. `{ server: 'https://10.96.0.1:443' }`; null when none is set. */
  getCurrentCluster(): { server: string } | null;
  /** Adds TLS material and credentials to request options (refreshing tokens as needed). */
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** How long a token read from a file is used before the file is read again. */
const TOKEN_FILE_TTL_MS = 60_000;

export interface StaticCredentials {
  server: string;
  /** PEM. */
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  /** Re-read every minute (projected service-account tokens rotate). */
  tokenFile?: string;
  username?: string;
  password?: string;
  insecureSkipTlsVerify?: boolean;
  tlsServerName?: string;
}

/** A KubeConfigLike over static credentials; no client-node involved. */
export class ApiCredentials implements KubeConfigLike {
  readonly #c: StaticCredentials;
  #token: { value: string; readAt: number } | undefined;

  constructor(c: StaticCredentials) {
    let url: URL;
    try {
      url = new URL(c.server);
    } catch {
      throw new Error(`invalid API server address ${JSON.stringify(c.server)}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new Error(`invalid API server address ${JSON.stringify(c.server)}: not http(s)`);
    }
    this.#c = { ...c };
  }

  getCurrentCluster(): { server: string } {
    return { server: this.#c.server };
  }

  async applyToHTTPSOptions(opts: https.RequestOptions): Promise<void> {
    const c = this.#c;
    if (c.ca) opts.ca = c.ca;
    if (c.cert) opts.cert = c.cert;
    if (c.key) opts.key = c.key;
    if (c.insecureSkipTlsVerify) opts.rejectUnauthorized = false;
    if (c.tlsServerName) opts.servername = c.tlsServerName;
    const token = this.#currentToken();
    const headers = { ...(opts.headers as Record<string, string> | undefined) };
    if (token) headers.authorization = `Bearer ${token}`;
    else if (c.username !== undefined) {
      headers.authorization = `Basic ${Buffer.from(`${c.username}:${c.password ?? ''}`).toString('base64')}`;
    }
    opts.headers = headers;
  }

  #currentToken(): string | undefined {
    const c = this.#c;
    if (c.token) return c.token;
    if (!c.tokenFile) return undefined;
    const now = Date.now();
    if (!this.#token || now - this.#token.readAt >= TOKEN_FILE_TTL_MS) {
      try {
        this.#token = { value: readFileSync(c.tokenFile, 'utf8').trim(), readAt: now };
      } catch (err) {
        // Keep the last token while the file is being rotated; fail only without one.
        if (!this.#token) throw new Error(`reading token file ${c.tokenFile}: ${(err as Error).message}`, { cause: err });
      }
    }
    return this.#token!.value;
  }
}

/**
 * In-cluster credentials: server from KUBERNETES_SERVICE_HOST/PORT, the service account's
 * CA and token (re-read as it rotates). Throws naming what is missing. `root` prefixes
 * the service-account directory (tests).
 */
export function inClusterCredentials(root = '', env: NodeJS.ProcessEnv = process.env): ApiCredentials {
  const dir = `${root}${SERVICE_ACCOUNT_DIR}`;
  const missing = ['token', 'ca.crt'].map((f) => join(dir, f)).filter((f) => !existsSync(f));
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) missing.push('KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT');
  if (missing.length) {
    throw new Error(`in-cluster credentials: missing ${missing.join(', ')} (not in a pod? pass --kubeconfig)`);
  }
  const h = host!.includes(':') ? `[${host}]` : host;
  return new ApiCredentials({
    server: `https://${h}:${port}`,
    ca: readFileSync(join(dir, 'ca.crt')),
    tokenFile: join(dir, 'token'),
  });
}

type Yaml = Record<string, unknown>;
const isObj = (v: unknown): v is Yaml => typeof v === 'object' && v !== null && !Array.isArray(v);

function named(list: unknown, name: unknown, what: string, path: string): Yaml {
  const hit = Array.isArray(list) ? list.find((e) => isObj(e) && e.name === name) : undefined;
  if (!isObj(hit)) throw new Error(`loading kubeconfig ${path}: ${what} ${JSON.stringify(name)} not found`);
  return hit;
}

/**
 * Static credentials of a kubeconfig file's current context, or undefined when it needs
 * what only client-node implements (exec plugin, auth provider, proxy).
 */
export function staticCredentialsOf(text: string, path: string): StaticCredentials | undefined {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new Error(`loading kubeconfig ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!isObj(doc)) throw new Error(`loading kubeconfig ${path}: not a kubeconfig`);
  const ctxName = doc['current-context'];
  if (typeof ctxName !== 'string' || !ctxName) throw new Error(`loading kubeconfig ${path}: no current context`);
  const ctx = named(doc.contexts, ctxName, 'context', path).context;
  if (!isObj(ctx)) throw new Error(`loading kubeconfig ${path}: context ${ctxName} is empty`);
  const cluster = named(doc.clusters, ctx.cluster, 'cluster', path).cluster;
  if (!isObj(cluster) || typeof cluster.server !== 'string') {
    throw new Error(`loading kubeconfig ${path}: no current cluster`);
  }
  const user = ctx.user === undefined ? {} : (named(doc.users, ctx.user, 'user', path).user ?? {});
  if (!isObj(user)) throw new Error(`loading kubeconfig ${path}: user ${String(ctx.user)} is not an object`);
  if (user.exec !== undefined || user['auth-provider'] !== undefined || cluster['proxy-url'] !== undefined) {
    return undefined;
  }
  const base = dirname(path);
  const file = (v: unknown, field: string): Buffer | undefined => {
    if (typeof v !== 'string' || !v) return undefined;
    const p = isAbsolute(v) ? v : join(base, v);
    try {
      return readFileSync(p);
    } catch (err) {
      throw new Error(`loading kubeconfig ${path}: ${field} ${p}: ${(err as Error).message}`, { cause: err });
    }
  };
  const data = (v: unknown): Buffer | undefined =>
    (typeof v === 'string' && v ? Buffer.from(v, 'base64') : undefined);
  const out: StaticCredentials = { server: cluster.server };
  const ca = data(cluster['certificate-authority-data']) ?? file(cluster['certificate-authority'], 'certificate-authority');
  if (ca) out.ca = ca;
  if (cluster['insecure-skip-tls-verify'] === true) out.insecureSkipTlsVerify = true;
  if (typeof cluster['tls-server-name'] === 'string') out.tlsServerName = cluster['tls-server-name'];
  const cert = data(user['client-certificate-data']) ?? file(user['client-certificate'], 'client-certificate');
  const key = data(user['client-key-data']) ?? file(user['client-key'], 'client-key');
  if (cert) out.cert = cert;
  if (key) out.key = key;
  if (typeof user.token === 'string' && user.token) out.token = user.token;
  else if (typeof user.tokenFile === 'string' && user.tokenFile) {
    out.tokenFile = isAbsolute(user.tokenFile) ? user.tokenFile : join(base, user.tokenFile);
  }
  if (typeof user.username === 'string') {
    out.username = user.username;
    if (typeof user.password === 'string') out.password = user.password;
  }
  return out;
}

/**
 * Loads a kubeconfig file (or, for undefined, client-node's default loading rules:
 * KUBECONFIG, ~/.kube/config, in-cluster). Static credentials load without client-node.
 */
export function loadApiConfig(path?: string): KubeConfigLike {
  if (path !== undefined) {
    let text: string;
    try {
      if (!statSync(path).isFile()) throw new Error('not a file');
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`loading kubeconfig ${path}: ${(err as Error).message}`, { cause: err });
    }
    const creds = staticCredentialsOf(text, path);
    if (creds) return new ApiCredentials(creds);
  }
  return loadClientNodeKubeConfig(path);
}

/** client-node's KubeConfig from a file or the default loading rules; clear errors. */
export function loadClientNodeKubeConfig(path?: string): KubeConfig {
  const kc = new (clientNodeKubeConfig())();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
  } catch (err) {
    throw new Error(`loading kubeconfig ${path ?? '(default)'}: ${(err as Error).message}`, { cause: err });
  }
  if (!kc.getCurrentCluster()) throw new Error(`loading kubeconfig ${path ?? '(default)'}: no current cluster`);
  return kc;
}
