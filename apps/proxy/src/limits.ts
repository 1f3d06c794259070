import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Redis } from 'ioredis';
import type { Config } from './config/schema.js';

/**
 * Where limiter counters live: this process (one replica's view), or a Redis shared by every
 * replica, so a budget is one budget however many replicas serve it.
 */
export type LimiterStore = { readonly kind: 'memory' } | { readonly kind: 'redis'; readonly client: Redis };

/** The token endpoint's limiters (issue 11, defect 5). */
export interface TokenLimiters {
  /** Every request, per client address. */
  readonly client: RateLimiterAbstract;
  /**
   * Password attempts per (claimed account, client address): taken before the check and given
   * back when it succeeds, so only failures stay counted and one address guessing at an
   * account (or at `aws-iid`) locks out nobody else.
   */
  readonly failures: RateLimiterAbstract;
  /** Tokens issued per verified identity (the instance for IID, else the subject); only a verified login spends it. */
  readonly identity: RateLimiterAbstract;
}

type Window = { readonly points: number; readonly durationSeconds: number };

/** `burst` requests per window of `burst / perSecond` seconds: about `perSecond` on average, `burst` at once. */
function window(b: { burst: number; perSecond: number }): Window {
  return { points: b.burst, durationSeconds: Math.max(1, Math.ceil(b.burst / b.perSecond)) };
}

function limiter(store: LimiterStore, keyPrefix: string, w: Window): RateLimiterAbstract {
  const opts = { keyPrefix: `rp:${keyPrefix}`, points: w.points, duration: w.durationSeconds };
  return store.kind === 'redis' ? new RateLimiterRedis({ ...opts, storeClient: store.client }) : new RateLimiterMemory(opts);
}

/** Builds every token endpoint limiter from the configuration, on one store. */
export function createTokenLimiters(limits: Config['rateLimits'], store: LimiterStore = { kind: 'memory' }): TokenLimiters {
  return {
    client: limiter(store, 'client', window(limits.perClient)),
    failures: limiter(store, 'failures', limits.failures),
    identity: limiter(store, 'identity', window(limits.perAccount)),
  };
}

/**
 * Takes a point: undefined when granted, else the whole seconds to wait. Errors of a shared
 * store propagate (the caller answers 503), they never count as "allowed".
 */
export async function take(l: RateLimiterAbstract, key: string): Promise<number | undefined> {
  try {
    await l.consume(key);
    return undefined;
  } catch (res) {
    if (res instanceof RateLimiterRes) return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    throw res;
  }
}
