import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { UpstreamClient, UpstreamResponse } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { CacheConfig } from './config.js';
import type { Fill } from './fill.js';
import type { FillLock } from './fill-lock.js';
import { CorruptObjectError, parseRange, sendBytes } from './serve.js';
import type { CacheStore, StoredObject } from './store.js';

/** After a store write fails, fills are skipped this long (pulls are relayed) rather than failing again at once. */
const BYPASS_MS = 30_000;

/** What one store shares between the upstreams that use it: fills in progress, verified stamps, the fill lock. */
export class CacheCore {
  readonly fills = new Map<string, Promise<Fill | undefined>>();
  /** digest -> stamp of the stored object this process has hashed (or filled) and found right. */
  readonly verified = new Map<string, string>();
  /** Hashes under way, by digest and stamp: requests for an object being checked wait for that check rather than read it all again. */
  readonly verifying = new Map<string, Promise<boolean>>();
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

export const PASS: CacheOutcome = { served: false };
export const SERVED: CacheOutcome = { served: true };
export const SHA256 = /^sha256:[a-f0-9]{64}$/;

/** What the blob and manifest halves of the cache share: accounting, fault handling, and serving a stored object. */
export abstract class CacheBase {
  /** Requests whose stored object turned out corrupt and that are being filled again (once). */
  private readonly refetching = new WeakSet<CacheRequest>();

  constructor(
    readonly core: CacheCore,
    protected readonly client: UpstreamClient,
    protected readonly config: CacheConfig,
  ) {}

  protected get store(): CacheStore {
    return this.core.store;
  }

  /** Answers a request whose stored object was corrupt (and is now removed); the default lets the relay answer it. */
  protected refill(_r: CacheRequest): Promise<CacheOutcome> {
    return Promise.resolve(PASS);
  }

  protected count(r: CacheRequest, result: 'hit' | 'miss' | 'stale' | 'bypass'): void {
    r.metrics.cacheRequests.inc({ upstream: this.client.name, kind: r.kind, result });
  }

  /** A store failure never fails a pull: it is logged, counted, and fills pause for a while. */
  protected storeFailed(r: CacheRequest, err: unknown, what: string): void {
    this.core.bypassUntil = Date.now() + BYPASS_MS;
    r.metrics.cacheErrors.inc({ upstream: this.client.name, reason: 'store' });
    r.logger.warn({ err: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code }, store: this.store.description }, `cache store failed (${what}); relaying without caching`);
  }

  protected async safe<T>(r: CacheRequest, what: string, op: () => Promise<T>): Promise<T | undefined> {
    try {
      return await op();
    } catch (err) {
      this.storeFailed(r, err, what);
      return undefined;
    }
  }

  protected async upstream(r: CacheRequest, method: 'GET' | 'HEAD', headers: Record<string, string>): Promise<UpstreamResponse> {
    const started = process.hrtime.bigint();
    const up = await this.client.request({ method, path: r.path, headers, scope: r.scope });
    r.metrics.observeUpstream(this.client.name, up.statusCode, started);
    return up;
  }

  protected head(r: CacheRequest, status: number, headers: Record<string, string | number>): void {
    r.res.statusCode = status;
    for (const [k, v] of Object.entries({ ...headers, ...r.extra })) r.res.setHeader(k, v);
  }

  protected blobHead(r: CacheRequest, size: number, range: { start: number; end: number } | undefined): void {
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
  protected async serveObject(r: CacheRequest, obj: StoredObject, contentType: string, digest = r.reference, result: 'hit' | 'stale' = 'hit'): Promise<CacheOutcome> {
    const unpin = this.store.pin(digest);
    try {
      this.store.touch(digest);
      // A file this process has not checked (filled by a replica, or changed since: its ctime
      // moved) is hashed whole before any of it is sent: a bad object is never served, not even
      // in part, and the request goes on as a miss.
      // A store that fails while it is read for that (its GET after its HEAD) is a store fault:
      // nothing has been sent, so the request is relayed.
      const checked = this.core.verified.get(digest) === obj.stamp || (await this.verifyWhole(r, obj, digest).catch((err: unknown) => (this.storeFailed(r, err, 'read'), undefined)));
      if (checked === undefined) return PASS;
      if (!checked) return this.refetching.has(r) ? PASS : (this.refetching.add(r), this.refill(r));
      const range = r.method === 'GET' && r.kind === 'blob' ? parseRange(r.headers['range'], obj.size) : undefined;
      if (r.kind === 'blob') this.blobHead(r, obj.size, range);
      else this.head(r, 200, { 'Content-Type': contentType, 'Docker-Content-Digest': digest, ETag: `"${digest}"`, 'Content-Length': obj.size });
      // Counted once the answer really comes from the cache: a store read that fails before the
      // first byte goes out is relayed below, and counted as that.
      const counted = () => this.count(r, result);
      if (r.method === 'HEAD') {
        counted();
        r.res.end();
        return SERVED;
      }
      const start = range?.start ?? 0;
      const end = range?.end ?? obj.size - 1;
      let ok: boolean;
      try {
        ok = await sendBytes(r.res, { handle: obj.handle, available: () => obj.size, growing: () => false, wait: async () => undefined }, start, end, counted);
      } catch (err) {
        if (!r.res.headersSent) {
          // Failed before any byte went out (the store's GET after its HEAD): relayed, like any store fault.
          clearHeaders(r.res);
          this.storeFailed(r, err, 'read');
          return PASS;
        }
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

  /** Hashes a whole stored object (once, however many requests want it at the same time); a corrupt one is removed (and false returned, so the request is relayed). */
  protected verifyWhole(r: CacheRequest, obj: StoredObject, digest: string): Promise<boolean> {
    const key = `${digest}\u0000${obj.stamp}`;
    let check = this.core.verifying.get(key);
    if (!check) {
      check = this.hashWhole(r, obj, digest).finally(() => this.core.verifying.delete(key));
      this.core.verifying.set(key, check);
    }
    return check;
  }

  private async hashWhole(r: CacheRequest, obj: StoredObject, digest: string): Promise<boolean> {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; pos < obj.size;) {
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

  protected async corrupt(r: CacheRequest, digest: string, err: CorruptObjectError): Promise<void> {
    r.metrics.cacheErrors.inc({ upstream: this.client.name, reason: 'corrupt' });
    r.logger.warn({ err: { message: err.message }, digest, store: this.store.description }, 'corrupt object in the cache: removed; it is fetched again on the next request');
    this.core.verified.delete(digest);
    await this.safe(r, 'remove', () => this.store.remove(digest));
  }
}

/** Forgets the headers of an answer that was not sent after all. */
export function clearHeaders(res: ServerResponse): void {
  for (const h of res.getHeaderNames()) res.removeHeader(h);
  res.statusCode = 200;
}
