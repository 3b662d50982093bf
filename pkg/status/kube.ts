/**
 * StatusApi over the agent's small API client (pkg/k8s/request.ts; client-node's API
 * classes are not loaded for this). Status goes through the status subresource (the CRDs
 * declare it: a write to the main resource would drop it) as a JSON merge patch, so no
 * resourceVersion round trip is needed and the writer never conflicts with itself.
 */
import type { KubeConfigLike } from '../k8s/kubeconfig.ts';
import { apiRequest, ApiError } from '../k8s/request.ts';
import {
  GROUP, PLURAL, StatusApiError, VERSION,
  type ListedObject, type ObjectRef, type StatusApi, type StatusKind, type StatusMeta,
} from './api.ts';

function wrap(what: string, err: unknown): StatusApiError {
  const status = err instanceof ApiError ? err.statusCode ?? 0 : 0;
  return new StatusApiError(status, `${what}: ${(err as Error).message}`, err);
}

function describe(kind: StatusKind, ref: ObjectRef): string {
  return ref.namespace ? `${kind} ${ref.namespace}/${ref.name}` : `${kind} ${ref.name}`;
}

function collection(kind: StatusKind, namespace?: string): string {
  const ns = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `/apis/${GROUP}/${VERSION}${ns}/${PLURAL[kind]}`;
}

function objectPath(kind: StatusKind, ref: ObjectRef): string {
  return `${collection(kind, ref.namespace)}/${encodeURIComponent(ref.name)}`;
}

interface Listed {
  items?: { metadata?: { name?: string; namespace?: string; labels?: Record<string, string> }; status?: Record<string, unknown> }[];
}

export class KubeStatusApi implements StatusApi {
  readonly #kc: KubeConfigLike;

  constructor(kc: KubeConfigLike) {
    this.#kc = kc;
  }

  async list(kind: StatusKind, labelSelector: string): Promise<ListedObject[]> {
    try {
      const r = await apiRequest<Listed>(this.#kc, {
        method: 'GET', path: `${collection(kind)}?labelSelector=${encodeURIComponent(labelSelector)}`,
      });
      return (r.items ?? []).map((o) => ({
        name: o.metadata?.name ?? '', namespace: o.metadata?.namespace, labels: o.metadata?.labels ?? {}, status: o.status,
      }));
    } catch (err) {
      throw wrap(`listing ${PLURAL[kind]}`, err);
    }
  }

  async create(kind: StatusKind, ref: ObjectRef, meta: StatusMeta): Promise<void> {
    const body = {
      apiVersion: `${GROUP}/${VERSION}`, kind,
      metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}), ...meta },
    };
    try {
      await apiRequest(this.#kc, { method: 'POST', path: collection(kind, ref.namespace), body });
    } catch (err) {
      throw wrap(`creating ${describe(kind, ref)}`, err);
    }
  }

  async patchStatus(kind: StatusKind, ref: ObjectRef, status: Record<string, unknown>): Promise<void> {
    try {
      await apiRequest(this.#kc, { method: 'PATCH', path: `${objectPath(kind, ref)}/status`, body: { status } });
    } catch (err) {
      throw wrap(`writing the status of ${describe(kind, ref)}`, err);
    }
  }

  async patchMeta(kind: StatusKind, ref: ObjectRef, meta: StatusMeta): Promise<void> {
    try {
      await apiRequest(this.#kc, { method: 'PATCH', path: objectPath(kind, ref), body: { metadata: meta } });
    } catch (err) {
      throw wrap(`updating the metadata of ${describe(kind, ref)}`, err);
    }
  }

  async delete(kind: StatusKind, ref: ObjectRef, ifLabelled?: { key: string; value: string }): Promise<void> {
    let body: unknown;
    try {
      if (ifLabelled) {
        const cur = await apiRequest<{ metadata?: { uid?: string; resourceVersion?: string; labels?: Record<string, string> } }>(
          this.#kc, { method: 'GET', path: objectPath(kind, ref) });
        if (cur.metadata?.labels?.[ifLabelled.key] !== ifLabelled.value) return;
        body = { preconditions: { uid: cur.metadata.uid, resourceVersion: cur.metadata.resourceVersion } };
      }
      await apiRequest(this.#kc, { method: 'DELETE', path: objectPath(kind, ref), body });
    } catch (err) {
      const e = wrap(`deleting ${describe(kind, ref)}`, err);
      if (e.status === 404) return;
      // Changed since we read it (relabelled by another node): no longer ours to delete.
      if (e.status === 409 && ifLabelled) return;
      throw e;
    }
  }
}
