import { setTimeout as sleep } from 'node:timers/promises';
import { UpstreamUnavailableError } from './errors.js';

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

/** Classifies a transport error: a timeout, or a connection-level failure. */
export function classify(upstream: string, err: unknown): UpstreamUnavailableError {
  if (err instanceof UpstreamUnavailableError) return err;
  const timeout = err instanceof Error && err.name === 'TimeoutError';
  const msg = err instanceof Error ? ((err as { code?: string }).code ?? err.message) : String(err);
  return new UpstreamUnavailableError(upstream, timeout ? 'timeout' : 'connection', timeout ? `timed out (${msg})` : `connection failed (${msg})`, {
    cause: err,
  });
}

/** Delay before attempt `n` (1-based, n >= 2). */
export function backoff(policy: RetryPolicy, n: number): number {
  const d = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 2));
  return d / 2 + Math.random() * (d / 2);
}

/**
 * Runs `attempt` until it returns a response whose status is not retryable, or the attempts run
 * out. Transport errors are retried too. `discard` releases a response that will not be used.
 */
export async function withRetry<R extends { statusCode: number }>(
  upstream: string,
  policy: RetryPolicy,
  signal: AbortSignal | undefined,
  attempt: () => Promise<R>,
  discard: (r: R) => Promise<void>,
): Promise<R> {
  let lastError: UpstreamUnavailableError | undefined;
  for (let n = 1; n <= policy.attempts; n++) {
    if (n > 1) await sleep(backoff(policy, n), undefined, { signal });
    if (signal?.aborted) throw classify(upstream, signal.reason);
    let res: R;
    try {
      res = await attempt();
    } catch (err) {
      if (signal?.aborted) throw classify(upstream, err);
      lastError = classify(upstream, err);
      continue;
    }
    if (n < policy.attempts && RETRYABLE_STATUS.has(res.statusCode)) {
      await discard(res);
      lastError = new UpstreamUnavailableError(upstream, 'status', `answered ${res.statusCode}`);
      continue;
    }
    return res;
  }
  throw lastError ?? new UpstreamUnavailableError(upstream, 'connection', 'no attempt made');
}
