import { createHash } from 'node:crypto';
import type { UpstreamResponse } from '@registry-proxy/registry-core';

/** What RegistryStore lends its records: requests to the store registry (with its credentials), and its blob upload. */
export interface RecordsBackend {
  request(method: 'GET' | 'PUT', path: string, extra?: { headers?: Record<string, string>; body?: Buffer }): Promise<UpstreamResponse>;
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
  ) {}

  private tagOf(key: readonly string[]): string {
    return `rp-${createHash('sha256').update(JSON.stringify(key)).digest('hex')}`;
  }

  /** The value recorded under `key`, or undefined; throws when the store cannot answer. */
  async get(key: readonly string[]): Promise<string | undefined> {
    const r = await this.store.request('GET', `/v2/${this.repository}/manifests/${this.tagOf(key)}`, { headers: { accept: OCI_MANIFEST } });
    if (r.statusCode === 404) {
      await r.body.dump();
      return undefined;
    }
    if (r.statusCode !== 200) {
      await r.body.dump();
      throw new Error(`store registry answered ${r.statusCode} to a record GET`);
    }
    let doc: { annotations?: Record<string, unknown> };
    try {
      doc = JSON.parse((await r.body.bytes(MAX_RECORD_BYTES)).toString('utf8')) as typeof doc;
    } catch (err) {
      throw new Error(`store registry sent an unreadable record: ${(err as Error).message}`);
    }
    const raw = doc?.annotations?.[ANNOTATION];
    if (typeof raw !== 'string') return undefined;
    let rec: { key?: unknown; value?: unknown };
    try {
      rec = JSON.parse(raw) as typeof rec;
    } catch {
      return undefined;
    }
    return JSON.stringify(rec.key) === JSON.stringify(key) && typeof rec.value === 'string' ? rec.value : undefined;
  }

  /** Records `value` under `key` (replacing what was there). */
  async put(key: readonly string[], value: string): Promise<void> {
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: EMPTY_DIGEST, size: EMPTY.length },
        layers: [],
        annotations: { [ANNOTATION]: JSON.stringify({ key, value }) },
      }),
    );
    await this.pushEmpty();
    let r = await this.putManifest(this.tagOf(key), manifest);
    if (r.statusCode === 400) {
      // The empty blob went (garbage collection, a purge of the store) since this process pushed it.
      this.emptyPushed = undefined;
      await this.pushEmpty();
      r = await this.putManifest(this.tagOf(key), manifest);
    }
    if (r.statusCode !== 201) throw new Error(`store registry answered ${r.statusCode} to a record PUT`);
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
