import type { UpstreamClient } from '@registry-proxy/registry-core';
import { Router, type Route } from './routing.js';

const client = (name: string) => ({ name }) as unknown as UpstreamClient;
const route = (prefix: string, namespace = '', dockerHub = false): Route => ({ prefix, namespace, dockerHub, client: client(prefix || 'root') });

describe('Router', () => {
  const router = new Router([route(''), route('gcr', 'my-project/images'), route('gcr/team', 'team-project'), route('hub', '', true)]);
  const resolve = (name: string) => {
    const t = router.resolve(name);
    return t && { upstream: t.route.client.name, name: t.name };
  };

  it('picks the longest matching prefix, whole segments only', () => {
    expect(resolve('gcr/team/app')).toEqual({ upstream: 'gcr/team', name: 'team-project/app' });
    expect(resolve('gcr/other/app')).toEqual({ upstream: 'gcr', name: 'my-project/images/other/app' });
    expect(resolve('gcrx/app')).toEqual({ upstream: 'root', name: 'gcrx/app' });
    expect(resolve('team/app')).toEqual({ upstream: 'root', name: 'team/app' });
  });
  it('gives Docker Hub single-segment names library/', () => {
    expect(resolve('hub/alpine')).toEqual({ upstream: 'hub', name: 'library/alpine' });
    expect(resolve('hub/bitnami/redis')).toEqual({ upstream: 'hub', name: 'bitnami/redis' });
  });
  it('does not route a bare prefix, and nothing without a catch-all', () => {
    const strict = new Router([route('gcr', 'p')]);
    expect(strict.resolve('gcr')).toBeUndefined();
    expect(strict.resolve('other/app')).toBeUndefined();
  });
});
