/**
 * CNI error codes (spec 1.1, "Error codes") and Palisade's plugin-specific codes (100+).
 * Every error that leaves the plugin is printed as `{cniVersion, code, msg, details}` on
 * stdout with a non-zero exit status. This module imports nothing (the shim loads it).
 */

/** Well-known codes from the CNI specification. */
export const CNI_ERR_INCOMPATIBLE_VERSION = 1;
export const CNI_ERR_UNSUPPORTED_FIELD = 2;
export const CNI_ERR_UNKNOWN_CONTAINER = 3;
export const CNI_ERR_INVALID_ENV = 4;
export const CNI_ERR_IO = 5;
export const CNI_ERR_DECODE = 6;
export const CNI_ERR_INVALID_CONFIG = 7;
export const CNI_ERR_TRY_AGAIN_LATER = 11;
/** STATUS: the plugin cannot service ADD requests. */
export const CNI_ERR_NOT_AVAILABLE = 50;
/** STATUS: not available, and existing containers may have limited connectivity. */
export const CNI_ERR_NOT_AVAILABLE_LIMITED = 51;

/** Palisade's own codes (documented in docs/cni.md). */
/** The agent failed in a way no more specific code covers. */
export const PAL_CNI_INTERNAL = 100;
/** Creating or configuring the veth pair, addresses, routes or neighbours failed. */
export const PAL_CNI_INTERFACE = 101;
/** The pod CIDR has no free address. */
export const PAL_CNI_IPAM_EXHAUSTED = 102;
/** Attaching programs or registering the endpoint in the datapath failed. */
export const PAL_CNI_DATAPATH = 103;
/** CHECK found the pod's network differs from what ADD set up. */
export const PAL_CNI_CHECK_FAILED = 104;
/** The agent answered something the shim could not understand. */
export const PAL_CNI_BAD_AGENT_ANSWER = 105;
/** The endpoint's policy was not realized in time (the realizer timed out). */
export const PAL_CNI_REALIZE_TIMEOUT = 106;

/** The spec's error object. */
export interface CniErrorBody {
  code: number;
  msg: string;
  details?: string;
}

/** An error carrying a CNI code; `msg` is short, `details` holds the cause. */
export class CniError extends Error {
  readonly code: number;
  readonly details: string | undefined;
  constructor(code: number, msg: string, details?: string) {
    super(msg);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }

  toJSON(): CniErrorBody {
    const body: CniErrorBody = { code: this.code, msg: this.message };
    if (this.details) body.details = this.details;
    return body;
  }
}

/** Message of any thrown value, for `details`. */
export function causeText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
