import { normaliseConfigKey } from './providers/docker-config.js';
import { formatReference, isValidDigest, isValidRepositoryName, isValidTag, normaliseRegistryHost, parseReference } from './reference.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it.each([
    ['alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' }],
    ['alpine:3.20', { registry: 'docker.io', repository: 'library/alpine', tag: '3.20' }],
    ['team/app', { registry: 'docker.io', repository: 'team/app', tag: 'latest' }],
    ['docker.io/alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' }],
    ['index.docker.io/library/alpine:1', { registry: 'docker.io', repository: 'library/alpine', tag: '1' }],
    ['localhost/app', { registry: 'localhost', repository: 'app', tag: 'latest' }],
    ['127.0.0.1:5000/team/app:v1', { registry: '127.0.0.1:5000', repository: 'team/app', tag: 'v1' }],
    ['[::1]:5000/app:v1', { registry: '[::1]:5000', repository: 'app', tag: 'v1' }],
    ['gcr.io/p/app@' + D, { registry: 'gcr.io', repository: 'p/app', digest: D }],
    ['gcr.io/p/app:v2@' + D, { registry: 'gcr.io', repository: 'p/app', tag: 'v2', digest: D }],
    ['registry.example.com:443/a/b/c', { registry: 'registry.example.com:443', repository: 'a/b/c', tag: 'latest' }],
  ])('%s', (input, expected) => {
    expect(parseReference(input)).toEqual(expected);
  });

  it.each(['', 'UPPER/app', 'app:', 'app:-bad', 'app@sha256:short', 'a//b', '../etc', 'app/../x', 'a/b:' + 'x'.repeat(129), 'bad_host:99999999/app'])(
    'refuses %j with RP_ERR_REFERENCE_INVALID',
    (input) => {
      expect(() => parseReference(input)).toThrow(/RP_ERR_REFERENCE_INVALID/);
    },
  );

  it('round-trips through formatReference', () => {
    expect(formatReference(parseReference('127.0.0.1:5000/team/app:v1'))).toBe('127.0.0.1:5000/team/app:v1');
    expect(formatReference(parseReference('alpine'))).toBe('docker.io/library/alpine:latest');
  });
});

describe('grammars', () => {
  it('names', () => {
    for (const ok of ['a', 'a/b', 'a-b/c.d/e__f', 'a--b', '0/1']) expect(isValidRepositoryName(ok)).toBe(true);
    for (const bad of ['', 'A', 'a/', '/a', 'a//b', 'a/.b', 'a/..', 'a_', 'a%2fb', 'a b', 'x'.repeat(256)]) expect(isValidRepositoryName(bad)).toBe(false);
  });
  it('tags', () => {
    for (const ok of ['latest', 'v1.0', '_x', 'A-b.c_d', 'x'.repeat(128)]) expect(isValidTag(ok)).toBe(true);
    for (const bad of ['', '.x', '-x', 'a/b', 'x'.repeat(129), 'a:b']) expect(isValidTag(bad)).toBe(false);
  });
  it('digests', () => {
    expect(isValidDigest(D)).toBe(true);
    expect(isValidDigest(`sha512:${'b'.repeat(128)}`)).toBe(true);
    expect(isValidDigest('sha256:' + 'A'.repeat(64))).toBe(false);
    expect(isValidDigest('sha256:abc')).toBe(false);
    expect(isValidDigest('sha512:' + 'b'.repeat(64))).toBe(false);
    expect(isValidDigest('multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8')).toBe(true);
    expect(isValidDigest('nocolon')).toBe(false);
  });
});

describe('Docker Hub aliases: one list for references, mirror namespaces and Docker config keys', () => {
  it.each(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com', 'Registry-1.Docker.IO'])('%s is Docker Hub everywhere', (host) => {
    expect(normaliseRegistryHost(host)).toBe('docker.io');
    expect(normaliseConfigKey(`https://${host}/v1/`)).toBe('docker.io');
    expect(parseReference(`${host}/alpine`)).toMatchObject({ registry: 'docker.io', repository: 'library/alpine' });
  });
  it('leaves other registries alone (lower-cased)', () => {
    expect(normaliseRegistryHost('GHCR.io')).toBe('ghcr.io');
    expect(normaliseConfigKey('quay.io')).toBe('quay.io');
    expect(parseReference('docker.io.example.com/a')).toMatchObject({ registry: 'docker.io.example.com' });
  });
});
