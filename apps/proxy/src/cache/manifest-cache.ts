import { createHash } from 'node:crypto';
import { BodyTooLargeError, RegistryError, UpstreamUnavailableError, type UpstreamResponse } from '@registry-proxy/registry-core';
import { CacheBase, PASS, SERVED, SHA256, type CacheOutcome, type CacheRequest } from './cache-base.js';
import { linksOf } from './manifest-links.js';
import type { TagRecord } from './store.js';

const MAX_MANIFEST_BYTES = 4 << 20;

/** The Accept header's media types, as a key: tags resolve per kind of client. */
export function acceptVariant(accept: string | undefined): string {
  if (!accept) return 'any';
  const types = [
    ...new Set(
      accept
        .split(',')
        .map((t) => (t.split(';')[0] as string).trim().toLowerCase())
        .filter(Boolean),
    ),
  ].sort();
  return createHash('sha256').update(types.join(',')).digest('hex').slice(0, 16);
}

/** Link writes in flight at once while a manifest's references are recorded. */
const LINK_WRITES = 8;

/** Manifests in the pull-through cache: by digest, and tags with freshness, revalidation and stale-if-error. */
export class ManifestCache extends CacheBase {
  async serve(r: CacheRequest): Promise<CacheOutcome> {
    return r.reference.includes(':') ? this.manifestByDigest(r) : this.manifestByTag(r);
  }

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
      const writes = [
        ...links.blobs.map((d) => () => this.store.addLink(up, r.repository, 'blob', d)),
        ...links.manifests.map((x) => () => this.store.addLink(up, r.repository, 'manifest', x.digest, x.mediaType)),
      ];
      // A few at a time: a manifest may list thousands (each a store request, for a registry store a fresh connection).
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(LINK_WRITES, writes.length) }, async () => {
          while (next < writes.length) await (writes[next++] as () => Promise<void>)();
        }),
      );
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
    await this.safe(r, 'write tag', () =>
      this.store.putTag(up, r.repository, r.reference, variant, { digest: m.digest, mediaType: m.mediaType, validatedAt: now, ...(m.etag ? { etag: m.etag } : {}) }),
    );
    this.sendManifest(r, m);
    return SERVED;
  }
}

function pick(h: Readonly<Record<string, string>>, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) if (h[n] !== undefined) out[n] = h[n] as string;
  return out;
}
