import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

/** What a rate limit counts: `points` per `durationSeconds` window per key. */
export interface LimiterSpec {
  /** Names the limit; keeps its counters apart from every other limit's. */
  readonly keyPrefix: string;
  readonly points: number;
  readonly durationSeconds: number;
  /** Once over the limit, the key stays refused this long (0: until the window ends). */
  readonly blockDurationSeconds?: number;
}

/** Hands out rate-limiter-flexible limiters on the configured state engine. */
export type LimiterFactory = (spec: LimiterSpec) => RateLimiterAbstract;

/** Counters in this process: the single-replica default. */
export function memoryLimiters(): LimiterFactory {
  return (spec) => new RateLimiterMemory({ keyPrefix: spec.keyPrefix, points: spec.points, duration: spec.durationSeconds, blockDuration: spec.blockDurationSeconds ?? 0 });
}

/**
 * Counters on Redis, shared by every replica. Rate limits fail open: when Redis is down or
 * frozen (past the command timeout) each replica counts in its own memory instead, so limits
 * still hold per replica and no request is refused because of Redis. Logged once a minute.
 */
export function redisLimiters(client: Redis, logger: Logger, now: () => number = Date.now): LimiterFactory {
  let lastLog = -Infinity;
  return (spec) => {
    const limiter = new RateLimiterRedis({
      storeClient: client,
      keyPrefix: `rl:${spec.keyPrefix}`,
      points: spec.points,
      duration: spec.durationSeconds,
      blockDuration: spec.blockDurationSeconds ?? 0,
      // A disconnected client fails at once instead of waiting for the command timeout.
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({ keyPrefix: spec.keyPrefix, points: spec.points, duration: spec.durationSeconds }),
    });
    // _handleError is where rate-limiter-flexible turns a store error into the insurance call:
    // the one place that sees every Redis failure of every operation.
    const internals = limiter as unknown as { _handleError: (err: unknown, ...rest: unknown[]) => void };
    const handle = internals._handleError.bind(limiter);
    internals._handleError = (err, ...rest) => {
      if (!(err instanceof RateLimiterRes) && now() - lastLog >= 60_000) {
        lastLog = now();
        logger.warn({ err: { message: err instanceof Error ? err.message : String(err) }, limit: spec.keyPrefix }, 'rate limit counted on this replica only: redis unavailable');
      }
      handle(err, ...rest);
    };
    return limiter;
  };
}

/**
 * Takes one point: ok, or the whole seconds until the key may try again. A store error without
 * insurance also lets the request through (fail open), after logging it.
 */
export async function takeOne(limiter: RateLimiterAbstract, key: string, logger: Logger): Promise<{ ok: true } | { ok: false; retryAfter: number }> {
  try {
    await limiter.consume(key);
    return { ok: true };
  } catch (err) {
    if (err instanceof RateLimiterRes) return { ok: false, retryAfter: Math.max(1, Math.ceil(err.msBeforeNext / 1000)) };
    logger.warn({ err: { message: (err as Error).message } }, 'rate limit not checked: store unavailable');
    return { ok: true };
  }
}
