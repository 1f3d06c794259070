/** A registry protocol error descriptor: one row of the table that every response uses. */
export interface ErrorDescriptor {
  readonly code: string;
  readonly message: string;
  readonly status: number;
}

function table<K extends string>(rows: Record<K, [number, string]>): Record<K, ErrorDescriptor> {
  const out = {} as Record<K, ErrorDescriptor>;
  for (const code of Object.keys(rows) as K[]) {
    const [status, message] = rows[code];
    out[code] = Object.freeze({ code, message, status });
  }
  return Object.freeze(out);
}

/** The distribution-spec error codes (plus distribution's UNKNOWN/UNAVAILABLE), with their HTTP statuses. */
export const RegistryErrors = table({
  BLOB_UNKNOWN: [404, 'blob unknown to registry'],
  BLOB_UPLOAD_INVALID: [400, 'blob upload invalid'],
  BLOB_UPLOAD_UNKNOWN: [404, 'blob upload unknown to registry'],
  DIGEST_INVALID: [400, 'provided digest did not match uploaded content'],
  MANIFEST_BLOB_UNKNOWN: [404, 'manifest references a manifest or blob unknown to registry'],
  MANIFEST_INVALID: [400, 'manifest invalid'],
  MANIFEST_UNKNOWN: [404, 'manifest unknown to registry'],
  NAME_INVALID: [400, 'invalid repository name'],
  NAME_UNKNOWN: [404, 'repository name not known to registry'],
  SIZE_INVALID: [400, 'provided length did not match content length'],
  TAG_INVALID: [400, 'invalid tag'],
  PAGINATION_NUMBER_INVALID: [400, 'invalid number of results requested'],
  UNAUTHORIZED: [401, 'authentication required'],
  DENIED: [403, 'requested access to the resource is denied'],
  UNSUPPORTED: [405, 'the operation is unsupported'],
  TOOMANYREQUESTS: [429, 'too many requests'],
  UNKNOWN: [500, 'unknown error'],
  BAD_GATEWAY: [502, 'the upstream registry failed'],
  UNAVAILABLE: [503, 'service unavailable'],
});

export type RegistryErrorCode = keyof typeof RegistryErrors;

/** An error that becomes one entry of a registry `{"errors":[...]}` body. */
export class RegistryError extends Error {
  readonly code: RegistryErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers, e.g. WWW-Authenticate or Retry-After. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: RegistryErrorCode,
    options: { message?: string; detail?: unknown; headers?: Record<string, string>; status?: number; cause?: unknown } = {},
  ) {
    const d = RegistryErrors[code];
    super(options.message ?? d.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = options.status ?? d.status;
    this.detail = options.detail;
    this.headers = Object.freeze({ ...(options.headers ?? {}) });
  }
}

/** The JSON body of a registry error response (distribution-spec "Error Codes"). */
export function registryErrorBody(...errors: RegistryError[]): string {
  return JSON.stringify({
    errors: errors.map((e) => ({ code: e.code, message: e.message, ...(e.detail === undefined ? {} : { detail: e.detail }) })),
  });
}

/** The minimal response surface the writer needs (node's ServerResponse and Express's both fit). */
export interface ErrorResponseTarget {
  statusCode: number;
  headersSent: boolean;
  setHeader(name: string, value: string | number): unknown;
  end(body?: string): unknown;
}

/** Writes a registry error response: status, headers and the `{"errors":[...]}` body. */
export function writeRegistryError(res: ErrorResponseTarget, error: RegistryError, head = false): void {
  if (res.headersSent) return;
  const body = registryErrorBody(error);
  res.statusCode = error.status;
  for (const [k, v] of Object.entries(error.headers)) res.setHeader(k, v);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
  res.end(head ? undefined : body);
}
