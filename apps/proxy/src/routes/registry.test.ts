import { rewriteLocation } from './registry.js';

describe('rewriteLocation', () => {
  const up = new URL('https://gcr.upstream.test/v2/proj/app/blobs/uploads/');
  const base = 'https://registry.example.com';
  it('moves Locations under the upstream repository into the proxy under the client name, query intact', () => {
    expect(rewriteLocation('https://gcr.upstream.test/v2/proj/app/blobs/uploads/u1?_state=abc%3D', up, 'proj/app', 'gcr/app', base)).toBe(
      'https://registry.example.com/v2/gcr/app/blobs/uploads/u1?_state=abc%3D',
    );
    expect(rewriteLocation('/v2/proj/app/blobs/sha256:00', up, 'proj/app', 'gcr/app', base)).toBe('https://registry.example.com/v2/gcr/app/blobs/sha256:00');
    expect(rewriteLocation('/v2/proj/app/manifests/sha256:00', up, 'proj/app', 'app', base, 'docker.io')).toBe('https://registry.example.com/v2/app/manifests/sha256:00?ns=docker.io');
  });
  it('leaves other hosts and other repositories alone (made absolute)', () => {
    expect(rewriteLocation('https://storage.test/bucket/x?sig=1', up, 'proj/app', 'gcr/app', base)).toBe('https://storage.test/bucket/x?sig=1');
    expect(rewriteLocation('/v2/proj/application/blobs/x', up, 'proj/app', 'gcr/app', base)).toBe('https://gcr.upstream.test/v2/proj/application/blobs/x');
    expect(rewriteLocation('http://gcr.upstream.test/v2/proj/app/blobs/x', up, 'proj/app', 'gcr/app', base)).toBe('http://gcr.upstream.test/v2/proj/app/blobs/x');
  });
  it('refuses a Location that is not a URL', () => {
    expect(() => rewriteLocation('http://[bad', up, 'a', 'b', base)).toThrow(/invalid Location/);
  });
});
