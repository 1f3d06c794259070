import { createHmac, randomBytes } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from './config/schema.js';
import { memoryLimiters, type LimiterFactory } from './state/limiter.js';

/** The token endpoint's limiters (issue 11, defect 5). */
export interface TokenLimiters {
  /** Every request, per client address. */
  readonly client: RateLimiterAbstract;
  /**
   * Password attempts per (claimed account, client address), through {@link FailureGate}: a
   * point is taken before the check, so a burst of guesses is cut off before it reaches the
   * password hashing; it is given back when the password is right, so only failures stay
   * counted, and one address guessing at an account (or at `aws-iid`) locks out nobody else.
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
 * The key the per-client limits count a client address under. An IPv4 address is itself. An
 * IPv6 address counts as its /64: that is the smallest block a network hands one host (SLAAC
 * and RFC 6177 give a subscriber at least a /64), so a host that picks a new address for every
 * request from the 2^64 it owns still has one budget. An IPv4-mapped address (`::ffff:a.b.c.d`,
 * how a dual-stack socket reports an IPv4 peer) is the IPv4 address. Anything else (not an IP
 * address) is returned as it is.
 */
export function clientKey(address: string): string {
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return address;
  const groups = ipv6Groups(address);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (zone dropped, `::` expanded, a dotted IPv4 tail as two groups). */
function ipv6Groups(address: string): number[] {
  const bare = address.split('%', 1)[0] as string;
  const half = (s: string): number[] =>
    s === ''
      ? []
      : s.split(':').flatMap((g) => {
          if (!g.includes('.')) return [parseInt(g, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const gap = bare.indexOf('::');
  if (gap < 0) return half(bare);
  const head = half(bare.slice(0, gap));
  const tail = half(bare.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
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

/**
 * The failures limit, per credential in flight: the first request with a given (account,
 * address, password) takes a point before its check, and every copy of that credential sent
 * while the point is held shares it (the password strategies check copies once, too). So a
 * node asking for 30 tokens at once with its right password spends one point, which its
 * success gives back, and is never held back by a limit of 10 failures; 40 different wrong
 * passwords at once still take 40 points, and all past the limit are refused unhashed.
 * The shared point is given back only when the last copy is done and none of them was a
 * refused password: a copy that is turned away before any check (an unknown service, say)
 * cannot return the point that a refused copy beside it spent.
 * The credential is held only as an HMAC under a key of this process, and only while checked.
 */
export class FailureGate {
  private readonly key = randomBytes(32);
  private readonly pending = new Map<string, { wait: Promise<number | undefined>; refs: number; refused: boolean; issued: boolean }>();

  constructor(private readonly limiter: RateLimiterAbstract) {}

  /**
   * The limiter's key for an account at an address. Directories match names loosely (LDAP's
   * uid ignores case and insignificant spaces), so `ALICE`, `alice ` and `alice` are one
   * account there: they share one budget here too, whatever the strategy.
   */
  static accountKey(username: string, client: string): string {
    return `${username.slice(0, 256).normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase()}\u0000${client}`;
  }

  /**
   * Takes (or shares) the point for one attempt: `wait` is undefined when it may be checked,
   * else the seconds until it may; `done` must be called with the check's outcome.
   */
  async enter(failureKey: string, password: string): Promise<{ wait: number | undefined; done: (outcome: 'issued' | 'denied' | 'other') => Promise<void> }> {
    const slot = `${failureKey}\u0000${createHmac('sha256', this.key).update(password).digest('base64')}`;
    let entry = this.pending.get(slot);
    if (entry === undefined) {
      entry = { wait: take(this.limiter, failureKey), refs: 0, refused: false, issued: false };
      this.pending.set(slot, entry);
    }
    entry.refs++;
    const e = entry;
    let left = false;
    /** True when this was the last copy out and the point was its group's to settle. */
    const leave = (): boolean => {
      if (left) return false;
      left = true;
      if (--e.refs > 0) return false;
      if (this.pending.get(slot) === e) this.pending.delete(slot);
      return true;
    };
    let wait: number | undefined;
    try {
      wait = await e.wait;
    } catch (err) {
      leave();
      throw err;
    }
    if (wait !== undefined) {
      leave(); // refused before a point was taken: nothing to give back
      return { wait, done: async () => undefined };
    }
    return {
      wait,
      done: async (outcome) => {
        if (outcome === 'denied') e.refused = true;
        if (outcome === 'issued') e.issued = true;
        const last = leave();
        // A success clears the slate for this address; a refused password keeps the group's
        // point; a group with neither (a backend down, a request turned away before its check)
        // gives it back, once, when its last copy is done.
        if (outcome === 'issued') await this.limiter.delete(failureKey);
        else if (last && !e.refused && !e.issued) await this.limiter.reward(failureKey);
      },
    };
  }
}
