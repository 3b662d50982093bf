/**
 * Errors of the endpoint lifecycle. Each carries the CNI code the shim prints and the
 * PAL_* code the agent API reports (docs/agent-api.md, docs/cni.md).
 */
import {
  CNI_ERR_UNKNOWN_CONTAINER, PAL_CNI_CHECK_FAILED, PAL_CNI_DATAPATH, PAL_CNI_INTERFACE,
  PAL_CNI_INTERNAL, PAL_CNI_IPAM_EXHAUSTED, PAL_CNI_REALIZE_TIMEOUT,
} from '../cni/errors.ts';

export const PAL_ERRORS = {
  PAL_UNKNOWN_CONTAINER: CNI_ERR_UNKNOWN_CONTAINER,
  PAL_IPAM_EXHAUSTED: PAL_CNI_IPAM_EXHAUSTED,
  PAL_INTERFACE: PAL_CNI_INTERFACE,
  PAL_DATAPATH: PAL_CNI_DATAPATH,
  PAL_REALIZE_TIMEOUT: PAL_CNI_REALIZE_TIMEOUT,
  PAL_CHECK_FAILED: PAL_CNI_CHECK_FAILED,
  PAL_INTERNAL: PAL_CNI_INTERNAL,
} as const;

export type PalEndpointCode = keyof typeof PAL_ERRORS;

export class EndpointError extends Error {
  readonly code: PalEndpointCode;
  readonly details: string | undefined;
  constructor(code: PalEndpointCode, message: string, details?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'EndpointError';
    this.code = code;
    this.details = details;
  }

  get cniCode(): number {
    return PAL_ERRORS[this.code];
  }
}
