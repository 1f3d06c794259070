import { staticProvider, UpstreamClient } from '@registry-proxy/registry-core';
import bcrypt from 'bcryptjs';

/** The password of `alice`, the one user of {@link registryStoreProxyConfig}. */
export const ALICE_PW = 'alice-pw';

/**
 * The proxy configuration the `registry` cache store suites share: `alice` may pull `team/**`
 * from one upstream whose cache is a store registry (user `store`, password `store-pw`), with
 * one attempt per upstream request so a fault shows at once.
 */
export function registryStoreProxyConfig(o: {
  upstream: string;
  store: string;
  repository: string;
  spoolDir: string;
  maxBytes?: number | string;
  /** The upstream's name (`local`). */
  name?: string;
  /** The upstream's credentials (`up` / `up-pw`); false for none. */
  upstreamCredentials?: boolean;
}): Record<string, unknown> {
  return {
    auth: [{ type: 'static', users: [{ username: 'alice', passwordHash: bcrypt.hashSync(ALICE_PW, 4) }] }],
    rules: [{ account: 'alice', repository: ['team/**'], actions: ['pull'] }],
    upstreams: [
      {
        name: o.name ?? 'local',
        url: o.upstream,
        attempts: 1,
        ...(o.upstreamCredentials === false ? {} : { credentials: { type: 'static', username: 'up', password: 'up-pw' } }),
        cache: {
          store: { type: 'registry', url: o.store, repository: o.repository, credentials: { type: 'static', username: 'store', password: 'store-pw' }, spoolDir: o.spoolDir },
          maxBytes: o.maxBytes ?? '1GiB',
        },
      },
    ],
  };
}

/** A client of the store registry as the proxy builds one (user `store`, one attempt, no redirects), for tests that drive a RegistryStore directly. */
export function storeClient(url: string): UpstreamClient {
  return new UpstreamClient({
    name: 'cache-store',
    url,
    credentials: staticProvider({ kind: 'basic', username: 'store', password: 'store-pw' }),
    followRedirects: false,
    retry: { attempts: 1, baseDelayMs: 10, maxDelayMs: 10 },
  });
}
