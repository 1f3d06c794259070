/** The upstream could not be reached or did not answer in time; the proxy answers 502/504. */
export class UpstreamUnavailableError extends Error {
  constructor(
    readonly upstream: string,
    readonly kind: 'timeout' | 'connection' | 'status' | 'protocol',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`upstream ${upstream}: ${message}`, options);
    this.name = 'UpstreamUnavailableError';
  }
}
