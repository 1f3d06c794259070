import { MemoryStateStore, type StateStore } from '@registry-proxy/registry-core';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { resolveSecret } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { memoryLimiters, redisLimiters, type LimiterFactory } from './limiter.js';
import { RedisStateStore, createRedisClient } from './redis.js';

/** The state engine of this replica: one store for records and locks, one factory for rate limiters. */
export interface SharedState {
  readonly store: StateStore;
  readonly limiters: LimiterFactory;
  /** The Redis client, when state.redis is configured (for stores with their own data shapes). */
  readonly redis?: Redis;
  close(): Promise<void>;
}

/**
 * Memory unless `state.redis` is configured. With Redis the proxy starts even when Redis is
 * not reachable yet (it keeps reconnecting): checks that fail closed refuse until it is.
 */
export async function createSharedState(config: Config['state'], logger: Logger): Promise<SharedState> {
  const r = config.redis;
  if (r === undefined) {
    const store = new MemoryStateStore();
    return { store, limiters: memoryLimiters(), close: () => store.close() };
  }
  const client = createRedisClient({ url: resolveSecret(r.url, 'state.redis.url'), keyPrefix: r.keyPrefix, commandTimeoutMs: r.commandTimeoutMs, connectTimeoutMs: r.connectTimeoutMs }, logger);
  const store = new RedisStateStore(client);
  if (await store.connect()) logger.info({ keyPrefix: r.keyPrefix }, 'shared state on redis');
  else logger.warn('redis not reachable at start-up; retrying in the background');
  return { store, limiters: redisLimiters(client, logger), redis: client, close: () => store.close() };
}
