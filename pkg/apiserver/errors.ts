/**
 * API errors as the real server reports them: an HTTP code plus a `Status` object
 * (kind Status, status Failure, reason, message, details). Clients (client-go,
 * @kubernetes/client-node) switch on `reason` and `code`, so both must match upstream.
 */
import type { Obj } from './json.ts';

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

/** A failed request; `toStatus()` is the body the server sends. */
export class ApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: StatusDetails | undefined;

  constructor(code: number, reason: string, message: string, details?: StatusDetails) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.reason = reason;
    this.details = details;
  }

  toStatus(): Obj {
    const s: Obj = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      code: this.code,
    };
    if (this.details) s.details = this.details;
    return s;
  }
}

/** Identifies a resource in messages: `pods`, `networkpolicies.networking.k8s.io`. */
export interface ResourceRef {
  group: string;
  plural: string;
}

function qualified(r: ResourceRef): string {
  return r.group ? `${r.plural}.${r.group}` : r.plural;
}

function details(r: ResourceRef, name: string): StatusDetails {
  const d: StatusDetails = { name, kind: r.plural };
  if (r.group) d.group = r.group;
  return d;
}

export function notFound(r: ResourceRef, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${qualified(r)} "${name}" not found`, details(r, name));
}

export function alreadyExists(r: ResourceRef, name: string): ApiError {
  return new ApiError(409, 'AlreadyExists', `${qualified(r)} "${name}" already exists`, details(r, name));
}

/** Optimistic-concurrency failure: the request carried a stale resourceVersion. */
export function conflict(r: ResourceRef, name: string, why: string): ApiError {
  return new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualified(r)} "${name}": ${why}`,
    details(r, name),
  );
}

export const STALE_RV = 'the object has been modified; please apply your changes to the latest version and try again';

/** 422 with one cause per bad field, message formatted like upstream's aggregate. */
export function invalid(group: string, kind: string, name: string, causes: StatusCause[]): ApiError {
  const parts = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
  const list = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
  const d: StatusDetails = { name, kind, causes };
  if (group) d.group = group;
  return new ApiError(422, 'Invalid', `${kind}${group ? '.' + group : ''} "${name}" is invalid: ${list}`, d);
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

export function methodNotSupported(r: ResourceRef, verb: string): ApiError {
  return new ApiError(405, 'MethodNotAllowed', `${verb} is not supported on resources of kind "${qualified(r)}"`, {
    kind: r.plural,
    ...(r.group ? { group: r.group } : {}),
  });
}

export function unsupportedMediaType(type: string): ApiError {
  return new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got ${type})`);
}

/** The watch window no longer holds the requested resourceVersion (HTTP 410). */
export function expired(requested: string, oldest: string): ApiError {
  return new ApiError(410, 'Expired', `too old resource version: ${requested} (${oldest})`);
}

export function notFoundPath(path: string): ApiError {
  return new ApiError(404, 'NotFound', `the server could not find the requested resource (${path})`, {});
}

export function internal(message: string): ApiError {
  return new ApiError(500, 'InternalError', `Internal error occurred: ${message}`);
}

/** Field-level validation causes, named as upstream's field.ErrorType strings. */
export const cause = {
  required: (field: string): StatusCause => ({ reason: 'FieldValueRequired', message: 'Required value', field }),
  invalid: (field: string, value: unknown, why: string): StatusCause => ({
    reason: 'FieldValueInvalid',
    message: `Invalid value: ${JSON.stringify(value)}: ${why}`,
    field,
  }),
  notSupported: (field: string, value: unknown, allowed: string[]): StatusCause => ({
    reason: 'FieldValueNotSupported',
    message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${allowed.map((a) => `"${a}"`).join(', ')}`,
    field,
  }),
  forbidden: (field: string, why: string): StatusCause => ({ reason: 'FieldValueForbidden', message: `Forbidden: ${why}`, field }),
  duplicate: (field: string, value: unknown): StatusCause => ({
    reason: 'FieldValueDuplicate',
    message: `Duplicate value: ${JSON.stringify(value)}`,
    field,
  }),
  typeInvalid: (field: string, value: unknown, why: string): StatusCause => ({
    reason: 'FieldValueTypeInvalid',
    message: `Invalid value: ${JSON.stringify(value)}: ${why}`,
    field,
  }),
};
