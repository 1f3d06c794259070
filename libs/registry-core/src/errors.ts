/**
 * The wire codes a client can receive: those of the OCI distribution spec, distribution's own
 * UNKNOWN and UNAVAILABLE, and the proxy's BAD_GATEWAY. Docker and containerd turn a code they
 * do not know into UNKNOWN and act on the HTTP status, so a new status gets a new descriptor
 * with one of these codes rather than a new code.
 */
export type RegistryErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'TAG_INVALID'
  | 'PAGINATION_NUMBER_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'UNKNOWN'
  | 'BAD_GATEWAY'
  | 'UNAVAILABLE';

/** A registry protocol error descriptor: one row of the table that every response uses. */
export interface ErrorDescriptor {
  /** The table key, e.g. `BODY_TOO_LARGE`; equal to `code` for the plain spec errors. */
  readonly name: string;
  /** The code on the wire, e.g. `SIZE_INVALID`. */
  readonly code: RegistryErrorCode;
  readonly message: string;
  readonly status: number;
}

type Row = readonly [status: number, message: string, code?: RegistryErrorCode];

function table<K extends string>(rows: Record<K, Row>): Readonly<Record<K, ErrorDescriptor>> {
  const out = {} as Record<K, ErrorDescriptor>;
  for (const name of Object.keys(rows) as K[]) {
    const [status, message, code] = rows[name];
    out[name] = Object.freeze({ name, code: code ?? (name as string as RegistryErrorCode), message, status });
  }
  return Object.freeze(out);
}

/**
 * Every error a client can receive from the proxy, with its HTTP status: the status lives here
 * and nowhere else (distribution's errcode.Register). docs/errors.md lists each row; a test
 * walks both. Rows without a third element send their own name as the code.
 */
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
  // Statuses the spec has no code for, under the spec code that says what went wrong.
  REQUEST_INVALID: [400, 'malformed request', 'UNSUPPORTED'],
  REQUEST_TIMEOUT: [408, 'request not received in time', 'UNAVAILABLE'],
  BODY_TOO_LARGE: [413, 'request body too large', 'SIZE_INVALID'],
  MEDIA_UNSUPPORTED: [415, 'unsupported body encoding or charset', 'UNSUPPORTED'],
  EXPECTATION_FAILED: [417, 'only Expect: 100-continue is supported', 'UNSUPPORTED'],
  HEAD_TOO_LARGE: [431, 'request head too large', 'SIZE_INVALID'],
  UPSTREAM_TIMEOUT: [504, 'upstream registry timed out', 'UNAVAILABLE'],
});

/** The name of a row of {@link RegistryErrors}. */
export type RegistryErrorName = keyof typeof RegistryErrors;

/** An error that becomes one entry of a registry `{"errors":[...]}` body. */
export class RegistryError extends Error {
  readonly code: RegistryErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers, e.g. WWW-Authenticate or Retry-After. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(name: RegistryErrorName, options: { message?: string; detail?: unknown; headers?: Record<string, string>; cause?: unknown } = {}) {
    const d = RegistryErrors[name];
    super(options.message ?? d.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegistryError';
    this.code = d.code;
    this.status = d.status;
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
