import type { UpstreamClient } from '@registry-proxy/registry-core';
import { Router, type Route } from './routing.js';

const client = (name: string) => ({ name }) as unknown as UpstreamClient;
const route = (prefix: string, namespace = '', dockerHub = false, more: Partial<Route> = {}): Route => ({
  prefix,
  namespace,
  dockerHub,
  hosts: [],
  mirrorOf: [],
  client: client(prefix || 'root'),
  ...more,
});

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

  it('routes by virtual host: a host that routes name serves only those; others get the host-less routes', () => {
    const r = new Router([
      route('', 'proj', false, { hosts: ['gcr.example.com'], client: client('gcr') }),
      route('', '', true, { hosts: ['hub.example.com:8443'], client: client('hub') }),
      route('', '', false, { client: client('default') }),
    ]);
    const up = (name: string, host?: string) => {
      const t = r.resolve(name, { host });
      return t && `${t.route.client.name}:${t.name}`;
    };
    expect(up('team/app', 'gcr.example.com')).toBe('gcr:proj/team/app');
    expect(up('team/app', 'GCR.example.com:443')).toBe('gcr:proj/team/app'); // no port in the route: any port
    expect(up('alpine', 'hub.example.com:8443')).toBe('hub:library/alpine');
    expect(up('alpine', 'hub.example.com:9999')).toBe('default:alpine'); // the port is part of that route's host
    expect(up('team/app', 'registry.example.com')).toBe('default:team/app');
    expect(up('team/app')).toBe('default:team/app');
  });
  it('serves as a containerd mirror: ?ns= picks the upstream, names stay as they are', () => {
    const r = new Router([route('hub', '', true, { mirrorOf: ['docker.io'] }), route('q', 'ns', false, { mirrorOf: ['quay.io'] }), route('')]);
    expect(r.resolve('alpine', { ns: 'docker.io' })).toMatchObject({ name: 'library/alpine', ns: 'docker.io', route: { prefix: 'hub' } });
    expect(r.resolve('bitnami/redis', { ns: 'registry-1.docker.io' })).toMatchObject({ name: 'bitnami/redis', route: { prefix: 'hub' } });
    expect(r.resolve('org/app', { ns: 'QUAY.io' })).toMatchObject({ name: 'org/app', route: { prefix: 'q' } });
    expect(r.resolve('org/app', { ns: 'ghcr.io' })).toBeUndefined();
  });
  it('locates token scopes: a registry-qualified name on the mirror of that registry, others by host and prefix (issue 11, defect 6)', () => {
    const r = new Router([route('hub', '', true, { mirrorOf: ['docker.io'] }), route('q', 'ns', false, { mirrorOf: ['quay.io'] }), route('')]);
    expect(Router.scopeName('org/app', 'Quay.IO')).toBe('quay.io/org/app');
    expect(Router.scopeName('org/app', undefined)).toBe('org/app');
    expect(r.locate('quay.io/org/app', undefined)).toEqual({ upstream: 'q', name: 'org/app' });
    expect(r.locate('docker.io/library/alpine', undefined)).toEqual({ upstream: 'hub', name: 'library/alpine' });
    expect(r.locate('registry-1.docker.io/library/alpine', undefined)).toEqual({ upstream: 'hub', name: 'library/alpine' });
    expect(r.locate('org/app', undefined)).toEqual({ upstream: 'root', name: 'org/app' });
    expect(r.locate('q/org/app', undefined)).toEqual({ upstream: 'q', name: 'q/org/app' });
    // A registry nobody mirrors is just a name's first component.
    expect(r.locate('ghcr.io/org/app', undefined)).toEqual({ upstream: 'root', name: 'ghcr.io/org/app' });
    expect(new Router([route('q', 'ns')]).locate('other/app', undefined)).toBeUndefined();
  });
  it('maps upstream names back to client names, refusing ones the route does not expose', () => {
    const gcr = router.routes.find((x) => x.prefix === 'gcr') as Route;
    expect(router.clientName(gcr, 'my-project/images/a/b', undefined)).toBe('gcr/a/b');
    expect(router.clientName(gcr, 'elsewhere/a', undefined)).toBeUndefined();
    // gcr/team/... belongs to the longer prefix, so the gcr route does not expose team/...
    expect(router.clientName(gcr, 'my-project/images/team/x', undefined)).toBeUndefined();
  });
});
