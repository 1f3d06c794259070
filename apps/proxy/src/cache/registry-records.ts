import { createHash } from 'node:crypto';
import type { UpstreamResponse } from '@registry-proxy/registry-core';

/** What RegistryStore lends its records: requests to the store registry (with its credentials), and its blob upload. */
export interface RecordsBackend {
  request(method: 'GET' | 'HEAD' | 'PUT' | 'DELETE', path: string, extra?: { headers?: Record<string, string>; body?: Buffer }): Promise<UpstreamResponse>;
  upload(digest: string, body: Buffer): Promise<void>;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** The annotation that carries a record. */
const ANNOTATION = 'io.github.registry-proxy.cache-record';
/** The config every record manifest points to: the empty JSON object (image-spec's "empty descriptor"). */
const EMPTY = Buffer.from('{}');
const EMPTY_DIGEST = `sha256:${createHash('sha256').update(EMPTY).digest('hex')}`;
/** A record manifest is a few hundred bytes; anything much larger under one of our tags is not ours. */
const MAX_RECORD_BYTES = 64 << 10;
/** The annotation of an object record: when the object was filled (milliseconds since the epoch, decimal). */
const FILLED_AT = 'io.github.registry-proxy.filled-at';
/** Tags of object records: this prefix and the object's hex digest. Link and tag records are `rp-` and 64 hex digits. */
export const OBJECT_TAG_PREFIX = 'rp-o-';
const OBJECT_TAG = /^rp-o-([a-f0-9]{64})$/;
const KEYED_TAG = /^rp-[a-f0-9]{64}$/;
/** A tag as the distribution spec allows it. */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
/** Tags asked for per tag-list page, and the most a page's body may be (a registry that ignores `n` sends all its tags at once). */
export const TAG_PAGE = 1000;
const MAX_TAG_PAGE_BYTES = 64 << 20;
/** At most this many pages are followed (a registry whose `last` does not move on is not followed forever). */
const MAX_TAG_PAGES = 100_000;
/** Record GETs in flight at once while indexing or listing. */
const RECORD_READS = 4;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** One object as its record tells it. */
export interface ObjectRecord {
  readonly digest: string;
  readonly size: number;
  /** Milliseconds since the epoch. */
  readonly filledAt: number;
}

export function objectTag(digest: string): string {
  if (!DIGEST.test(digest)) throw new Error(`not a sha256 digest: ${digest}`);
  return `${OBJECT_TAG_PREFIX}${digest.slice(7)}`;
}

/** The object an object-record tag names, or undefined for any other tag. */
export function objectOfTag(tag: string): string | undefined {
  const m = OBJECT_TAG.exec(tag);
  return m ? `sha256:${m[1] as string}` : undefined;
}

/** Whether a tag is a link or tag record's (`rp-<sha256 of its key>`). */
export function isKeyedTag(tag: string): boolean {
  return KEYED_TAG.test(tag);
}

const emptyConfig = () => ({ mediaType: 'application/vnd.oci.empty.v1+json', digest: EMPTY_DIGEST, size: EMPTY.length });

/** The manifest recording one object: its single layer is the object, its annotation the fill time. */
export function objectRecordManifest(rec: ObjectRecord): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: emptyConfig(),
      layers: [{ mediaType: 'application/octet-stream', digest: rec.digest, size: rec.size }],
      annotations: { [FILLED_AT]: String(rec.filledAt) },
    }),
  );
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Reads an object record found under `tag`; undefined when it is not one of ours or does not
 * hold together (another digest than its tag names, a size or time that is not a plain
 * non-negative integer, extra layers): such a record is ignored, never trusted.
 */
export function parseObjectRecord(tag: string, body: Buffer): ObjectRecord | undefined {
  const digest = objectOfTag(tag);
  if (!digest || body.length > MAX_RECORD_BYTES) return undefined;
  const doc = parseJson(body);
  if (!isObject(doc) || doc['schemaVersion'] !== 2 || !Array.isArray(doc['layers']) || doc['layers'].length !== 1) return undefined;
  const layer = doc['layers'][0] as unknown;
  if (!isObject(layer) || layer['digest'] !== digest) return undefined;
  const size = layer['size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
  const annotations = doc['annotations'];
  const at = isObject(annotations) ? annotations[FILLED_AT] : undefined;
  if (typeof at !== 'string' || !/^\d{1,15}$/.test(at)) return undefined;
  return { digest, size, filledAt: Number(at) };
}

/** Reads a link or tag record's key and value; undefined when the manifest is not such a record. */
export function parseKeyedRecord(body: Buffer): { key: string[]; value: string } | undefined {
  if (body.length > MAX_RECORD_BYTES) return undefined;
  const doc = parseJson(body);
  const annotations = isObject(doc) ? doc['annotations'] : undefined;
  const raw = isObject(annotations) ? annotations[ANNOTATION] : undefined;
  if (typeof raw !== 'string') return undefined;
  const rec = parseJson(Buffer.from(raw));
  if (!isObject(rec) || typeof rec['value'] !== 'string' || !Array.isArray(rec['key'])) return undefined;
  const key = rec['key'] as unknown[];
  if (key.length === 0 || key.length > 8 || !key.every((k) => typeof k === 'string')) return undefined;
  return { key: key as string[], value: rec['value'] };
}

/** A link record's key, checked: upstream, repository, kind and digest; undefined for anything else. */
export function linkOfKey(key: readonly string[]): { upstream: string; repository: string; kind: 'blob' | 'manifest'; digest: string } | undefined {
  const [what, upstream, repository, kind, digest] = key;
  if (key.length !== 5 || what !== 'link' || !upstream || !repository || (kind !== 'blob' && kind !== 'manifest') || !digest || !DIGEST.test(digest)) return undefined;
  return { upstream, repository, kind, digest };
}

/** One page of `GET /v2/<name>/tags/list`: its tags (`null` is none); throws when the body is not that shape or a tag is not a tag. */
export function parseTagPage(body: Buffer): string[] {
  const doc = parseJson(body);
  if (!isObject(doc)) throw new Error('store registry sent a tag list that is not a JSON object');
  const tags = doc['tags'];
  if (tags === null || tags === undefined) return [];
  if (!Array.isArray(tags)) throw new Error('store registry sent a tag list whose tags are not an array');
  for (const t of tags) if (typeof t !== 'string' || !TAG.test(t)) throw new Error('store registry sent a tag list with something that is not a tag');
  return tags as string[];
}

/**
 * Small key -> value records (repository links, tag resolutions) kept in the store registry
 * itself, so every replica that shares the store shares them, and a restarted one keeps them.
 * A record is an OCI image manifest tagged `rp-<sha256 of the key>` in the store repository; the
 * key and value ride in one annotation, and its config is the two-byte empty JSON blob (the
 * store registry checks that a manifest's blobs exist: it is pushed once per process). Reading
 * a record is one manifest GET, writing it one PUT; a record whose key does not match its tag
 * (a hash collision, or someone else's manifest) is treated as absent.
 *
 * Tags are the registry API's only way to look a name up, which is why records are manifests.
 * Being tagged, they survive distribution's garbage collection; the objects themselves (untagged
 * blobs) do not, and a link to a collected object is harmless: it says what the upstream showed,
 * and the object is simply filled again.
 */
export class RegistryRecords {
  private emptyPushed: Promise<void> | undefined;

  constructor(
    private readonly store: RecordsBackend,
    private readonly repository: string,
    private readonly tagPage = TAG_PAGE,
  ) {}

  static tagOf(key: readonly string[]): string {
    return `rp-${createHash('sha256').update(JSON.stringify(key)).digest('hex')}`;
  }

  /** The value recorded under `key`, or undefined; throws when the store cannot answer. */
  async get(key: readonly string[]): Promise<string | undefined> {
    const m = await this.read(RegistryRecords.tagOf(key));
    if (m === undefined) return undefined;
    if (parseJson(m.body) === undefined) throw new Error('store registry sent an unreadable record: not JSON');
    const rec = parseKeyedRecord(m.body);
    return rec && JSON.stringify(rec.key) === JSON.stringify(key) ? rec.value : undefined;
  }

  /** Records `value` under `key` (replacing what was there). */
  async put(key: readonly string[], value: string): Promise<void> {
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: emptyConfig(),
        layers: [],
        annotations: { [ANNOTATION]: JSON.stringify({ key, value }) },
      }),
    );
    await this.putWithConfig(RegistryRecords.tagOf(key), manifest);
  }

  /** Records that the store holds an object (its blob is already uploaded). */
  async putObject(rec: ObjectRecord): Promise<void> {
    await this.putWithConfig(objectTag(rec.digest), objectRecordManifest(rec));
  }

  private async putWithConfig(tag: string, manifest: Buffer): Promise<void> {
    await this.pushEmpty();
    let r = await this.putManifest(tag, manifest);
    if (r.statusCode === 400) {
      // The empty blob went (garbage collection, a purge of the store) since this process pushed it.
      this.emptyPushed = undefined;
      await this.pushEmpty();
      r = await this.putManifest(tag, manifest);
    }
    if (r.statusCode !== 201) throw new Error(`store registry answered ${r.statusCode} to a record PUT`);
  }

  /** The manifest under `tag`: its bytes and digest (what DELETE takes), or undefined when there is none; throws when the store cannot answer. */
  async read(tag: string): Promise<{ body: Buffer; digest: string } | undefined> {
    const r = await this.store.request('GET', `/v2/${this.repository}/manifests/${tag}`, { headers: { accept: OCI_MANIFEST } });
    if (r.statusCode === 404) {
      await r.body.dump();
      return undefined;
    }
    if (r.statusCode !== 200) {
      await r.body.dump();
      throw new Error(`store registry answered ${r.statusCode} to a record GET`);
    }
    let body: Buffer;
    try {
      body = await r.body.bytes(MAX_RECORD_BYTES);
    } catch (err) {
      throw new Error(`store registry sent an unreadable record: ${(err as Error).message}`);
    }
    return { body, digest: `sha256:${createHash('sha256').update(body).digest('hex')}` };
  }

  /** The object record of `digest`, or undefined (none, or not one of ours). */
  async getObject(digest: string): Promise<(ObjectRecord & { manifest: string }) | undefined> {
    const tag = objectTag(digest);
    const m = await this.read(tag);
    const rec = m && parseObjectRecord(tag, m.body);
    return rec && m ? { ...rec, manifest: m.digest } : undefined;
  }

  /** Removes a record manifest by its digest (and so every tag on it); true when it was there. */
  async deleteManifest(digest: string): Promise<boolean> {
    if (!DIGEST.test(digest)) throw new Error(`not a sha256 digest: ${digest}`);
    const r = await this.store.request('DELETE', `/v2/${this.repository}/manifests/${digest}`);
    await r.body.dump();
    if (r.statusCode === 404) return false;
    if (r.statusCode !== 202) throw new Error(`store registry answered ${r.statusCode} to a record DELETE`);
    return true;
  }

  /**
   * Every tag of the store repository, a page at a time (`n`, then `last` = the page's last tag;
   * the next page is asked for only while the store sends a Link header, and only while `last`
   * moves forward). Throws when the store cannot answer or answers something that is not a tag list.
   */
  async *tags(): AsyncIterable<string[]> {
    let last: string | undefined;
    for (let page = 0; page < MAX_TAG_PAGES; page++) {
      const q = `n=${this.tagPage}${last === undefined ? '' : `&last=${encodeURIComponent(last)}`}`;
      const r = await this.store.request('GET', `/v2/${this.repository}/tags/list?${q}`);
      if (r.statusCode === 404) {
        await r.body.dump();
        return; // no repository yet: nothing stored
      }
      if (r.statusCode !== 200) {
        await r.body.dump();
        throw new Error(`store registry answered ${r.statusCode} to a tag list`);
      }
      const tags = parseTagPage(await r.body.bytes(MAX_TAG_PAGE_BYTES));
      if (tags.length > 0) yield tags;
      const next = tags[tags.length - 1];
      if (r.headers['link'] === undefined || next === undefined || (last !== undefined && next <= last)) return;
      last = next;
    }
  }

  /** Every object record of the store (records that do not hold together are skipped); throws when the store cannot answer. */
  async *objects(): AsyncIterable<ObjectRecord & { manifest: string }> {
    for await (const page of this.tags()) {
      const digests = page.map(objectOfTag).filter((d): d is string => d !== undefined);
      for (let i = 0; i < digests.length; i += RECORD_READS) {
        const got = await Promise.all(digests.slice(i, i + RECORD_READS).map((d) => this.getObject(d)));
        for (const rec of got) if (rec) yield rec;
      }
    }
  }

  /** Every link and tag record (key, value, and the manifest digest that removes it); manifests under such tags that are not ours are skipped. */
  async *keyedRecords(): AsyncIterable<{ key: string[]; value: string; manifest: string }> {
    for await (const page of this.tags()) {
      const tags = page.filter(isKeyedTag);
      for (let i = 0; i < tags.length; i += RECORD_READS) {
        const got = await Promise.all(
          tags.slice(i, i + RECORD_READS).map(async (tag) => {
            const m = await this.read(tag);
            const rec = m && parseKeyedRecord(m.body);
            // A record under a tag its key does not hash to is someone else's.
            return rec && m && RegistryRecords.tagOf(rec.key) === tag ? { ...rec, manifest: m.digest } : undefined;
          }),
        );
        for (const rec of got) if (rec) yield rec;
      }
    }
  }

  private async putManifest(tag: string, body: Buffer): Promise<UpstreamResponse> {
    const r = await this.store.request('PUT', `/v2/${this.repository}/manifests/${tag}`, { headers: { 'content-type': OCI_MANIFEST, 'content-length': String(body.length) }, body });
    await r.body.dump();
    return r;
  }

  private pushEmpty(): Promise<void> {
    this.emptyPushed ??= this.store.upload(EMPTY_DIGEST, EMPTY).catch((err: unknown) => {
      this.emptyPushed = undefined;
      throw err;
    });
    return this.emptyPushed;
  }
}
