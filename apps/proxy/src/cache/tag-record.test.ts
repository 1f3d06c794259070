import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemStore } from './filesystem-store.js';
import { isMediaType, parseTagRecord } from './store.js';

const digest = `sha256:${'a'.repeat(64)}`;
const good = { digest, mediaType: 'application/vnd.oci.image.index.v1+json', validatedAt: 1_700_000_000_000, etag: `"${digest}"` };

describe('parseTagRecord: what a store gives back for a tag, or a miss', () => {
  it('takes a good record, with or without an ETag, and keeps nothing else it carries', () => {
    expect(parseTagRecord(JSON.stringify(good))).toEqual(good);
    const noEtag = { digest: good.digest, mediaType: good.mediaType, validatedAt: good.validatedAt };
    expect(parseTagRecord(JSON.stringify(noEtag))).toEqual(noEtag);
    expect(parseTagRecord(JSON.stringify({ ...good, extra: 'x'.repeat(100) }))).toEqual(good);
  });

  it.each([
    ['not JSON', '{"digest":'],
    ['null', 'null'],
    ['an array', '[]'],
    ['a string', '"x"'],
    ['no digest', JSON.stringify({ ...good, digest: undefined })],
    ['a sha512 digest', JSON.stringify({ ...good, digest: `sha512:${'a'.repeat(128)}` })],
    ['an upper-case digest', JSON.stringify({ ...good, digest: digest.toUpperCase() })],
    ['a media type that is not a string', JSON.stringify({ ...good, mediaType: 7 })],
    ['a media type that ends the Content-Type line and adds a header', JSON.stringify({ ...good, mediaType: 'application/json\r\nSet-Cookie: a=b' })],
    ['a media type that is not type/subtype', JSON.stringify({ ...good, mediaType: 'manifest' })],
    ['a time that is a string', JSON.stringify({ ...good, validatedAt: '1700000000000' })],
    ['a time that is not finite', '{"digest":"' + digest + '","mediaType":"x","validatedAt":1e999}'],
    ['an ETag that is a number', JSON.stringify({ ...good, etag: 7 })],
    ['an ETag that is an object', JSON.stringify({ ...good, etag: { toString: 'x' } })],
    ['an ETag that ends the header line and adds one (sent upstream as If-None-Match)', JSON.stringify({ ...good, etag: '"x"\r\nAuthorization: Bearer stolen' })],
    ['an ETag with a NUL', JSON.stringify({ ...good, etag: '"x\u0000"' })],
    ['an ETag with a space', JSON.stringify({ ...good, etag: 'W/ "x"' })],
    ['an empty ETag', JSON.stringify({ ...good, etag: '' })],
    ['an ETag of 1,025 characters', JSON.stringify({ ...good, etag: 'x'.repeat(1025) })],
  ])('a miss for %s', (_what, text) => {
    expect(parseTagRecord(text)).toBeUndefined();
  });
});

describe('a damaged tag record in a store', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rp-tag-record-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('(regression) is a miss: its ETag is never handed on to become an If-None-Match header (the wire refuses a value with CR or LF, failing the request)', async () => {
    const store = await FilesystemStore.open(dir, 1 << 30);
    await store.putTag('hub', 'library/alpine', 'latest', 'v', { ...good, etag: '"x"\r\nX-Injected: 1' });
    expect(await store.tag('hub', 'library/alpine', 'latest', 'v')).toBeUndefined();
    await store.putTag('hub', 'library/alpine', 'latest', 'v', good);
    expect(await store.tag('hub', 'library/alpine', 'latest', 'v')).toEqual(good);
    await store.close();
  });
});

describe('isMediaType: what may go to a client as a Content-Type', () => {
  it.each(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json', 'application/json; charset=utf-8'])('takes %s', (t) => {
    expect(isMediaType(t)).toBe(true);
  });
  it.each(['', 'json', 'application/json\r\nX: y', 'application/json; a=\n', 'application/json\u0000', `application/${'x'.repeat(1100)}`])('refuses %j', (t) => {
    expect(isMediaType(t)).toBe(false);
  });

  it('(regression) a damaged manifest link file of the filesystem store is a miss, not a Content-Type with a header in it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-link-'));
    try {
      const store = await FilesystemStore.open(dir, 1 << 30);
      await store.addLink('hub', 'library/alpine', 'manifest', digest, 'application/json\r\nSet-Cookie: a=b');
      expect(await store.link('hub', 'library/alpine', 'manifest', digest)).toBeUndefined();
      await store.addLink('hub', 'library/alpine', 'manifest', digest, good.mediaType);
      expect(await store.link('hub', 'library/alpine', 'manifest', digest)).toBe(good.mediaType);
      await store.addLink('hub', 'library/alpine', 'blob', digest);
      expect(await store.link('hub', 'library/alpine', 'blob', digest)).toBe('');
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
