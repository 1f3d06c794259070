import { UpstreamClient, type StateStore, type UpstreamCredentialProvider } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { LocalFillLock } from './fill-lock.js';
import { FilesystemStore } from './filesystem-store.js';
import type { CacheConfig } from './config.js';
import { CacheCore, PullCache } from './pull-cache.js';
import { RegistryStore } from './registry-store.js';
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
      const store = registryStore(c.store, credentials(c.store.credentials, `upstreams.${i}.cache.store.credentials`), (digest, err) => {
        holder.core?.metrics?.cacheErrors.inc({ upstream: u.name, reason: 'store' });
        logger.warn({ err: { message: err.message }, digest, store: where }, 'cache store upload failed (cancelled); the object was served but not stored');
      });
      const lock = sharedState
        ? new SharedFillLock(sharedState, logger, { scope: store.description, onFallback: () => holder.core?.metrics?.cacheLockFallbacks.inc({ store: where }) })
        : new LocalFillLock();
      core = new CacheCore(store, lock);
      holder.core = core;
      cores.set(where, core);
      logger.info({ store: store.description }, 'cache store opened (an OCI registry; its size is managed there)');
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

type RegistryStoreConfig = Extract<CacheConfig['store'], { type: 'registry' }>;

function registryStore(c: RegistryStoreConfig, credentials: UpstreamCredentialProvider, onUploadFailed: (digest: string, err: Error) => void): RegistryStore {
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
  return new RegistryStore({ client, repository: c.repository, spoolDir: c.spoolDir, onUploadFailed });
}
