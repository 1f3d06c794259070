/**
 * What the registry store reads back from its store registry is hostile input: tag-list pages,
 * object records and link/tag records are parsed with their shapes checked, and whatever does not
 * hold together is refused (a tag list) or ignored (a record), never trusted or crashed on.
 */
import { isKeyedTag, linkOfKey, objectOfTag, objectRecordManifest, objectTag, parseKeyedRecord, parseObjectRecord, parseTagPage } from './registry-records.js';

const HEX = 'ab'.repeat(32);
const D = `sha256:${HEX}`;
const TAG = `rp-o-${HEX}`;
const doc = (v: unknown) => Buffer.from(JSON.stringify(v));
const good = () => JSON.parse(objectRecordManifest({ digest: D, size: 1234, filledAt: 1_700_000_000_000 }).toString()) as Record<string, unknown>;

describe('object records', () => {
  it('round trip: the tag names the digest, the record its size and fill time', () => {
    expect(objectTag(D)).toBe(TAG);
    expect(TAG.length).toBeLessThanOrEqual(128);
    expect(objectOfTag(TAG)).toBe(D);
    expect(parseObjectRecord(TAG, objectRecordManifest({ digest: D, size: 1234, filledAt: 1_700_000_000_000 }))).toEqual({ digest: D, size: 1234, filledAt: 1_700_000_000_000 });
    expect(() => objectTag('sha256:xyz')).toThrow('not a sha256 digest');
  });

  it('tags: object records, keyed records and anything else are told apart by name alone', () => {
    expect([objectOfTag(`rp-${HEX}`), objectOfTag(`rp-o-${HEX}x`), objectOfTag(`rp-o-${HEX.toUpperCase()}`), objectOfTag('latest')]).toEqual([undefined, undefined, undefined, undefined]);
    expect([isKeyedTag(`rp-${HEX}`), isKeyedTag(TAG), isKeyedTag('rp-1'), isKeyedTag(`x-${HEX}`)]).toEqual([true, false, false, false]);
  });

  it.each<[string, (m: Record<string, unknown>) => unknown]>([
    ['another digest than its tag', (m) => ({ ...m, layers: [{ mediaType: 'application/octet-stream', digest: `sha256:${'cd'.repeat(32)}`, size: 1 }] })],
    ['two layers', (m) => ({ ...m, layers: [...(m['layers'] as unknown[]), ...(m['layers'] as unknown[])] })],
    ['no layers', (m) => ({ ...m, layers: [] })],
    ['layers not an array', (m) => ({ ...m, layers: { 0: (m['layers'] as unknown[])[0] } })],
    ['a layer that is not an object', (m) => ({ ...m, layers: ['x'] })],
    ['a negative size', (m) => ({ ...m, layers: [{ digest: D, size: -1 }] })],
    ['a fractional size', (m) => ({ ...m, layers: [{ digest: D, size: 1.5 }] })],
    ['a size beyond 2^53', (m) => ({ ...m, layers: [{ digest: D, size: 2 ** 60 }] })],
    ['a size as a string', (m) => ({ ...m, layers: [{ digest: D, size: '12' }] })],
    ['a fill time that is not digits', (m) => ({ ...m, annotations: { 'io.github.registry-proxy.filled-at': '1e12' } })],
    ['a fill time as a number', (m) => ({ ...m, annotations: { 'io.github.registry-proxy.filled-at': 1 } })],
    ['a fill time of 16 digits', (m) => ({ ...m, annotations: { 'io.github.registry-proxy.filled-at': '1'.repeat(16) } })],
    ['no annotations', (m) => ({ ...m, annotations: undefined })],
    ['annotations as an array', (m) => ({ ...m, annotations: ['1'] })],
    ['schemaVersion 1', (m) => ({ ...m, schemaVersion: 1 })],
    ['an array', () => []],
    ['null', () => null],
    ['a string', () => 'rp'],
  ])('a record with %s is ignored', (_what, change) => {
    expect(parseObjectRecord(TAG, doc(change(good())))).toBeUndefined();
  });

  it('not JSON, a body over 64 KiB, or a tag that is not an object record: ignored', () => {
    expect(parseObjectRecord(TAG, Buffer.from('{"schemaVersion":2,'))).toBeUndefined();
    expect(parseObjectRecord(TAG, Buffer.from([0xff, 0xfe, 0x00]))).toBeUndefined();
    expect(parseObjectRecord(TAG, doc({ ...good(), pad: 'x'.repeat(70_000) }))).toBeUndefined();
    expect(parseObjectRecord(`rp-${HEX}`, objectRecordManifest({ digest: D, size: 1, filledAt: 1 }))).toBeUndefined();
  });
});

describe('link and tag records', () => {
  const rec = (key: unknown, value: unknown) => doc({ schemaVersion: 2, annotations: { 'io.github.registry-proxy.cache-record': JSON.stringify({ key, value }) } });

  it('a record gives its key and value; a link key is checked field by field', () => {
    expect(parseKeyedRecord(rec(['link', 'hub', 'team/a', 'blob', D], ''))).toEqual({ key: ['link', 'hub', 'team/a', 'blob', D], value: '' });
    expect(linkOfKey(['link', 'hub', 'team/a', 'blob', D])).toEqual({ upstream: 'hub', repository: 'team/a', kind: 'blob', digest: D });
    expect(linkOfKey(['link', 'hub', 'team/a', 'manifest', D])?.kind).toBe('manifest');
    for (const bad of [
      ['tag', 'hub', 'team/a', 'latest', 'any'],
      ['link', 'hub', 'team/a', 'layer', D],
      ['link', 'hub', 'team/a', 'blob', 'sha256:1'],
      ['link', '', 'team/a', 'blob', D],
      ['link', 'hub', '', 'blob', D],
      ['link', 'hub', 'team/a', 'blob', D, 'extra'],
      ['link', 'hub', 'team/a', 'blob'],
    ]) {
      expect(linkOfKey(bad)).toBeUndefined();
    }
  });

  it.each<[string, Buffer]>([
    ['a key that is not an array', rec('link', '')],
    ['an empty key', rec([], '')],
    ['a key of 9 parts', rec(Array(9).fill('x'), '')],
    ['a key with a number', rec(['link', 1], '')],
    ['a value that is not a string', rec(['link'], 1)],
    ['an annotation that is not JSON', doc({ annotations: { 'io.github.registry-proxy.cache-record': '{' } })],
    ['an annotation that is an object', doc({ annotations: { 'io.github.registry-proxy.cache-record': { key: ['x'], value: '' } } })],
    ['no annotation', doc({ schemaVersion: 2 })],
    ['not JSON', Buffer.from('<html>')],
    ['JSON null', Buffer.from('null')],
    ['over 64 KiB', rec(['link'], 'x'.repeat(70_000))],
  ])('%s: not a record', (_what, body) => {
    expect(parseKeyedRecord(body)).toBeUndefined();
  });
});

describe('tag-list pages', () => {
  it('a page gives its tags; null or missing tags are none', () => {
    expect(parseTagPage(doc({ name: 'cache/objects', tags: [TAG, `rp-${HEX}`, 'latest'] }))).toEqual([TAG, `rp-${HEX}`, 'latest']);
    expect(parseTagPage(doc({ name: 'cache/objects', tags: null }))).toEqual([]);
    expect(parseTagPage(doc({ name: 'cache/objects' }))).toEqual([]);
  });

  it.each<[string, Buffer]>([
    ['not JSON', Buffer.from('<html>oops</html>')],
    ['an array', doc([TAG])],
    ['tags as an object', doc({ tags: { 0: TAG } })],
    ['tags as a string', doc({ tags: TAG })],
    ['a tag that is a number', doc({ tags: [TAG, 5] })],
    ['a tag with a slash', doc({ tags: ['../../x'] })],
    ['a tag with a newline', doc({ tags: ['a\nb'] })],
    ['a tag starting with a dot', doc({ tags: ['.x'] })],
    ['a tag of 129 characters', doc({ tags: ['a'.repeat(129)] })],
    ['an empty tag', doc({ tags: [''] })],
  ])('%s: refused with an error naming the tag list', (_what, body) => {
    expect(() => parseTagPage(body)).toThrow(/store registry sent a tag list/);
  });
});
