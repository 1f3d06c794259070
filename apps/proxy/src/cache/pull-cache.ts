import type { UpstreamClient } from '@registry-proxy/registry-core';
import { BlobCache } from './blob-cache.js';
import { PASS, SHA256, type CacheCore, type CacheOutcome, type CacheRequest } from './cache-base.js';
import type { CacheConfig } from './config.js';
import { ManifestCache } from './manifest-cache.js';

export { CacheCore, type CacheOutcome, type CacheRequest } from './cache-base.js';

/** The pull-through cache of one upstream (docs/configuration.md, "Pull-through cache"). */
export class PullCache {
  private readonly blobs: BlobCache;
  private readonly manifests: ManifestCache;

  constructor(
    readonly core: CacheCore,
    client: UpstreamClient,
    config: CacheConfig,
  ) {
    this.blobs = new BlobCache(core, client, config);
    this.manifests = new ManifestCache(core, client, config);
  }

  /** Answers a blob or manifest GET/HEAD from the cache, or says how the relay should go on. Only sha256 digests are cached. */
  async serve(r: CacheRequest): Promise<CacheOutcome> {
    this.core.metrics ??= r.metrics;
    const digest = r.kind === 'blob' || r.reference.includes(':');
    if (digest && !SHA256.test(r.reference)) return PASS;
    return r.kind === 'blob' ? this.blobs.serve(r) : this.manifests.serve(r);
  }
}
