/**
 * What the status writer needs from the Kubernetes API: list, create, merge-patch the
 * status subresource, merge-patch metadata, delete — of PalisadeEndpoint (namespaced) and
 * PalisadeNode (cluster-scoped) objects. pkg/status/kube.ts implements it with
 * @kubernetes/client-node; tests use the same implementation against pkg/apiserver.
 */
export type StatusKind = 'PalisadeEndpoint' | 'PalisadeNode';

export interface ObjectRef {
  /** Absent for cluster-scoped kinds. */
  namespace?: string;
  name: string;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

/** The metadata the writer owns on its objects. */
export interface StatusMeta {
  labels: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface ListedObject extends ObjectRef {
  labels: Record<string, string>;
  status?: Record<string, unknown>;
}

/** A failed API call with the HTTP status (404 not found, 409 conflict/exists, ...). */
export class StatusApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'StatusApiError';
    this.status = status;
  }
}

export interface StatusApi {
  list(kind: StatusKind, labelSelector: string): Promise<ListedObject[]>;
  /** Rejects with StatusApiError 409 when the object exists. */
  create(kind: StatusKind, ref: ObjectRef, meta: StatusMeta): Promise<void>;
  /** Rejects with StatusApiError 404 when the object is gone. */
  patchStatus(kind: StatusKind, ref: ObjectRef, status: Record<string, unknown>): Promise<void>;
  patchMeta(kind: StatusKind, ref: ObjectRef, meta: StatusMeta): Promise<void>;
  /**
   * Deletes the object; resolves when it is gone already. With `ifLabelled`, only when the
   * object still carries that label, and only that very object (uid and resourceVersion
   * preconditions): a pod name reused on another node must not lose its new object to
   * this node's late cleanup.
   */
  delete(kind: StatusKind, ref: ObjectRef, ifLabelled?: { key: string; value: string }): Promise<void>;
}

export const GROUP = 'palisade.dev';
export const VERSION = 'v1alpha1';
export const PLURAL: Record<StatusKind, string> = {
  PalisadeEndpoint: 'palisadeendpoints',
  PalisadeNode: 'palisadenodes',
};
/** Label naming the node whose agent wrote an object (used to find its stale objects). */
export const NODE_LABEL = 'palisade.dev/node';
