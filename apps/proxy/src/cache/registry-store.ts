import { createReadStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { disposableChunks, type UpstreamClient, type UpstreamResponse } from '@registry-proxy/registry-core';
import { ObjectTooLargeError } from './filesystem-store.js';
import { sweepAbandoned } from './abandoned.js';
import { Quota } from './lru.js';
import { SpoolFile } from './spool-file.js';
import { uploadBlob } from './registry-upload.js';
import { StoreReader } from './registry-reader.js';
import { RegistryRecords, objectTag } from './registry-records.js';
import { isMediaType, parseTagRecord, type CacheStore, type LinkKind, type ObjectInfo, type ObjectWriter, type StoredObject, type TagRecord } from './store.js';

const DIGEST = /^sha256:[a-f0-9]{64}$/;
/** A media type, parameters allowed, no control characters (it is sent back as a Content-Type). */
/** Links this process has read or written, kept so that each is asked of the store once; beyond this many the oldest are forgotten (and read again). */
const MAX_KNOWN_LINKS = 100_000;
/** Evictions in flight at once (each a record GET and DELETE, then a blob DELETE). */
const EVICTIONS = 4;
/** A failed start-up index is tried again after a minute, then twice as long after each failure, at most an hour. */
const INDEX_RETRY_MS = 60_000;
const INDEX_RETRY_MAX_MS = 3_600_000;
/** A spool file of a fill (only those are swept: a live fill writes it as it goes, then removes it). */
const SPOOL_FILE = /^[a-f0-9]{64}\.\d+\.[a-f0-9]{12}$/;

export interface RegistryStoreOptions {
  /** A client for the store registry, with the store's credentials (the upstream credential providers). */
  readonly client: UpstreamClient;
  /** The one repository of the store registry that holds every object, by digest. */
  readonly repository: string;
  /** Local directory for fills in progress (readers read it while it grows; the upload starts once verified). */
  readonly spoolDir: string;
  /** An upload that failed (and was cancelled): the fill's clients got their bytes; the object is simply not stored. */
  readonly onUploadFailed: (digest: string, err: Error) => void;
  /** The size quota (none when absent): least recently used objects are removed before an upload that would exceed it. */
  readonly maxBytes?: number;
  /** An object was removed to make room. */
  readonly onEvict?: (digest: string, size: number) => void;
  /** Removing an object to make room failed: it stays in the store (and in this process's count); the fill goes on. */
  readonly onEvictFailed?: (digest: string, err: Error) => void;
  /** Tags asked for per tag-list page (default 1000). */
  readonly tagPage?: number;
  /** The start-up index (see `index`) finished, or failed (it is tried again a minute later). */
  readonly onIndexed?: (result: { objects: number; bytes: number } | Error) => void;
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
 * Every stored object also has an object record: an OCI manifest tagged `rp-o-<hex digest>` whose
 * one layer is the object and whose annotation is its fill time, written right after the upload.
 * The store repository's tag list thereby lists the objects (sizes and fill times are one record
 * GET each), and distribution's garbage collection keeps them (they are referenced) until they
 * are evicted. The quota (`maxBytes`) is kept in this process (./lru.ts): the records are indexed
 * in the background at start, last use is in memory (seeded by the fill time), and as a fill
 * starts (or before its upload, when its size was not announced) the least recently used objects
 * that are not pinned (being read: from `open` until the handle is closed; or filled) are
 * evicted: their record DELETEd by its digest, then the blob.
 */
export class RegistryStore implements CacheStore {
  readonly description: string;
  private readonly links = new Map<string, string>();
  /** The store's records (objects, links, tags): what the cache CLI lists and removes. */
  readonly records: RegistryRecords;
  private readonly quota: Quota;
  /** Objects whose eviction is under way (settles when it has ended, either way): not offered to readers meanwhile, and not uploaded again before it ends. */
  private readonly evicting = new Map<string, Promise<void>>();
  private indexing: Promise<void> | undefined;
  /** Objects removed (evicted, found gone, removed as corrupt) while an index runs: a record it read before is stale. */
  private readonly goneWhileIndexing = new Set<string>();
  private indexRunning = false;
  private retry: NodeJS.Timeout | undefined;
  private retryMs = INDEX_RETRY_MS;
  private closed = false;

  constructor(private readonly opts: RegistryStoreOptions) {
    this.description = `registry:${opts.client.origin}/${opts.repository}`;
    this.records = new RegistryRecords({ request: (m, p, e) => this.req(m, p, e), upload: (d, body) => this.upload(d, () => body, body.length) }, opts.repository, opts.tagPage);
    this.quota = new Quota(opts.maxBytes ?? Number.MAX_SAFE_INTEGER);
  }

  /** Takes an object out of the count: it is no longer in the store (or is about to leave it). */
  private forget(digest: string): void {
    this.quota.delete(digest);
    if (this.indexRunning) this.goneWhileIndexing.add(digest);
  }

  /** Bytes of the objects this process knows the store holds (indexed, filled or read). */
  get bytes(): number {
    return this.quota.bytes;
  }

  /**
   * Learns what the store holds from its object records (paginated tag list, one GET per record),
   * in the background: pulls do not wait for it. Objects this process has met meanwhile keep what
   * it knows of them. A failure is reported and the index is tried again a minute later (then
   * backing off to an hour).
   * Resolves when this attempt ends (never rejects).
   */
  index(): Promise<void> {
    this.indexing ??= (async () => {
      let objects = 0;
      this.indexRunning = true;
      await sweepAbandoned(this.opts.spoolDir, (f) => SPOOL_FILE.test(f));
      try {
        for await (const rec of this.records.objects()) {
          if (this.closed) return;
          objects++;
          if (this.quota.has(rec.digest) || this.evicting.has(rec.digest) || this.goneWhileIndexing.has(rec.digest)) continue;
          // A fill time ahead of this clock (a replica whose clock runs ahead) would keep the object at the recent end until the clock caught up.
          this.quota.set(rec.digest, rec.size, Math.min(rec.filledAt, Date.now()));
        }
        this.opts.onIndexed?.({ objects, bytes: this.quota.bytes });
      } catch (err) {
        this.opts.onIndexed?.(err as Error);
        if (!this.closed) {
          this.retry = setTimeout(() => {
            this.indexing = undefined;
            void this.index();
          }, this.retryMs);
          this.retryMs = Math.min(this.retryMs * 2, INDEX_RETRY_MAX_MS);
          this.retry.unref();
        }
      } finally {
        this.indexRunning = false;
        this.goneWhileIndexing.clear();
      }
    })();
    return this.indexing;
  }

  /** Downloads an object whole and hashes it; undefined when the store does not have it. */
  async hash(digest: string): Promise<string | undefined> {
    const r = await this.req('GET', this.blobPath(digest));
    if (r.statusCode === 404) {
      await r.body.dump();
      return undefined;
    }
    if (r.statusCode !== 200) {
      await r.body.dump();
      throw new Error(`store registry answered ${r.statusCode} to a blob GET`);
    }
    const h = createHash('sha256');
    for await (const c of r.body as AsyncIterable<Buffer>) {
      h.update(c);
      r.body.release(c);
    }
    return `sha256:${h.digest('hex')}`;
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
    if (this.evicting.has(digest)) return undefined;
    // Pinned from here until the handle is closed: an object being read is never evicted.
    const unpin = this.quota.pin(digest);
    try {
      const r = await this.req('HEAD', path);
      await r.body.dump();
      if (r.statusCode === 404) {
        this.forget(digest); // removed elsewhere (another replica's eviction, a purge)
        unpin();
        return undefined;
      }
      if (r.statusCode !== 200) throw new Error(`store registry answered ${r.statusCode} to a blob HEAD`);
      const size = Number(r.headers['content-length']);
      if (!Number.isSafeInteger(size) || size < 0) throw new Error('store registry sent no Content-Length for a blob');
      // Filled by another replica (or by an older build): counted from now on, and used now. A
      // record whose size was not the object's is counted by the object's from now on.
      if (!this.quota.has(digest)) this.quota.set(digest, size);
      else if (this.quota.size(digest) !== size) this.quota.set(digest, size, this.quota.lastUsed(digest));
      const reader = new StoreReader(size, (range) => this.req('GET', path, { headers: { range } }));
      const handle = {
        read: (b: Buffer, p: number) => reader.read(b, p),
        close: async () => {
          unpin();
          await reader.close();
        },
      };
      return { size, stamp: `${digest}:${size}`, handle };
    } catch (err) {
      unpin();
      throw err;
    }
  }

  async create(digest: string, size: number | undefined): Promise<ObjectWriter> {
    this.blobPath(digest);
    if (size !== undefined && size > this.quota.maxBytes) throw new ObjectTooLargeError(size, this.quota.maxBytes);
    // Room is made while the fill downloads (commit waits for it), and held until the object is counted.
    const announced = size;
    let room = size === undefined ? undefined : this.makeRoom(size);
    const tmp = join(this.opts.spoolDir, `${digest.slice(7)}.${process.pid}.${randomBytes(6).toString('hex')}`);
    let spool: SpoolFile;
    try {
      await mkdir(this.opts.spoolDir, { recursive: true });
      spool = await SpoolFile.create(tmp);
    } catch (err) {
      room?.release();
      throw err;
    }
    return {
      write: (chunk) => spool.write(chunk),
      writev: (chunks) => spool.writev(chunks),
      openReader: () => spool.openReader(),
      uploadsOnCommit: true,
      commit: async () => {
        await spool.close();
        const size = (await stat(tmp)).size;
        try {
          if (size > this.quota.maxBytes) throw new ObjectTooLargeError(size, this.quota.maxBytes);
          // Room made for another size than came (or for none announced) is made again; a failed eviction is not retried within one fill.
          await room?.done;
          if (room === undefined || size !== announced) {
            room?.release();
            room = this.makeRoom(size);
            await room.done;
          }
          // Filled again while its eviction runs: uploaded after it, or its blob DELETE would remove this upload.
          await this.evicting.get(digest);
          await this.upload(digest, () => disposableChunks(createReadStream(tmp)), size); // fs.ReadStream makes each chunk a buffer of its own
          // The record makes the object listable, countable after a restart, and kept by garbage collection.
          await this.records.putObject({ digest, size, filledAt: Date.now() });
          this.quota.set(digest, size);
        } catch (err) {
          // The clients of this fill have every byte (from the spool): a store that cannot take
          // the object costs the next request a miss, never this one its pull.
          this.opts.onUploadFailed(digest, err as Error);
        } finally {
          room?.release();
          // Readers that have the spool file open keep reading it.
          await rm(tmp, { force: true });
        }
        return `${digest}:${size}`;
      },
      abort: async () => {
        room?.release();
        await spool.discard();
      },
    };
  }

  private upload(digest: string, body: () => Buffer | Readable, size: number): Promise<void> {
    return uploadBlob((m, p, e) => this.req(m, p, e), this.opts.client.origin, this.opts.repository, digest, body, size);
  }

  /** Evicts until `bytes` more fit (the victims are chosen now), and reserves them, so that fills starting meanwhile make room for themselves too. */
  private makeRoom(bytes: number): { done: Promise<void>; release: () => void } {
    const done = this.evict(bytes);
    return { done, release: this.quota.reserve(bytes) };
  }

  /**
   * Evicts least recently used objects, not pinned, until `incoming` more bytes fit. A removal
   * that fails is reported and the object counted again (it is still there); the fill goes on.
   */
  private async evict(incoming: number): Promise<void> {
    // Taken out of the count at once (before any await): concurrent fills do not pick them again.
    const jobs = this.quota.victims(incoming).map((digest) => {
      const size = this.quota.size(digest);
      const lastUsed = this.quota.lastUsed(digest);
      let settle: () => void = () => undefined;
      const ended = new Promise<void>((r) => (settle = r));
      this.forget(digest);
      this.evicting.set(digest, ended);
      return { digest, size, lastUsed, ended, settle };
    });
    // Removed a few at a time: a large fill may need many small objects gone (each three store requests).
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(EVICTIONS, jobs.length) }, async () => {
        while (next < jobs.length) {
          const { digest, size, lastUsed, ended, settle } = jobs[next++] as (typeof jobs)[number];
          try {
            await this.removeStored(digest);
            this.opts.onEvict?.(digest, size);
          } catch (err) {
            if (!this.quota.has(digest)) this.quota.set(digest, size, lastUsed);
            this.opts.onEvictFailed?.(digest, err as Error);
          } finally {
            if (this.evicting.get(digest) === ended) this.evicting.delete(digest);
            settle();
          }
        }
      }),
    );
  }

  /** The record first, then the blob: a blob left behind is unreferenced (garbage collection takes it), a record left behind would keep it. */
  private async removeStored(digest: string): Promise<void> {
    // The record under the object's tag now, by its digest: not one this process remembers, which
    // another replica's fill may have replaced (and the old revision, untagged, would go instead).
    const rec = await this.records.read(objectTag(digest));
    if (rec) await this.records.deleteManifest(rec.digest);
    const r = await this.req('DELETE', this.blobPath(digest));
    await r.body.dump();
    // 405: deletion is disabled on the store registry; the object stays, and is hashed (and refused) again.
    if (r.statusCode !== 202 && r.statusCode !== 404) throw new Error(`store registry answered ${r.statusCode} to a blob DELETE`);
  }

  async remove(digest: string): Promise<void> {
    this.blobPath(digest);
    this.forget(digest);
    await this.removeStored(digest);
  }

  touch(digest: string): void {
    this.quota.touch(digest);
  }

  pin(digest: string): () => void {
    return this.quota.pin(digest);
  }

  async link(upstream: string, repository: string, kind: LinkKind, digest: string): Promise<string | undefined> {
    const key = ['link', upstream, repository, kind, digest];
    const mem = this.links.get(key.join('\u0000'));
    if (mem !== undefined) return mem;
    const found = await this.records.get(key);
    // A manifest link's value becomes a Content-Type: anything but a media type is not ours.
    if (found === undefined || (kind === 'manifest' ? !isMediaType(found) : found !== '')) return undefined;
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
    return parseTagRecord(text);
  }

  async putTag(upstream: string, repository: string, tag: string, variant: string, record: TagRecord): Promise<void> {
    await this.records.put(['tag', upstream, repository, tag, variant], JSON.stringify(record));
  }

  /** The objects that have records (objects stored by a build before records existed are not listed). */
  async *list(): AsyncIterable<ObjectInfo> {
    for await (const rec of this.records.objects()) yield { digest: rec.digest, size: rec.size, lastUsed: rec.filledAt };
  }

  async close(): Promise<void> {
    // Nothing held open: each read is its own request. The index stops at its next record.
    this.closed = true;
    clearTimeout(this.retry);
  }
}
