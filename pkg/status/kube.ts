/**
 * StatusApi over @kubernetes/client-node's CustomObjectsApi. Status goes through the
 * status subresource (the CRDs declare it: a write to the main resource would drop it)
 * as a JSON merge patch, so no resourceVersion round trip is needed and the writer never
 * conflicts with itself. Loaded only in Kubernetes mode.
 */
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import {
  GROUP, PLURAL, StatusApiError, VERSION,
  type ListedObject, type ObjectRef, type StatusApi, type StatusKind, type StatusMeta,
} from './api.ts';

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

function wrap(what: string, err: unknown): StatusApiError {
  const code = (err as { code?: unknown }).code;
  const status = typeof code === 'number' ? code : 0;
  const body = (err as { body?: unknown }).body;
  const detail = typeof body === 'string' ? body.slice(0, 200) : (err as Error).message;
  return new StatusApiError(status, `${what}: ${status ? `HTTP ${status}: ` : ''}${detail}`, err);
}

function name(kind: StatusKind, ref: ObjectRef): string {
  return ref.namespace ? `${kind} ${ref.namespace}/${ref.name}` : `${kind} ${ref.name}`;
}

export class KubeStatusApi implements StatusApi {
  readonly #api: CustomObjectsApi;

  constructor(kc: KubeConfig) {
    this.#api = kc.makeApiClient(CustomObjectsApi);
  }

  async list(kind: StatusKind, labelSelector: string): Promise<ListedObject[]> {
    try {
      const r = await this.#api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL[kind], labelSelector }) as {
        items?: { metadata?: { name?: string; namespace?: string; labels?: Record<string, string> }; status?: Record<string, unknown> }[];
      };
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
      if (ref.namespace) {
        await this.#api.createNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL[kind], namespace: ref.namespace, body });
      } else {
        await this.#api.createClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL[kind], body });
      }
    } catch (err) {
      throw wrap(`creating ${name(kind, ref)}`, err);
    }
  }

  async patchStatus(kind: StatusKind, ref: ObjectRef, status: Record<string, unknown>): Promise<void> {
    const p = { group: GROUP, version: VERSION, plural: PLURAL[kind], name: ref.name, body: { status } };
    try {
      if (ref.namespace) await this.#api.patchNamespacedCustomObjectStatus({ ...p, namespace: ref.namespace }, merge);
      else await this.#api.patchClusterCustomObjectStatus(p, merge);
    } catch (err) {
      throw wrap(`writing the status of ${name(kind, ref)}`, err);
    }
  }

  async patchMeta(kind: StatusKind, ref: ObjectRef, meta: StatusMeta): Promise<void> {
    const p = { group: GROUP, version: VERSION, plural: PLURAL[kind], name: ref.name, body: { metadata: meta } };
    try {
      if (ref.namespace) await this.#api.patchNamespacedCustomObject({ ...p, namespace: ref.namespace }, merge);
      else await this.#api.patchClusterCustomObject(p, merge);
    } catch (err) {
      throw wrap(`updating the metadata of ${name(kind, ref)}`, err);
    }
  }

  async delete(kind: StatusKind, ref: ObjectRef): Promise<void> {
    const p = { group: GROUP, version: VERSION, plural: PLURAL[kind], name: ref.name };
    try {
      if (ref.namespace) await this.#api.deleteNamespacedCustomObject({ ...p, namespace: ref.namespace });
      else await this.#api.deleteClusterCustomObject(p);
    } catch (err) {
      const e = wrap(`deleting ${name(kind, ref)}`, err);
      if (e.status === 404) return;
      throw e;
    }
  }
}
