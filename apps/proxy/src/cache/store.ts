/**
 * What the pull-through cache keeps, whatever holds it: objects (blobs and manifests) by
 * digest, the repositories each digest has been seen in (the cache serves a digest through a
 * repository only when the upstream has shown it there), and what each tag last resolved to.
 */

/** Random access to one stored object (or to one still being filled). */
export interface ObjectHandle {
  /** Reads up to `buffer.length` bytes at `position`; resolves to how many were read. */
  read(buffer: Buffer, position: number): Promise<number>;
  close(): Promise<void>;
}

/** A stored, complete object. */
export interface StoredObject {
  readonly size: number;
  /** Changes whenever the stored bytes could have changed (filesystem: inode, size, ctime); a verified stamp need not be hashed again. */
  readonly stamp: string;
  readonly handle: ObjectHandle;
}

/** An object being written: appended to, then committed under its digest or aborted (nothing left behind). */
export interface ObjectWriter {
  /** Appends a chunk; resolves once the store has it (readers of `openReader` can see it). */
  write(chunk: Buffer): Promise<void>;
  /** Appends several chunks in one go (one writev(2) where the store can); optional, `write` per chunk otherwise. */
  writev?(chunks: readonly Buffer[]): Promise<void>;
  /** A handle on the partly written object that stays valid after commit. */
  openReader(): Promise<ObjectHandle>;
  /** Publishes the object under its digest (the caller has verified it); resolves to its stamp. */
  commit(): Promise<string>;
  /** True where commit sends the whole object elsewhere (an upload): readers need not wait for it. */
  readonly uploadsOnCommit?: boolean;
  /** Removes whatever was written. */
  abort(): Promise<void>;
}

export type LinkKind = 'blob' | 'manifest';

/** What a tag resolved to, and when the upstream last confirmed it. */
export interface TagRecord {
  readonly digest: string;
  readonly mediaType: string;
  /** Milliseconds since the epoch. */
  readonly validatedAt: number;
  /** The upstream's ETag, sent back as If-None-Match. */
  readonly etag?: string;
}

/** A media type as it may go out as a Content-Type (type/subtype, parameters without control characters). */
export function isMediaType(s: string): boolean {
  return s.length <= 1024 && /^[\w.+-]+\/[\w.+-]+(?:\s*;[^\x00-\x1f\x7f]*)?$/.test(s);
}

/**
 * A tag record as a store gives it back, or undefined for anything damaged (a damaged record is
 * a miss). The ETag is sent upstream as If-None-Match, so it must be one header value of visible
 * characters, and the media type goes to clients as a Content-Type: a record that could end a
 * header line or carry another is refused here.
 */
export function parseTagRecord(text: string): TagRecord | undefined {
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof r !== 'object' || r === null) return undefined;
  const { digest, mediaType, validatedAt, etag } = r as Record<string, unknown>;
  if (typeof digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(digest)) return undefined;
  if (typeof mediaType !== 'string' || !isMediaType(mediaType) || typeof validatedAt !== 'number' || !Number.isFinite(validatedAt)) return undefined;
  if (etag !== undefined && (typeof etag !== 'string' || !/^[\x21-\x7e]{1,1024}$/.test(etag))) return undefined;
  return { digest, mediaType, validatedAt, ...(etag !== undefined ? { etag } : {}) };
}

/** One object in a listing. */
export interface ObjectInfo {
  readonly digest: string;
  readonly size: number;
  /** Milliseconds since the epoch. */
  readonly lastUsed: number;
}

export interface CacheStore {
  /** For logs: where the store is. */
  readonly description: string;
  /** Bytes held, as this process counts them. */
  readonly bytes: number;
  open(digest: string): Promise<StoredObject | undefined>;
  /** Starts writing an object; throws when the store cannot take it (unwritable, full). */
  create(digest: string, size: number | undefined): Promise<ObjectWriter>;
  remove(digest: string): Promise<void>;
  /** Says that an object was used just now (for least-recently-used eviction). */
  touch(digest: string): void;
  /** Keeps an object from eviction until the returned function is called. */
  pin(digest: string): () => void;

  /** The media type recorded with a manifest link ('' for a blob link), or undefined when the repository has not been seen with the digest. */
  link(upstream: string, repository: string, kind: LinkKind, digest: string): Promise<string | undefined>;
  addLink(upstream: string, repository: string, kind: LinkKind, digest: string, mediaType?: string): Promise<void>;

  tag(upstream: string, repository: string, tag: string, variant: string): Promise<TagRecord | undefined>;
  putTag(upstream: string, repository: string, tag: string, variant: string, record: TagRecord): Promise<void>;

  list(): AsyncIterable<ObjectInfo>;
  close(): Promise<void>;
}
