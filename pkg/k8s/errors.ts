/**
 * The base of the errors of HTTP exchanges with the API server (directly, or through it
 * to an agent): each subclass carries its stable `code` and name; `statusCode` is the
 * HTTP status when a server answered, undefined when none did.
 */
export class HttpStatusError extends Error {
  readonly statusCode: number | undefined;
  constructor(message: string, statusCode?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.statusCode = statusCode;
  }
}
