import { UpstreamClient, type StateStore, type UpstreamCredentialProvider } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { LocalFillLock } from './fill-lock.js';
import { FilesystemStore } from './filesystem-store.js';
import type { CacheConfig } from './config.js';
import { CacheCore, PullCache } from './pull-cache.js';
import { RegistryStore, type RegistryStoreOptions } from './registry-store.js';
import { SharedFillLock } from './shared-fill-lock.js';

/**
 * Opens the cache stores the configuration names (one per directory, shared by the upstreams
 * that name it); one PullCache per caching upstream, by index. With `sharedState` (state.redis
 * configured) fill locks are taken there, so replicas sharing a store fetch each blob once.
 */
export async function openCaches(
  config: Config,
  clients: readonly UpstreamClient[],
  logger: Logger,
  sharedState?: StateStore,
  credentials: (c: RegistryStoreConfig['credentials'], key: string) => UpstreamCredentialProvider = () => {
    throw new Error('no credential providers given for the registry store');
  },
): Promise<Array<PullCache | undefined>> {
  const cores = new Map<string, CacheCore>();
  const out: Array<PullCache | undefined> = [];
  for (const [i, u] of config.upstreams.entries()) {
    const c = u.cache;
    if (!c) {
      out.push(undefined);
      continue;
    }
    const where = c.store.type === 'filesystem' ? c.store.path : `${c.store.url}/${c.store.repository}`;
    let core = cores.get(where);
    if (!core && c.store.type === 'registry') {
      const holder: { core?: CacheCore } = {};
      const store = registryStore(c.store, credentials(c.store.credentials, `upstreams.${i}.cache.store.credentials`), {
        maxBytes: c.maxBytes,
        onUploadFailed: (digest, err) => {
          holder.core?.metrics?.cacheErrors.inc({ upstream: u.name, reason: 'store' });
          logger.warn({ err: { message: err.message }, digest, store: where }, 'cache store upload failed (cancelled); the object was served but not stored');
        },
        onEvict: (digest, size) => {
          holder.core?.metrics?.cacheEvictions.inc({ store: where });
          logger.debug({ digest, size, store: where }, 'cache: evicted');
        },
        onEvictFailed: (digest, err) => {
          holder.core?.metrics?.cacheErrors.inc({ upstream: u.name, reason: 'store' });
          logger.warn({ err: { message: err.message }, digest, store: where }, 'cache store eviction failed; the object stays and the fill goes on');
        },
        onIndexed: (result) => {
          if (result instanceof Error)
            logger.warn({ err: { message: result.message }, store: where }, 'cache store index failed (tried again in a minute); the quota counts only the objects met meanwhile');
          else {
            holder.core?.metrics?.cacheStoreBytes.set({ store: store.description }, store.bytes);
            logger.info({ store: where, ...result, maxBytes: c.maxBytes }, 'cache store indexed');
          }
        },
      });
      const lock = sharedState
        ? new SharedFillLock(sharedState, logger, { scope: store.description, onFallback: () => holder.core?.metrics?.cacheLockFallbacks.inc({ store: where }) })
        : new LocalFillLock();
      core = new CacheCore(store, lock);
      holder.core = core;
      cores.set(where, core);
      logger.info({ store: store.description, maxBytes: c.maxBytes }, 'cache store opened (an OCI registry; indexing its objects in the background)');
      void store.index();
    }
    if (!core && c.store.type === 'filesystem') {
      const path = c.store.path;
      const holder: { core?: CacheCore } = {};
      const store = await FilesystemStore.open(path, c.maxBytes, (digest, size) => {
        holder.core?.metrics?.cacheEvictions.inc({ store: path });
        logger.debug({ digest, size, store: path }, 'cache: evicted');
      });
      if (store.openError) {
        const e = store.openError as NodeJS.ErrnoException;
        logger.warn({ err: { message: e.message, code: e.code }, key: `upstreams.${i}.cache.store.path` }, 'cache store is not writable: pulls are relayed without caching until it is');
      }
      const lock = sharedState
        ? new SharedFillLock(sharedState, logger, { scope: store.description, onFallback: () => holder.core?.metrics?.cacheLockFallbacks.inc({ store: path }) })
        : new LocalFillLock();
      core = new CacheCore(store, lock);
      holder.core = core;
      cores.set(where, core);
      logger.info({ store: store.description, bytes: store.bytes, maxBytes: c.maxBytes }, 'cache store opened');
    }
    out.push(new PullCache(core as CacheCore, clients[i] as UpstreamClient, c));
  }
  return out;
}

export type RegistryStoreConfig = Extract<CacheConfig['store'], { type: 'registry' }>;

/** The RegistryStore a configuration names (the proxy's, and the `cache` CLI's). */
export function registryStore(c: RegistryStoreConfig, credentials: UpstreamCredentialProvider, opts: Omit<RegistryStoreOptions, 'client' | 'repository' | 'spoolDir'>): RegistryStore {
  const client = new UpstreamClient({
    name: 'cache-store',
    url: c.url,
    credentials,
    // Storage redirects (S3, GCS presigned URLs) are followed: the proxy reads the bytes itself.
    followRedirects: true,
    ca: c.ca,
    // One attempt: a store that fails is skipped (the pull is relayed), not waited for.
    retry: { attempts: 1, baseDelayMs: 100, maxDelayMs: 100 },
    timeouts: { connectMs: 2000, headersMs: 10_000, bodyIdleMs: 30_000 },
    userAgent: 'registry-proxy/0.1 (cache store)',
  });
  return new RegistryStore({ ...opts, client, repository: c.repository, spoolDir: c.spoolDir });
}
