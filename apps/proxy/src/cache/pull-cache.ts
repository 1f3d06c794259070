import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { BodyTooLargeError, RegistryError, UpstreamUnavailableError, type UpstreamClient, type UpstreamResponse } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { CacheConfig } from './config.js';
import { Fill, FillError } from './fill.js';
import type { FillLock } from './fill-lock.js';
import { linksOf } from './manifest-links.js';
import { CorruptObjectError, parseRange, sendBytes, type Source } from './serve.js';
import type { CacheStore, StoredObject, TagRecord } from './store.js';

const SHA256 = /^sha256:[a-f0-9]{64}$/;
const MAX_MANIFEST_BYTES = 4 << 20;
/** After a store write fails, fills are skipped this long (pulls are relayed) rather than failing again at once. */
const BYPASS_MS = 30_000;
/** A fill lock outlives a stuck fill by no more than this. */
const FILL_LOCK_MS = 15 * 60_000;

/** What one store shares between the upstreams that use it: fills in progress, verified stamps, the fill lock. */
export class CacheCore {
  readonly fills = new Map<string, Promise<Fill | undefined>>();
  /** digest -> stamp of the stored object this process has hashed (or filled) and found right. */
  readonly verified = new Map<string, string>();
  bypassUntil = 0;
  metrics: Metrics | undefined;

  constructor(
    readonly store: CacheStore,
    readonly lock: FillLock,
  ) {}
}

/** One cache request, after authorization: the client may pull `repository`. */
export interface CacheRequest {
  readonly method: 'GET' | 'HEAD';
  readonly kind: 'blob' | 'manifest';
  /** The repository's name upstream. */
  readonly repository: string;
  readonly reference: string;
  /** The upstream request's path and token scope, as the relay would send them. */
  readonly path: string;
  readonly scope: string;
  /** Request headers the relay forwards (accept, range, ...). */
  readonly headers: Readonly<Record<string, string>>;
  /** Headers every answer carries (API version, OCI-Namespace). */
  readonly extra: Readonly<Record<string, string>>;
  readonly res: ServerResponse;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/** served: answered; otherwise the relay goes on, with this upstream response when there is one. */
export type CacheOutcome = { readonly served: true } | { readonly served: false; readonly response?: UpstreamResponse };

const PASS: CacheOutcome = { served: false };
const SERVED: CacheOutcome = { served: true };

/** The Accept header's media types, as a key: tags resolve per kind of client. */
export function acceptVariant(accept: string | undefined): string {
  if (!accept) return 'any';
  const types = [...new Set(accept.split(',').map((t) => (t.split(';')[0] as string).trim().toLowerCase()).filter(Boolean))].sort();
  return createHash('sha256').update(types.join(',')).digest('hex').slice(0, 16);
}

/** The pull-through cache of one upstream (docs/configuration.md, "cache"). */
export class PullCache {
  /** Requests whose stored object turned out corrupt and that are being filled again (once). */
  private readonly refetching = new WeakSet<CacheRequest>();

  constructor(
    readonly core: CacheCore,
    private readonly client: UpstreamClient,
    private readonly config: CacheConfig,
  ) {}

  private get store(): CacheStore {
    return this.core.store;
  }

  async serve(r: CacheRequest): Promise<CacheOutcome> {
    this.core.metrics ??= r.metrics;
    if (r.kind === 'blob') return SHA256.test(r.reference) ? this.blob(r) : PASS;
    if (r.reference.includes(':')) return SHA256.test(r.reference) ? this.manifestByDigest(r) : PASS;
    return this.manifestByTag(r);
  }

  // ---- accounting ----

  private count(r: CacheRequest, result: 'hit' | 'miss' | 'stale' | 'bypass'): void {
    r.metrics.cacheRequests.inc({ upstream: this.client.name, kind: r.kind, result });
  }

  /** A store failure never fails a pull: it is logged, counted, and fills pause for a while. */
  private storeFailed(r: CacheRequest, err: unknown, what: string): void {
    this.core.bypassUntil = Date.now() + BYPASS_MS;
    r.metrics.cacheErrors.inc({ upstream: this.client.name, reason: 'store' });
    r.logger.warn({ err: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code }, store: this.store.description }, `cache store failed (${what}); relaying without caching`);
  }

  private async safe<T>(r: CacheRequest, what: string, op: () => Promise<T>): Promise<T | undefined> {
    try {
      return await op();
    } catch (err) {
      this.storeFailed(r, err, what);
      return undefined;
    }
  }

  private async upstream(r: CacheRequest, method: 'GET' | 'HEAD', headers: Record<string, string>): Promise<UpstreamResponse> {
    const started = process.hrtime.bigint();
    const up = await this.client.request({ method, path: r.path, headers, scope: r.scope });
    r.metrics.upstreamLatency.observe({ upstream: this.client.name, status: String(up.statusCode) }, Number(process.hrtime.bigint() - started) / 1e9);
    return up;
  }

  private head(r: CacheRequest, status: number, headers: Record<string, string | number>): void {
    r.res.statusCode = status;
    for (const [k, v] of Object.entries({ ...headers, ...r.extra })) r.res.setHeader(k, v);
  }

  // ---- blobs ----

  /** Whether the upstream has shown `digest` in the repository: a link, or now a HEAD that says so. */
  private async confirmed(r: CacheRequest): Promise<true | UpstreamResponse> {
    if ((await this.safe(r, 'read link', () => this.store.link(this.client.name, r.repository, 'blob', r.reference))) !== undefined) return true;
    const up = await this.upstream(r, 'HEAD', {});
    if (up.statusCode !== 200) return up;
    await up.body.dump();
    await this.safe(r, 'write link', () => this.store.addLink(this.client.name, r.repository, 'blob', r.reference));
    return true;
  }

  private async blob(r: CacheRequest): Promise<CacheOutcome> {
    const digest = r.reference;
    const obj = await this.safe(r, 'open', () => this.store.open(digest));
    const starting = obj ? undefined : this.core.fills.get(digest);
    // A fill that is still asking the upstream: once it has its answer, the repository it was
    // asked through is linked, so a request through the same one needs no upstream HEAD.
    const fill = starting ? await starting.catch(() => undefined) : undefined;
    if (obj || fill) {
      // Cached, or being filled, perhaps through another repository: serve it only if this one has it too.
      const ok = await this.confirmed(r).catch(async (err: unknown) => {
        await obj?.handle.close();
        throw err;
      });
      if (ok !== true) {
        await obj?.handle.close();
        if (r.method === 'HEAD') return { served: false, response: ok };
        await ok.body.dump();
        return PASS;
      }
      if (obj) return this.serveObject(r, obj, 'application/octet-stream');
      return this.serveFill(r, fill as Fill);
    }
    if (starting) return PASS; // that fill did not start: this request asks the upstream itself
    if (r.method === 'HEAD') return PASS;
    if (Date.now() < this.core.bypassUntil) {
      this.count(r, 'bypass');
      return PASS;
    }
    // Claimed before the first await, so every request that comes meanwhile joins this one.
    const lead: { response?: UpstreamResponse } = {};
    const claim = this.startFill(r, lead);
    this.core.fills.set(digest, claim);
    const started = await claim.catch((err: unknown) => {
      this.core.fills.delete(digest); // an upstream failure is this request's answer, not the next one's
      throw err;
    });
    if (!started) {
      this.core.fills.delete(digest);
      return { served: false, ...(lead.response ? { response: lead.response } : {}) };
    }
    this.count(r, 'miss');
    return this.serveFill(r, started, false);
  }

  /** Asks the upstream for a blob and starts copying it into the store; undefined (and the upstream's answer in `lead`) when it cannot be cached. */
  private async startFill(r: CacheRequest, lead: { response?: UpstreamResponse }): Promise<Fill | undefined> {
    const digest = r.reference;
    const lease = await this.core.lock.tryAcquire(digest, FILL_LOCK_MS).catch(() => undefined);
    if (!lease) {
      this.count(r, 'bypass'); // another replica is filling it
      return undefined;
    }
    let fill: Fill | undefined;
    try {
      const up = await this.upstream(r, 'GET', {});
      if (up.statusCode !== 200) {
        lead.response = up;
        return undefined;
      }
      // The upstream has just shown the blob in this repository.
      await this.safe(r, 'write link', () => this.store.addLink(this.client.name, r.repository, 'blob', digest));
      const length = Number(up.headers['content-length']);
      const size = Number.isSafeInteger(length) && length >= 0 ? length : undefined;
      let writer;
      try {
        writer = await this.store.create(digest, size);
      } catch (err) {
        this.storeFailed(r, err, 'create');
        this.count(r, 'bypass');
        lead.response = up;
        return undefined;
      }
      const f = new Fill(digest, size, writer, up.body, (n) => r.metrics.cacheBytes.inc({ upstream: this.client.name, source: 'upstream' }, n));
      fill = f;
      void f.done
        .then(
          () => {
            if (f.stamp) this.core.verified.set(digest, f.stamp);
            r.metrics.cacheStoreBytes.set({ store: this.store.description }, this.store.bytes);
          },
          (err: FillError) => {
            if (err.reason === 'store') this.storeFailed(r, err, 'fill');
            else {
              r.metrics.cacheErrors.inc({ upstream: this.client.name, reason: err.reason });
              r.logger.warn({ err: { message: err.message }, digest, upstream: this.client.name }, 'cache fill failed; nothing stored');
            }
          },
        )
        .finally(() => {
          this.core.fills.delete(digest);
          void lease.release();
        });
      return f;
    } finally {
      if (!fill) await lease.release();
    }
  }

  /** Serves an object that a fill is writing (a joiner, or the request that started it). */
  private async serveFill(r: CacheRequest, fill: Fill, counted = true): Promise<CacheOutcome> {
    if (counted) this.count(r, 'miss');
    const unpin = this.store.pin(fill.digest);
    let handle;
    try {
      const size = await fill.knownSize().catch((err: FillError) => {
        if (err.reason === 'store') return -1;
        throw new RegistryError('BAD_GATEWAY', { message: err.reason === 'digest' ? 'upstream sent a blob that does not match its digest' : 'upstream registry failed while sending the blob', cause: err });
      });
      if (size < 0) return PASS; // the store failed before this client got anything: relay it
      try {
        handle = await fill.openReader();
      } catch {
        // Committed (renamed) before we got to it: it is a stored object now.
        const obj = await this.safe(r, 'open', () => this.store.open(fill.digest));
        return obj ? this.serveObject(r, obj, 'application/octet-stream') : PASS;
      }
      const range = r.method === 'GET' ? parseRange(r.headers['range'], size) : undefined;
      this.blobHead(r, size, range);
      if (r.method === 'HEAD') {
        r.res.end();
        return SERVED;
      }
      const src: Source = { handle, available: () => fill.available(), growing: () => fill.growing, wait: () => fill.wait() };
      try {
        await sendBytes(r.res, src, range?.start ?? 0, range?.end ?? size - 1);
      } catch (err) {
        if (!r.res.headersSent) {
          clearHeaders(r.res);
          throw new RegistryError('BAD_GATEWAY', { message: err instanceof FillError && err.reason === 'digest' ? 'upstream sent a blob that does not match its digest' : 'upstream registry failed while sending the blob', cause: err });
        }
        // Headers are gone: cutting the connection is the only way to say the body is bad.
        r.logger.warn({ err: { message: (err as Error).message }, digest: fill.digest }, 'cache fill failed while serving it; connection cut');
        r.res.destroy();
      }
      return SERVED;
    } finally {
      unpin();
      await handle?.close().catch(() => undefined);
    }
  }

  private blobHead(r: CacheRequest, size: number, range: { start: number; end: number } | undefined): void {
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream',
      'Docker-Content-Digest': r.reference,
      ETag: `"${r.reference}"`,
      'Accept-Ranges': 'bytes',
      'Content-Length': range ? range.end - range.start + 1 : size,
    };
    if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
    this.head(r, range ? 206 : 200, headers);
  }

  /** Serves a stored object, checking its digest unless this process already has for this exact file. */
  private async serveObject(r: CacheRequest, obj: StoredObject, contentType: string, digest = r.reference, result: 'hit' | 'stale' = 'hit'): Promise<CacheOutcome> {
    const unpin = this.store.pin(digest);
    try {
      this.store.touch(digest);
      // A file this process has not checked (filled by a replica, or changed since: its ctime
      // moved) is hashed whole before any of it is sent: a bad object is never served, not even
      // in part, and the request goes on as a miss.
      if (this.core.verified.get(digest) !== obj.stamp && !(await this.verifyWhole(r, obj, digest))) {
        return r.kind === 'blob' && !this.refetching.has(r) ? (this.refetching.add(r), this.blob(r)) : PASS;
      }
      const range = r.method === 'GET' && r.kind === 'blob' ? parseRange(r.headers['range'], obj.size) : undefined;
      this.count(r, result);
      if (r.kind === 'blob') this.blobHead(r, obj.size, range);
      else this.head(r, 200, { 'Content-Type': contentType, 'Docker-Content-Digest': digest, ETag: `"${digest}"`, 'Content-Length': obj.size });
      if (r.method === 'HEAD') {
        r.res.end();
        return SERVED;
      }
      const start = range?.start ?? 0;
      const end = range?.end ?? obj.size - 1;
      let ok: boolean;
      try {
        ok = await sendBytes(r.res, { handle: obj.handle, available: () => obj.size, growing: () => false, wait: async () => undefined }, start, end);
      } catch (err) {
        r.logger.warn({ err: { message: (err as Error).message }, digest }, 'reading a cached object failed; connection cut');
        r.res.destroy();
        return SERVED;
      }
      if (ok) r.metrics.cacheBytes.inc({ upstream: this.client.name, source: 'cache' }, end - start + 1);
      return SERVED;
    } finally {
      unpin();
      await obj.handle.close().catch(() => undefined);
    }
  }

  /** Hashes a whole stored object; a corrupt one is removed (and false returned, so the request is relayed). */
  private async verifyWhole(r: CacheRequest, obj: StoredObject, digest: string): Promise<boolean> {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; pos < obj.size; ) {
      const n = await obj.handle.read(buf, pos);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    const got = `sha256:${hash.digest('hex')}`;
    if (got === digest) {
      this.core.verified.set(digest, obj.stamp);
      return true;
    }
    await this.corrupt(r, digest, new CorruptObjectError(digest, got));
    return false;
  }

  private async corrupt(r: CacheRequest, digest: string, err: CorruptObjectError): Promise<void> {
    r.metrics.cacheErrors.inc({ upstream: this.client.name, reason: 'corrupt' });
    r.logger.warn({ err: { message: err.message }, digest, store: this.store.description }, 'corrupt object in the cache: removed; it is fetched again on the next request');
    this.core.verified.delete(digest);
    await this.safe(r, 'remove', () => this.store.remove(digest));
  }

  // ---- manifests ----

  private async manifestByDigest(r: CacheRequest): Promise<CacheOutcome> {
    const digest = r.reference;
    const mediaType = await this.safe(r, 'read link', () => this.store.link(this.client.name, r.repository, 'manifest', digest));
    if (mediaType) {
      const obj = await this.safe(r, 'open', () => this.store.open(digest));
      if (obj && (await this.serveObject(r, obj, mediaType)).served) return SERVED;
    }
    const up = await this.upstream(r, 'GET', pick(r.headers, ['accept']));
    if (up.statusCode !== 200) return { served: false, response: up };
    const m = await this.readManifest(up, digest);
    this.count(r, 'miss');
    await this.keepManifest(r, m);
    this.sendManifest(r, m);
    return SERVED;
  }

  private async readManifest(up: UpstreamResponse, expected?: string): Promise<{ digest: string; mediaType: string; body: Buffer; etag?: string }> {
    let body: Buffer;
    try {
      body = await up.body.bytes(MAX_MANIFEST_BYTES);
    } catch (err) {
      if (err instanceof BodyTooLargeError) throw new RegistryError('BAD_GATEWAY', { message: 'upstream manifest larger than 4 MiB' });
      throw new RegistryError('BAD_GATEWAY', { message: 'upstream registry failed while sending the manifest', cause: err });
    }
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    const announced = up.headers['docker-content-digest'];
    if ((expected !== undefined && digest !== expected) || (typeof announced === 'string' && SHA256.test(announced) && announced !== digest)) {
      throw new RegistryError('BAD_GATEWAY', { message: 'upstream sent a manifest that does not match its digest' });
    }
    const ct = up.headers['content-type'];
    const etag = up.headers['etag'];
    return { digest, mediaType: typeof ct === 'string' ? ct : 'application/vnd.oci.image.manifest.v1+json', body, ...(typeof etag === 'string' ? { etag } : {}) };
  }

  /** Stores a manifest, its link, and links to what it references (they are in this repository too). */
  private async keepManifest(r: CacheRequest, m: { digest: string; mediaType: string; body: Buffer }): Promise<void> {
    await this.safe(r, 'store manifest', async () => {
      if (!(await this.store.open(m.digest).then(async (o) => (await o?.handle.close(), o !== undefined)))) {
        const w = await this.store.create(m.digest, m.body.length);
        try {
          await w.write(m.body);
          this.core.verified.set(m.digest, await w.commit());
        } catch (err) {
          await w.abort();
          throw err;
        }
      }
      const up = this.client.name;
      const links = linksOf(m.body);
      await Promise.all([
        ...links.blobs.map((d) => this.store.addLink(up, r.repository, 'blob', d)),
        ...links.manifests.map((x) => this.store.addLink(up, r.repository, 'manifest', x.digest, x.mediaType)),
      ]);
      await this.store.addLink(up, r.repository, 'manifest', m.digest, m.mediaType);
    });
  }

  private sendManifest(r: CacheRequest, m: { digest: string; mediaType: string; body: Buffer }): void {
    this.head(r, 200, { 'Content-Type': m.mediaType, 'Docker-Content-Digest': m.digest, ETag: `"${m.digest}"`, 'Content-Length': m.body.length });
    r.res.end(r.method === 'HEAD' ? undefined : m.body);
    if (r.method === 'GET') r.metrics.cacheBytes.inc({ upstream: this.client.name, source: 'upstream' }, m.body.length);
  }

  /** Serves what a tag record points to, if it is stored; false when it is not (or is corrupt). */
  private async serveRecord(r: CacheRequest, rec: TagRecord, result: 'hit' | 'stale'): Promise<boolean> {
    const obj = await this.safe(r, 'open', () => this.store.open(rec.digest));
    if (!obj) return false;
    const out = await this.serveObject(r, obj, rec.mediaType, rec.digest, result);
    if (out.served && result === 'stale') {
      r.logger.info({ repository: r.repository, tag: r.reference, digest: rec.digest, upstream: this.client.name }, 'upstream failing: serving a stale tag from the cache');
    }
    return out.served;
  }

  private async manifestByTag(r: CacheRequest): Promise<CacheOutcome> {
    const variant = acceptVariant(r.headers['accept']);
    const up = this.client.name;
    const rec = await this.safe(r, 'read tag', () => this.store.tag(up, r.repository, r.reference, variant));
    const now = Date.now();
    if (rec && now - rec.validatedAt < this.config.tagFreshnessSeconds * 1000 && (await this.serveRecord(r, rec, 'hit'))) return SERVED;
    const staleOk = rec !== undefined && now - rec.validatedAt < (this.config.tagFreshnessSeconds + this.config.staleIfErrorSeconds) * 1000;
    const headers = pick(r.headers, ['accept']);
    if (rec) headers['if-none-match'] = rec.etag ?? `"${rec.digest}"`;
    let res: UpstreamResponse;
    try {
      res = await this.upstream(r, 'GET', headers);
    } catch (err) {
      if (err instanceof UpstreamUnavailableError && staleOk && rec && (await this.serveRecord(r, rec, 'stale'))) return SERVED;
      throw err;
    }
    if (res.statusCode === 304 && rec) {
      await res.body.dump();
      await this.safe(r, 'write tag', () => this.store.putTag(up, r.repository, r.reference, variant, { ...rec, validatedAt: now }));
      if (await this.serveRecord(r, rec, 'hit')) return SERVED;
      // The record outlived its object: ask again without a condition.
      const again = await this.upstream(r, 'GET', pick(r.headers, ['accept']));
      if (again.statusCode !== 200) return { served: false, response: again };
      res = again;
    }
    if ((res.statusCode >= 500 || res.statusCode === 429) && staleOk && rec) {
      await res.body.dump();
      if (await this.serveRecord(r, rec, 'stale')) return SERVED;
      return PASS;
    }
    if (res.statusCode !== 200) return { served: false, response: res };
    const m = await this.readManifest(res);
    this.count(r, 'miss');
    await this.keepManifest(r, m);
    await this.safe(r, 'write tag', () => this.store.putTag(up, r.repository, r.reference, variant, { digest: m.digest, mediaType: m.mediaType, validatedAt: now, ...(m.etag ? { etag: m.etag } : {}) }));
    this.sendManifest(r, m);
    return SERVED;
  }
}

/** Forgets the headers of an answer that was not sent after all. */
function clearHeaders(res: ServerResponse): void {
  for (const h of res.getHeaderNames()) res.removeHeader(h);
  res.statusCode = 200;
}

function pick(h: Readonly<Record<string, string>>, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) if (h[n] !== undefined) out[n] = h[n] as string;
  return out;
}
