import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemStore } from './filesystem-store.js';
import { parseTagRecord } from './store.js';

const digest = `sha256:${'a'.repeat(64)}`;
const good = { digest, mediaType: 'application/vnd.oci.image.index.v1+json', validatedAt: 1_700_000_000_000, etag: `"${digest}"` };

describe('parseTagRecord: what a store gives back for a tag, or a miss', () => {
  it('takes a good record, with or without an ETag, and keeps nothing else it carries', () => {
    expect(parseTagRecord(JSON.stringify(good))).toEqual(good);
    const { etag: _etag, ...noEtag } = good;
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
