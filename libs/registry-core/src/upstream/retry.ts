import { setTimeout as sleep } from 'node:timers/promises';
import { followSignal, type CancelSignal } from './cancel.js';
import { NoResponseError, UpstreamUnavailableError } from './errors.js';
import { ProtocolError } from './head.js';

/** Statuses worth another try for an idempotent request. */
export const RETRYABLE_STATUS = new Set([502, 503, 504]);

/** How an idempotent request is retried. */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  /** Delay before the second attempt; it doubles each time, with jitter, up to maxDelayMs. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ attempts: 3, baseDelayMs: 100, maxDelayMs: 2000 });

/**
 * Only GET and HEAD are ever sent twice. PUT and DELETE are idempotent in RFC 9110's sense, but a
 * registry's are not harmless to repeat: a second manifest PUT fires a second push event, and a
 * second upload PUT finds its session gone and turns a success into a 404.
 */
export function isRetryable(method: string): boolean {
  return method === 'GET' || method === 'HEAD';
}

/** Classifies a transport error: a timeout, a protocol violation, or a connection-level failure. */
export function classify(upstream: string, err: unknown): UpstreamUnavailableError {
  if (err instanceof UpstreamUnavailableError) return err;
  if (err instanceof ProtocolError) return new UpstreamUnavailableError(upstream, 'protocol', err.message, { cause: err });
  const timeout = err instanceof Error && err.name === 'TimeoutError';
  const msg = err instanceof Error ? ((err as { code?: string }).code ?? err.message) : String(err);
  return new UpstreamUnavailableError(upstream, timeout ? 'timeout' : 'connection', timeout ? `timed out (${msg})` : `connection failed (${msg})`, {
    cause: err,
  });
}

/** Errors after which nothing came back from the upstream: the request may go again. */
function noAnswer(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return err instanceof NoResponseError || code === 'ECONNREFUSED';
}

/** Delay before attempt `n` (1-based, n >= 2). */
export function backoff(policy: RetryPolicy, n: number): number {
  const d = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 2));
  return d / 2 + Math.random() * (d / 2);
}

/**
 * Runs `attempt` for a request sent with `method`, and sends it again only when that is safe
 * and could help:
 * - only GET and HEAD ({@link isRetryable}); any other method is sent exactly once;
 * - after a refused connection, or a reset/EOF before any byte of the response came back, or
 *   a 502/503/504 answer; never after a timeout (a second wait would double the worst case),
 *   a protocol error, or a response that had begun;
 * - at most `policy.attempts` times in all, plus once more, at once, when a kept-alive
 *   connection turned out closed by the server (the request never reached it).
 * So per call: at most attempts + 1 upstream requests, and at most
 * (attempts + 1) x (connect timeout + headers timeout) + (attempts - 1) x maxDelayMs until
 * response headers. `discard` releases a response that will not be used.
 */
export async function withRetry<R extends { statusCode: number }>(
  upstream: string,
  policy: RetryPolicy,
  method: string,
  signal: CancelSignal | undefined,
  attempt: () => Promise<R>,
  discard: (r: R) => Promise<void>,
): Promise<R> {
  const attempts = isRetryable(method) ? policy.attempts : 1;
  let staleRetried = false;
  let again = false;
  let lastError: UpstreamUnavailableError | undefined;
  for (let n = 1; n <= attempts; n++) {
    if (n > 1 && !again) await pause(backoff(policy, n), signal);
    again = false;
    if (signal?.aborted) throw classify(upstream, signal.reason);
    let res: R;
    try {
      res = await attempt();
    } catch (err) {
      if (signal?.aborted) throw classify(upstream, err);
      lastError = classify(upstream, err);
      if (!isRetryable(method) || !noAnswer(err)) throw lastError;
      if (err instanceof NoResponseError && err.reusedConnection && !staleRetried) {
        // The stale connection's failure is not the upstream's: it costs no attempt and no delay.
        staleRetried = again = true;
        n--;
      }
      continue;
    }
    if (n < attempts && RETRYABLE_STATUS.has(res.statusCode)) {
      await discard(res);
      lastError = new UpstreamUnavailableError(upstream, 'status', `answered ${res.statusCode}`);
      continue;
    }
    return res;
  }
  throw lastError ?? new UpstreamUnavailableError(upstream, 'connection', 'no attempt made');
}

/** The backoff before another attempt, cut short (rejecting as timers/promises does) when `signal` fires. */
async function pause(ms: number, signal: CancelSignal | undefined): Promise<void> {
  if (signal === undefined) return sleep(ms);
  const follower = followSignal(signal);
  try {
    await sleep(ms, undefined, { signal: follower.signal });
  } finally {
    follower.detach();
  }
}
