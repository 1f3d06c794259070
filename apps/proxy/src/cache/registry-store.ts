import { createReadStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { UpstreamClient, UpstreamResponse } from '@registry-proxy/registry-core';
import { StoreReader } from './registry-reader.js';
import { RegistryRecords } from './registry-records.js';
import type { CacheStore, LinkKind, ObjectInfo, ObjectWriter, StoredObject, TagRecord } from './store.js';

const DIGEST = /^sha256:[a-f0-9]{64}$/;
/** A media type, parameters allowed, no control characters (it is sent back as a Content-Type). */
const MEDIA_TYPE = /^[\w.+-]+\/[\w.+-]+(?:\s*;[^\x00-\x1f\x7f]*)?$/;
/** Links this process has read or written, kept so that each is asked of the store once; beyond this many the oldest are forgotten (and read again). */
const MAX_KNOWN_LINKS = 100_000;

export interface RegistryStoreOptions {
  /** A client for the store registry, with the store's credentials (the upstream credential providers). */
  readonly client: UpstreamClient;
  /** The one repository of the store registry that holds every object, by digest. */
  readonly repository: string;
  /** Local directory for fills in progress (readers read it while it grows; the upload starts once verified). */
  readonly spoolDir: string;
  /** An upload that failed (and was cancelled): the fill's clients got their bytes; the object is simply not stored. */
  readonly onUploadFailed: (digest: string, err: Error) => void;
}

/** A bounded insertion-ordered map: the oldest entries go first. */
function remember<V>(m: Map<string, V>, k: string, v: V): void {
  m.delete(k);
  m.set(k, v);
  if (m.size > MAX_KNOWN_LINKS) m.delete(m.keys().next().value as string);
}

/**
 * Another OCI registry as the cache store: every object (blob or manifest) is a blob of one
 * repository there, pushed by digest, so the store registry checks the digest once more on
 * upload and an upload never becomes visible before its final PUT (a failed one is cancelled
 * with DELETE). Objects are read with ranged GETs (./registry-reader.ts); presence is a HEAD. This is how the cache
 * reaches object storage: point it at a distribution instance on S3, GCS or Azure.
 *
 * Repository links (which repositories the upstream has shown a digest in) and tag records
 * are kept in the store registry too, as small tagged manifests (./registry-records.ts): every
 * replica sharing the store, and a restarted one, serves a digest through a repository another
 * replica has seen it in without asking the upstream, and serves stale tags (staleIfError) that
 * another replica resolved. Links found are remembered in memory (a link never stops being
 * true); tags are read from the store each time (another replica may have moved them).
 *
 * No quota: `maxBytes` is not enforced here, and `list()` is empty (the registry API cannot
 * list a repository's blobs). Size is the store registry operator's business: see
 * docs/configuration.md (the objects are unreferenced blobs, so distribution's garbage-collect
 * removes all of them).
 */
export class RegistryStore implements CacheStore {
  readonly description: string;
  readonly bytes = 0;
  private readonly links = new Map<string, string>();
  private readonly records: RegistryRecords;

  constructor(private readonly opts: RegistryStoreOptions) {
    this.description = `registry:${opts.client.origin}/${opts.repository}`;
    this.records = new RegistryRecords({ request: (m, p, e) => this.req(m, p, e), upload: (d, body) => this.upload(d, () => body, body.length) }, opts.repository);
  }

  private blobPath(digest: string): string {
    if (!DIGEST.test(digest)) throw new Error(`not a sha256 digest: ${digest}`);
    return `/v2/${this.opts.repository}/blobs/${digest}`;
  }

  private req(method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE', path: string, extra: { headers?: Record<string, string>; body?: Buffer | Readable } = {}): Promise<UpstreamResponse> {
    const push = method !== 'GET' && method !== 'HEAD';
    return this.opts.client.request({
      method,
      path,
      ...(extra.headers ? { headers: extra.headers } : {}),
      ...(extra.body ? { body: extra.body } : {}),
      scope: `repository:${this.opts.repository}:${push ? 'pull,push' : 'pull'}`,
    });
  }

  async open(digest: string): Promise<StoredObject | undefined> {
    const path = this.blobPath(digest);
    const r = await this.req('HEAD', path);
    await r.body.dump();
    if (r.statusCode === 404) return undefined;
    if (r.statusCode !== 200) throw new Error(`store registry answered ${r.statusCode} to a blob HEAD`);
    const size = Number(r.headers['content-length']);
    if (!Number.isSafeInteger(size) || size < 0) throw new Error('store registry sent no Content-Length for a blob');
    const handle = new StoreReader(size, (range) => this.req('GET', path, { headers: { range } }));
    return { size, stamp: `${digest}:${size}`, handle };
  }

  async create(digest: string, _size: number | undefined): Promise<ObjectWriter> {
    this.blobPath(digest);
    await mkdir(this.opts.spoolDir, { recursive: true });
    const tmp = join(this.opts.spoolDir, `${digest.slice(7)}.${process.pid}.${randomBytes(6).toString('hex')}`);
    const fh = await open(tmp, 'wx');
    let closed = false;
    const close = async () => {
      if (!closed) {
        closed = true;
        await fh.close();
      }
    };
    return {
      write: async (chunk) => {
        let off = 0;
        while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
      },
      openReader: async () => {
        const r = await open(tmp, 'r');
        return { read: async (b, p) => (await r.read(b, 0, b.length, p)).bytesRead, close: () => r.close() };
      },
      commit: async () => {
        await close();
        const size = (await stat(tmp)).size;
        try {
          await this.upload(digest, () => createReadStream(tmp), size);
        } catch (err) {
          // The clients of this fill have every byte (from the spool): a store that cannot take
          // the object costs the next request a miss, never this one its pull.
          this.opts.onUploadFailed(digest, err as Error);
        } finally {
          // Readers that have the spool file open keep reading it.
          await rm(tmp, { force: true });
        }
        return `${digest}:${size}`;
      },
      abort: async () => {
        await close().catch(() => undefined);
        await rm(tmp, { force: true });
      },
    };
  }

  /** A monolithic upload (POST, then PUT ?digest= with the whole body); a failure cancels the session. */
  private async upload(digest: string, body: () => Buffer | Readable, size: number): Promise<void> {
    const start = await this.req('POST', `/v2/${this.opts.repository}/blobs/uploads/`, { headers: { 'content-length': '0' } });
    await start.body.dump();
    const location = start.headers['location'];
    if (start.statusCode !== 202 || typeof location !== 'string') throw new Error(`store registry answered ${start.statusCode} to an upload start`);
    const at = new URL(location, this.opts.client.origin);
    if (at.origin !== new URL(this.opts.client.origin).origin) throw new Error('store registry sent an upload Location on another host');
    at.searchParams.set('digest', digest);
    const path = `${at.pathname}${at.search}`;
    try {
      const put = await this.req('PUT', path, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) }, body: body() });
      await put.body.dump();
      if (put.statusCode !== 201) throw new Error(`store registry answered ${put.statusCode} to the upload`);
    } catch (err) {
      const cancel = new URL(location, this.opts.client.origin);
      await this.req('DELETE', `${cancel.pathname}${cancel.search}`)
        .then((d) => d.body.dump())
        .catch(() => undefined);
      throw err;
    }
  }

  async remove(digest: string): Promise<void> {
    const r = await this.req('DELETE', this.blobPath(digest));
    await r.body.dump();
    // 405: deletion is disabled on the store registry; the object stays, and is hashed (and refused) again.
    if (r.statusCode !== 202 && r.statusCode !== 404) throw new Error(`store registry answered ${r.statusCode} to a blob DELETE`);
  }

  touch(): void {
    // No recency is kept: eviction is the store registry's (see the class comment).
  }

  pin(): () => void {
    return () => undefined;
  }

  async link(upstream: string, repository: string, kind: LinkKind, digest: string): Promise<string | undefined> {
    const key = ['link', upstream, repository, kind, digest];
    const mem = this.links.get(key.join('\u0000'));
    if (mem !== undefined) return mem;
    const found = await this.records.get(key);
    // A manifest link's value becomes a Content-Type: anything but a media type is not ours.
    if (found === undefined || (kind === 'manifest' ? !MEDIA_TYPE.test(found) : found !== '')) return undefined;
    remember(this.links, key.join('\u0000'), found);
    return found;
  }

  async addLink(upstream: string, repository: string, kind: LinkKind, digest: string, mediaType = ''): Promise<void> {
    const key = ['link', upstream, repository, kind, digest];
    if (this.links.get(key.join('\u0000')) === mediaType) return;
    await this.records.put(key, mediaType);
    remember(this.links, key.join('\u0000'), mediaType);
  }

  async tag(upstream: string, repository: string, tag: string, variant: string): Promise<TagRecord | undefined> {
    const text = await this.records.get(['tag', upstream, repository, tag, variant]);
    if (text === undefined) return undefined;
    try {
      const r = JSON.parse(text) as TagRecord;
      return DIGEST.test(r.digest) && typeof r.validatedAt === 'number' && typeof r.mediaType === 'string' ? r : undefined;
    } catch {
      return undefined; // a damaged record is a miss
    }
  }

  async putTag(upstream: string, repository: string, tag: string, variant: string, record: TagRecord): Promise<void> {
    await this.records.put(['tag', upstream, repository, tag, variant], JSON.stringify(record));
  }

  async *list(): AsyncIterable<ObjectInfo> {
    // The distribution API has no listing of a repository's blobs.
  }

  async close(): Promise<void> {
    // Nothing held open: each read is its own request.
  }
}
