import type { UpstreamResponse } from '@registry-proxy/registry-core';
import { RegistryError } from '@registry-proxy/registry-core';
import { CacheBase, PASS, SERVED, clearHeaders, type CacheOutcome, type CacheRequest } from './cache-base.js';
import { Fill, FillError } from './fill.js';
import { LiveSend } from './live.js';
import { awaitReplicaFill } from './replica-wait.js';
import { drained, parseRange, sendBytes, type Source } from './serve.js';
import type { ObjectHandle } from './store.js';

/** A fill lock outlives a stuck fill by no more than this. */
const FILL_LOCK_MS = 15 * 60_000;

/** Blobs in the pull-through cache: filled once, shared while filling, served through the repositories the upstream has shown them in. */
export class BlobCache extends CacheBase {
  async serve(r: CacheRequest): Promise<CacheOutcome> {
    return this.blob(r);
  }

  protected override refill(r: CacheRequest): Promise<CacheOutcome> {
    return this.blob(r);
  }

  /** Whether the upstream has shown `digest` in the repository: a link, or now a HEAD that says so. */
  private async confirmed(r: CacheRequest): Promise<true | UpstreamResponse> {
    if ((await this.safe(r, 'read link', () => this.store.link(this.client.name, r.repository, 'blob', r.reference))) !== undefined) return true;
    const up = await this.upstream(r, 'HEAD', {});
    if (up.statusCode !== 200) return up;
    await up.body.dump();
    await this.safe(r, 'write link', () => this.store.addLink(this.client.name, r.repository, 'blob', r.reference));
    return true;
  }

  /**
   * Serves an object another replica filled while this request waited for it; undefined when it
   * is not there. The lock is per digest, and that replica may have filled it through another
   * repository: this one must have it too (a link, or an upstream HEAD), as for any stored object.
   */
  private async fromReplica(r: CacheRequest): Promise<CacheOutcome | undefined> {
    if (!this.core.lock.shared) return undefined;
    const obj = await this.safe(r, 'open', () => this.store.open(r.reference));
    if (!obj) return undefined;
    const ok = await this.confirmed(r).catch(async (err: unknown) => {
      await obj.handle.close();
      throw err;
    });
    if (ok !== true) {
      await obj.handle.close();
      if (r.method === 'HEAD') return { served: false, response: ok };
      await ok.body.dump();
      return PASS;
    }
    return this.serveObject(r, obj, 'application/octet-stream');
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
    if (starting) return (await this.fromReplica(r)) ?? PASS; // that fill did not start: this request asks the upstream itself
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
      if (!lead.response) {
        const replica = await this.fromReplica(r);
        if (replica) return replica;
      }
      return { served: false, ...(lead.response ? { response: lead.response } : {}) };
    }
    this.count(r, 'miss');
    return this.serveFill(r, started, false);
  }

  /** Asks the upstream for a blob and starts copying it into the store; undefined (and the upstream's answer in `lead`) when it cannot be cached. */
  private async startFill(r: CacheRequest, lead: { response?: UpstreamResponse }): Promise<Fill | undefined> {
    const digest = r.reference;
    let lease = await this.core.lock.tryAcquire(digest, FILL_LOCK_MS).catch(() => undefined);
    if (!lease && this.core.lock.shared) {
      // Another replica is filling the shared store: wait for it rather than fetch it again.
      const w = await awaitReplicaFill(this.store, this.core.lock, digest, FILL_LOCK_MS);
      if (w && 'stored' in w) return undefined; // blob() serves it from the store
      lease = w?.lease;
    }
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
      r.metrics.cacheFills.inc({ upstream: this.client.name });
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
          r.metrics.cacheFills.dec({ upstream: this.client.name });
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
    let handle: ObjectHandle | undefined;
    let opening: Promise<ObjectHandle> | undefined;
    try {
      // The request that started the fill takes its bytes as they arrive (./live.ts); this must
      // happen before the first chunk does, so before any await.
      const live = !counted && r.method === 'GET' && r.headers['range'] === undefined && fill.size ? this.startLive(r, fill, fill.size) : undefined;
      opening = live ? fill.openReader() : undefined;
      opening?.catch(() => undefined);
      const size = await fill.knownSize().catch((err: FillError) => {
        if (err.reason === 'store') return -1;
        throw new RegistryError('BAD_GATEWAY', {
          message: err.reason === 'digest' ? 'upstream sent a blob that does not match its digest' : 'upstream registry failed while sending the blob',
          cause: err,
        });
      });
      if (size < 0) return PASS; // the store failed before this client got anything: relay it
      let start = 0;
      let range: { start: number; end: number } | undefined;
      if (live) {
        await live.done();
        start = live.sent();
        // A socket the live send filled is drained first (it may have drained already).
        if (r.res.writableNeedDrain && !(await drained(r.res))) return SERVED;
        handle = await (opening as Promise<ObjectHandle>).catch(async () => (await this.safe(r, 'open', () => this.store.open(fill.digest)))?.handle);
        if (!handle) throw new FillError('store', 'the cached object is gone');
      } else {
        try {
          handle = await fill.openReader();
        } catch {
          // Committed (renamed) before we got to it: it is a stored object now.
          const obj = await this.safe(r, 'open', () => this.store.open(fill.digest));
          return obj ? this.serveObject(r, obj, 'application/octet-stream') : PASS;
        }
        range = r.method === 'GET' ? parseRange(r.headers['range'], size) : undefined;
        this.blobHead(r, size, range);
        if (r.method === 'HEAD') {
          r.res.end();
          return SERVED;
        }
        start = range?.start ?? 0;
      }
      const src: Source = { handle, available: () => fill.available(), growing: () => fill.growing, wait: () => fill.wait() };
      await sendBytes(r.res, src, start, range?.end ?? size - 1);
      return SERVED;
    } catch (err) {
      if (!r.res.headersSent) {
        clearHeaders(r.res);
        if (err instanceof FillError && err.reason === 'store' && !r.res.headersSent) return PASS;
        if (err instanceof RegistryError) throw err;
        throw new RegistryError('BAD_GATEWAY', {
          message: err instanceof FillError && err.reason === 'digest' ? 'upstream sent a blob that does not match its digest' : 'upstream registry failed while sending the blob',
          cause: err,
        });
      }
      // Headers are gone: cutting the connection is the only way to say the body is bad.
      r.logger.warn({ err: { message: (err as Error).message }, digest: fill.digest }, 'cache fill failed while serving it; connection cut');
      r.res.destroy();
      return SERVED;
    } finally {
      unpin();
      await handle?.close().catch(() => undefined);
      // Opened for a live send that ended before it read from the file.
      if (opening && !handle) await opening.then((h) => h.close()).catch(() => undefined);
    }
  }

  /** Sets the headers of a whole-blob answer and starts the live send; the headers are taken back when it cannot start. */
  private startLive(r: CacheRequest, fill: Fill, size: number): LiveSend | undefined {
    this.blobHead(r, size, undefined);
    const live = LiveSend.start(r.res, fill, size);
    if (!live) clearHeaders(r.res);
    return live;
  }
}
