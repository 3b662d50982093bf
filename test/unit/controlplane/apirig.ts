/**
 * The in-memory API server and a KubernetesControlPlane against it, for the control
 * plane tests without root (test/unit/controlplane, test/unit/service): objects written
 * the way clients and the kubelet write them, and one start/teardown order.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiServer } from '../../../pkg/apiserver/index.ts';
import {
  createKubernetesControlPlane, type KubernetesControlPlane, type KubernetesControlPlaneOptions,
} from '../../../pkg/controlplane/kubernetes.ts';
import type { LocalEndpoint } from '../../../pkg/policy/snapshot.ts';

/** An object as the tests write it: `apiVersion` set, `status` optional. */
export type ApiObject = Record<string, unknown> & {
  apiVersion: string; kind: string; metadata: { name: string; namespace?: string };
};

/**
 * Creates `o`, or updates it carrying the stored resourceVersion; then, when `withStatus`
 * and `o` has a status, writes it through the status subresource (as the kubelet does).
 */
export function putObject(server: ApiServer, o: ApiObject, withStatus: boolean): void {
  let cur: ApiObject | undefined;
  try {
    cur = server.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name) as unknown as ApiObject;
  } catch {
    cur = undefined;
  }
  const { status, ...rest } = o;
  const md = cur?.metadata as Record<string, unknown> | undefined;
  if (md) server.update({ ...rest, metadata: { ...o.metadata, resourceVersion: md.resourceVersion } });
  else server.create(rest);
  if (withStatus && status !== undefined) {
    const now = server.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name);
    server.update({ ...now, status }, 'status');
  }
}

/** A fresh directory for the kubeconfig (and whatever state a test keeps there). */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/**
 * A control plane on the kubeconfig that `server` wrote to `dir`/kubeconfig: `endpoints`
 * are registered before start, and it has synced when this returns.
 */
export async function startControlPlane(server: ApiServer, dir: string,
  opts: Omit<KubernetesControlPlaneOptions, 'kubeconfig' | 'kubeConfig'>, endpoints: LocalEndpoint[]): Promise<KubernetesControlPlane> {
  const kubeconfig = join(dir, 'kubeconfig');
  await server.writeKubeconfig(kubeconfig);
  const cp = await createKubernetesControlPlane({ kubeconfig, ...opts });
  for (const ep of endpoints) void cp.upsertEndpoint(ep);
  await cp.start();
  await cp.whenReady();
  return cp;
}

/** Stops what was started, whatever state setup reached. */
export async function teardown(cp: KubernetesControlPlane | undefined, server: ApiServer | undefined, dir: string | undefined): Promise<void> {
  await cp?.stop();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
}
