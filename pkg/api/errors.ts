/** Stable error codes of the agent API (docs/agent-api.md). */
export const PAL_API_ERRORS = {
  PAL_BAD_REQUEST: 400,
  PAL_NOT_FOUND: 404,
  PAL_NOT_READY: 503,
  /** Too many /v1/flows follow streams open. */
  PAL_BUSY: 503,
  PAL_WAIT_TIMEOUT: 504,
  PAL_WAIT_UNSUPPORTED: 501,
  PAL_INTERNAL: 500,
} as const;

export type PalApiCode = keyof typeof PAL_API_ERRORS;

export function apiError(code: PalApiCode, message: string): { code: PalApiCode; message: string } {
  return { code, message };
}
