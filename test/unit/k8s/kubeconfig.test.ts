/**
 * The agent's own kubeconfig handling (pkg/k8s/kubeconfig.ts): static credentials from a
 * kubeconfig file or the in-cluster service account without client-node; what only
 * client-node implements (exec plugins) handed to client-node's KubeConfig.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import type https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  ApiCredentials, inClusterCredentials, loadApiConfig, SERVICE_ACCOUNT_DIR,
} from '../../../pkg/k8s/kubeconfig.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pal-kubeconfig-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function kubeconfig(user: string, cluster = 'server: https://10.0.0.1:6443\n    certificate-authority: ca.pem'): string {
  return `apiVersion: v1
kind: Config
current-context: c1
contexts:
- name: c0
  context: {cluster: other, user: other}
- name: c1
  context: {cluster: k1, user: u1}
clusters:
- name: k1
  cluster:
    ${cluster}
users:
- name: u1
  user:
    ${user}
`;
}

async function applied(kc: { applyToHTTPSOptions(o: https.RequestOptions): Promise<void> }) {
  const o: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(o);
  return o;
}

describe('kubeconfig files', () => {
  test('token user with a CA file relative to the kubeconfig: no client-node', async () => {
    await writeFile(join(dir, 'ca.pem'), 'CA-PEM');
    const p = join(dir, 'token.yaml');
    await writeFile(p, kubeconfig('token: s3cret'));
    const kc = loadApiConfig(p);
    expect(kc).toBeInstanceOf(ApiCredentials);
    expect(kc.getCurrentCluster()).toEqual({ server: 'https://10.0.0.1:6443' });
    const o = await applied(kc);
    expect(String(o.ca)).toBe('CA-PEM');
    expect((o.headers as Record<string, string>).authorization).toBe('Bearer s3cret');
  });

  test('client certificate data and insecure-skip-tls-verify', async () => {
    const p = join(dir, 'cert.yaml');
    await writeFile(p, kubeconfig(
      `client-certificate-data: ${Buffer.from('CERT').toString('base64')}\n    client-key-data: ${Buffer.from('KEY').toString('base64')}`,
      'server: https://k:443\n    insecure-skip-tls-verify: true'));
    const o = await applied(loadApiConfig(p));
    expect(String(o.cert)).toBe('CERT');
    expect(String(o.key)).toBe('KEY');
    expect(o.rejectUnauthorized).toBe(false);
    expect(o.headers).toEqual({});
  });

  test('an exec plugin is left to client-node', async () => {
    const p = join(dir, 'exec.yaml');
    await writeFile(p, kubeconfig('exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/true}'));
    const kc = loadApiConfig(p);
    expect(kc).not.toBeInstanceOf(ApiCredentials);
    expect(kc.constructor.name).toBe('KubeConfig');
    expect(kc.getCurrentCluster()?.server).toBe('https://10.0.0.1:6443');
  });

  test('errors name the file and what is wrong', async () => {
    expect(() => loadApiConfig(join(dir, 'missing.yaml'))).toThrow(/loading kubeconfig .*missing\.yaml: ENOENT/);
    const p = join(dir, 'nocontext.yaml');
    await writeFile(p, 'apiVersion: v1\nkind: Config\ncontexts: []\n');
    expect(() => loadApiConfig(p)).toThrow(/loading kubeconfig .*: no current context/);
    const q = join(dir, 'badca.yaml');
    await writeFile(q, kubeconfig('token: x', 'server: https://k\n    certificate-authority: nope.pem'));
    expect(() => loadApiConfig(q)).toThrow(/certificate-authority .*nope\.pem/);
    expect(() => new ApiCredentials({ server: 'ftp://x' })).toThrow(/invalid API server address/);
  });
});

describe('in-cluster credentials', () => {
  test('server from the environment (IPv6 bracketed), CA and token file', async () => {
    const root = join(dir, 'pod');
    const sa = `${root}${SERVICE_ACCOUNT_DIR}`;
    await mkdir(sa, { recursive: true });
    await writeFile(join(sa, 'ca.crt'), 'SA-CA');
    await writeFile(join(sa, 'token'), 'tok-1\n');
    const kc = inClusterCredentials(root, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' });
    expect(kc.getCurrentCluster()).toEqual({ server: 'https://[fd00::1]:443' });
    const o = await applied(kc);
    expect(String(o.ca)).toBe('SA-CA');
    expect((o.headers as Record<string, string>).authorization).toBe('Bearer tok-1');
  });

  test('missing files and environment are named', () => {
    expect(() => inClusterCredentials(join(dir, 'nowhere'), {}))
      .toThrow(/in-cluster credentials: missing .*token, .*ca\.crt, KUBERNETES_SERVICE_HOST\/KUBERNETES_SERVICE_PORT/);
  });
});
