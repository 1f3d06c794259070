import { ProxyError, StateUnavailableError, type ClaimResult, type Lock, type StateStore } from '@registry-proxy/registry-core';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

export interface RedisStateOptions {
  /** `redis://[user:password@]host:port[/db]`, `rediss://...` (TLS), or `unix:///path/to/redis.sock`. */
  readonly url: string;
  /** Put in front of every key, so several deployments can share one Redis. */
  readonly keyPrefix: string;
  /** The longest any command may take; a frozen Redis costs a request at most this. */
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

// Atomic compare-and-set for trust-on-first-use bindings: bind if absent, renew if the same.
const CLAIM = `local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;
// One fence counter for every lock (increasing per key too); the lock's value is its fence.
const LOCK = `if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local f = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], f, 'PX', ARGV[1])
return f`;
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** ioredis options from a URL: a unix socket path, or the URL itself. */
export function redisConnection(url: string): { path: string } | { url: string } {
  if (url.startsWith('unix://')) return { path: decodeURIComponent(new URL(url).pathname) };
  if (/^rediss?:\/\//.test(url)) return { url };
  throw new ProxyError('RP_ERR_CONFIG_INVALID', 'state.redis.url: must start with redis://, rediss:// or unix://');
}

/** The ioredis client the store and the rate limiters share: fails fast instead of queueing. */
export function createRedisClient(opts: RedisStateOptions, logger: Logger): Redis {
  // `satisfies`, not a type annotation: ioredis's exported RedisOptions lets `replyMapping` be
  // undefined, which its constructor's own parameter type refuses under exactOptionalPropertyTypes.
  const options = {
    keyPrefix: opts.keyPrefix,
    commandTimeout: opts.commandTimeoutMs,
    // A command left unanswered that long also drops the connection: a frozen Redis then counts
    // as down, and later commands fail at once instead of each waiting out its own timeout.
    socketTimeout: opts.commandTimeoutMs,
    connectTimeout: opts.connectTimeoutMs,
    // While disconnected, commands fail at once rather than wait in a queue for a Redis that may
    // be gone for minutes: every caller has a decision for "no answer".
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    lazyConnect: true,
  } satisfies RedisOptions;
  const conn = redisConnection(opts.url);
  const client = 'path' in conn ? new Redis({ ...options, path: conn.path }) : new Redis(conn.url, options);
  // ioredis reports every failed reconnect; one line per outage is enough, with no URL (it may hold a password).
  let down = false;
  client.on('error', (err: Error) => {
    if (!down) logger.warn({ err: { message: err.message } }, 'redis unreachable: replay and revocation checks refuse, rate limits fall back to this replica');
    down = true;
  });
  client.on('ready', () => {
    if (down) logger.info('redis reachable again');
    down = false;
  });
  return client;
}

/** Shared state on Redis (ioredis). Every failure, including a timeout, is a StateUnavailableError. */
export class RedisStateStore implements StateStore {
  readonly kind = 'redis';

  constructor(private readonly client: Redis) {}

  /** Connects, or gives up after the connect timeout; the proxy starts either way (see docs/configuration.md). */
  async connect(): Promise<boolean> {
    try {
      await this.client.connect();
      return true;
    } catch {
      return false; // ioredis keeps reconnecting in the background
    }
  }

  private async run<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (cause) {
      throw new StateUnavailableError(`redis ${what}: ${(cause as Error).message}`, { cause });
    }
  }

  claim(key: string, value: string, ttlMs: number): Promise<ClaimResult> {
    return this.run('claim', async () => {
      const cur = (await this.client.eval(CLAIM, 1, key, value, String(Math.ceil(ttlMs)))) as string | null;
      return cur === null ? { claimed: true } : { claimed: false, current: cur };
    });
  }

  put(key: string, value: string, ttlMs: number): Promise<void> {
    return this.run('put', async () => {
      await this.client.set(key, value, 'PX', Math.ceil(ttlMs));
    });
  }

  get(key: string): Promise<string | undefined> {
    return this.run('get', async () => (await this.client.get(key)) ?? undefined);
  }

  lock(key: string, ttlMs: number): Promise<Lock | undefined> {
    return this.run('lock', async () => {
      const k = `lock:${key}`;
      const fence = (await this.client.eval(LOCK, 2, k, 'lock-fence', String(Math.ceil(ttlMs)))) as number | null;
      if (fence === null) return undefined;
      return {
        fence,
        extend: (ms: number) => this.run('lock extend', async () => (await this.client.eval(EXTEND, 1, k, String(fence), String(Math.ceil(ms)))) === 1),
        release: () => this.run('lock release', async () => (await this.client.eval(RELEASE, 1, k, String(fence))) === 1),
      };
    });
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}
