import { parseApiPath } from './api-path.js';
import type { RegistryError } from './errors.js';

const D = `sha256:${'0'.repeat(64)}`;

function code(path: string): string {
  try {
    parseApiPath(path);
    return 'ok';
  } catch (e) {
    return (e as RegistryError).code;
  }
}

describe('parseApiPath', () => {
  it('parses endpoints, names with many segments and names that contain endpoint words', () => {
    expect(parseApiPath('/')).toEqual({ kind: 'base' });
    expect(parseApiPath('')).toEqual({ kind: 'base' });
    expect(parseApiPath('/_catalog')).toEqual({ kind: 'catalog' });
    expect(parseApiPath('/a/b/c/manifests/v1')).toEqual({ kind: 'manifest', name: 'a/b/c', reference: 'v1' });
    expect(parseApiPath(`/a/manifests/${D}`)).toEqual({ kind: 'manifest', name: 'a', reference: D });
    expect(parseApiPath('/team/manifests/app/manifests/v1')).toEqual({ kind: 'manifest', name: 'team/manifests/app', reference: 'v1' });
    expect(parseApiPath(`/a/blobs/${D}`)).toEqual({ kind: 'blob', name: 'a', digest: D });
    expect(parseApiPath('/a/b/tags/list')).toEqual({ kind: 'tags', name: 'a/b' });
    expect(parseApiPath('/a/blobs/uploads/')).toEqual({ kind: 'upload', name: 'a' });
    expect(parseApiPath('/a/blobs/uploads')).toEqual({ kind: 'upload', name: 'a' });
    expect(parseApiPath('/a/b/blobs/uploads/0b7f5a2e-4c1b-4b7e-9a57-1f0c0a3a7d11')).toEqual({ kind: 'upload', name: 'a/b', session: '0b7f5a2e-4c1b-4b7e-9a57-1f0c0a3a7d11' });
    for (const bad of ['/a/blobs/uploads/..', '/a/blobs/uploads/%2e%2e', '/a/blobs/uploads/x/y', `/a/blobs/uploads/${'x'.repeat(513)}`]) {
      expect(() => parseApiPath(bad)).toThrow(expect.objectContaining({ code: expect.stringMatching(/BLOB_UPLOAD_UNKNOWN|NAME_INVALID|NAME_UNKNOWN/) }));
    }
  });
  it.each([
    ['/../etc/manifests/v1', 'NAME_INVALID'],
    ['/a/../b/manifests/v1', 'NAME_INVALID'],
    ['/a%2F..%2Fb/manifests/v1', 'NAME_INVALID'],
    ['/A/manifests/v1', 'NAME_INVALID'],
    ['//a/manifests/v1', 'NAME_INVALID'],
    ['/a/manifests/-bad', 'TAG_INVALID'],
    ['/a/manifests/%2e%2e', 'TAG_INVALID'],
    ['/a/manifests/sha256:abc', 'DIGEST_INVALID'],
    ['/a/blobs/latest', 'DIGEST_INVALID'],
    ['/a/blobs/sha256:..', 'DIGEST_INVALID'],
    ['/a/whatever', 'NAME_UNKNOWN'],
    ['/a/manifests/', 'NAME_UNKNOWN'],
  ])('%s -> %s', (path, expected) => {
    expect(code(path)).toBe(expected);
  });
});
