import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from './config/schema.js';
import { memoryLimiters, type LimiterFactory } from './state/limiter.js';

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

/**
 * Builds every token endpoint limiter from the configuration, on one state engine: this
 * process's memory, or Redis (state.redis) so a budget is one budget across replicas.
 */
export function createTokenLimiters(limits: Config['rateLimits'], limiters: LimiterFactory = memoryLimiters()): TokenLimiters {
  const make = (keyPrefix: string, w: Window) => limiters({ keyPrefix: `token-${keyPrefix}`, points: w.points, durationSeconds: w.durationSeconds });
  return {
    client: make('client', window(limits.perClient)),
    failures: make('failures', limits.failures),
    identity: make('identity', window(limits.perAccount)),
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
