/** The upstream could not be reached or did not answer in time; the proxy answers 502/504. */
export class UpstreamUnavailableError extends Error {
  constructor(
    readonly upstream: string,
    readonly kind: 'timeout' | 'connection' | 'status' | 'protocol' | 'redirect',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`upstream ${upstream}: ${message}`, options);
    this.name = 'UpstreamUnavailableError';
  }
}

/**
 * A connection was reset or closed before any byte of the response came back. On a reused
 * (kept-alive) connection this is the race with a server closing it while idle: the request most
 * likely never reached the server. `code` is the socket error's (ECONNRESET, EPIPE) or ECONNCLOSED.
 */
export class NoResponseError extends Error {
  readonly code: string;
  constructor(
    cause: Error,
    /** The connection had carried an earlier exchange. */
    readonly reusedConnection: boolean,
  ) {
    super(`connection lost before the response (${(cause as NodeJS.ErrnoException).code ?? cause.message})`, { cause });
    this.name = 'NoResponseError';
    this.code = (cause as NodeJS.ErrnoException).code ?? 'ECONNCLOSED';
  }
}
