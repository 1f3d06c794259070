import type { StateStore, UpstreamClient } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { LocalFillLock } from './fill-lock.js';
import { FilesystemStore } from './filesystem-store.js';
import { CacheCore, PullCache } from './pull-cache.js';
import { SharedFillLock } from './shared-fill-lock.js';

/**
 * Opens the cache stores the configuration names (one per directory, shared by the upstreams
 * that name it); one PullCache per caching upstream, by index. With `sharedState` (state.redis
 * configured) fill locks are taken there, so replicas sharing a store fetch each blob once.
 */
export async function openCaches(config: Config, clients: readonly UpstreamClient[], logger: Logger, sharedState?: StateStore): Promise<Array<PullCache | undefined>> {
  const cores = new Map<string, CacheCore>();
  const out: Array<PullCache | undefined> = [];
  for (const [i, u] of config.upstreams.entries()) {
    const c = u.cache;
    if (!c) {
      out.push(undefined);
      continue;
    }
    let core = cores.get(c.store.path);
    if (!core) {
      const holder: { core?: CacheCore } = {};
      const store = await FilesystemStore.open(c.store.path, c.maxBytes, (digest, size) => {
        holder.core?.metrics?.cacheEvictions.inc({ store: c.store.path });
        logger.debug({ digest, size, store: c.store.path }, 'cache: evicted');
      });
      if (store.openError) {
        const e = store.openError as NodeJS.ErrnoException;
        logger.warn({ err: { message: e.message, code: e.code }, key: `upstreams.${i}.cache.store.path` }, 'cache store is not writable: pulls are relayed without caching until it is');
      }
      const lock = sharedState
        ? new SharedFillLock(sharedState, logger, { scope: store.description, onFallback: () => holder.core?.metrics?.cacheLockFallbacks.inc({ store: c.store.path }) })
        : new LocalFillLock();
      core = new CacheCore(store, lock);
      holder.core = core;
      cores.set(c.store.path, core);
      logger.info({ store: store.description, bytes: store.bytes, maxBytes: c.maxBytes }, 'cache store opened');
    }
    out.push(new PullCache(core, clients[i] as UpstreamClient, c));
  }
  return out;
}
