import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat, statfs, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { sweepAbandoned } from './abandoned.js';
import { Quota } from './lru.js';
import { fileHandle, SpoolFile } from './spool-file.js';
import { isMediaType, parseTagRecord, type CacheStore, type LinkKind, type ObjectInfo, type ObjectWriter, type StoredObject, type TagRecord } from './store.js';

const DIGEST = /^sha256:([a-f0-9]{64})$/;

export class ObjectTooLargeError extends Error {
  constructor(size: number, max: number) {
    super(`object of ${size} bytes does not fit a cache of ${max} bytes`);
    this.name = 'ObjectTooLargeError';
  }
}

function hexOf(digest: string): string {
  const m = DIGEST.exec(digest);
  if (!m) throw new Error(`not a sha256 digest: ${digest}`);
  return m[1] as string;
}

const stampOf = (s: { ino: number; size: number; ctimeMs: number }) => `${s.ino}:${s.size}:${s.ctimeMs}`;

/**
 * A cache directory, content-addressed like distribution's storage:
 *   blobs/sha256/ab/abcd...                                   the bytes of blobs and manifests
 *   repositories/<upstream>/<repo>/_blobs/sha256/<hex>        empty: the repository has this blob
 *   repositories/<upstream>/<repo>/_manifests/sha256/<hex>    the manifest's media type
 *   repositories/<upstream>/<repo>/_tags/<tag>/<variant>.json what the tag resolved to
 *   tmp/                                                      fills in progress
 * Every file appears by rename(2), so replicas sharing the volume never see a partial one. The
 * quota and last-used times are kept per process, seeded at start from the files' mtimes (when
 * they were filled): after a restart the least recently filled go first.
 */
export class FilesystemStore implements CacheStore {
  readonly description: string;
  private readonly quota: Quota;
  /** Set when the directory could not be prepared at start. */
  openError: Error | undefined;

  private constructor(
    readonly root: string,
    maxBytes: number,
    private readonly onEvict: (digest: string, size: number) => void,
  ) {
    this.description = `filesystem:${root}`;
    this.quota = new Quota(maxBytes);
  }

  /** Opens (creating) the directory and indexes what it holds; old abandoned temporary files are removed. */
  static async open(root: string, maxBytes: number, onEvict: (digest: string, size: number) => void = () => undefined): Promise<FilesystemStore> {
    const s = new FilesystemStore(root, maxBytes, onEvict);
    try {
      await mkdir(join(root, 'tmp'), { recursive: true });
      await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
    } catch (err) {
      // An unwritable store must not stop the proxy: pulls are relayed, and the failures counted.
      s.openError = err as Error;
    }
    for await (const o of s.scan()) s.quota.set(o.digest, o.size, o.lastUsed);
    await sweepAbandoned(join(root, 'tmp'));
    return s;
  }

  get bytes(): number {
    return this.quota.bytes;
  }

  objectPath(digest: string): string {
    const hex = hexOf(digest);
    return join(this.root, 'blobs', 'sha256', hex.slice(0, 2), hex);
  }

  private repoDir(upstream: string, repository: string): string {
    return join(this.root, 'repositories', upstream, repository);
  }

  private linkPath(upstream: string, repository: string, kind: LinkKind, digest: string): string {
    return join(this.repoDir(upstream, repository), kind === 'blob' ? '_blobs' : '_manifests', 'sha256', hexOf(digest));
  }

  private tagPath(upstream: string, repository: string, tag: string, variant: string): string {
    return join(this.repoDir(upstream, repository), '_tags', tag, `${variant}.json`);
  }

  private tmpPath(hint: string): string {
    return join(this.root, 'tmp', `${hint}.${process.pid}.${randomBytes(6).toString('hex')}`);
  }

  /** Writes a small file whole, by rename. */
  private async writeSmall(path: string, data: string): Promise<void> {
    const tmp = this.tmpPath('meta');
    try {
      await writeFile(tmp, data);
      await mkdir(dirname(path), { recursive: true });
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async open(digest: string): Promise<StoredObject | undefined> {
    const path = this.objectPath(digest);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.quota.delete(digest);
        return undefined;
      }
      throw err;
    }
    const st = await fh.stat();
    // Another replica may have filled it: count it from now on.
    if (!this.quota.has(digest)) this.quota.set(digest, st.size, st.mtimeMs);
    return { size: st.size, stamp: stampOf(st), handle: fileHandle(fh) };
  }

  async create(digest: string, size: number | undefined): Promise<ObjectWriter> {
    const hex = hexOf(digest);
    if (size !== undefined) {
      if (size > this.quota.maxBytes) throw new ObjectTooLargeError(size, this.quota.maxBytes);
      await this.evict(size);
      // A disk that cannot take the object is found out now, before any client depends on the fill.
      const fs = await statfs(this.root);
      if (fs.bavail * fs.bsize < size + (1 << 20)) throw Object.assign(new Error(`no space for ${size} bytes in ${this.root}`), { code: 'ENOSPC' });
    }
    const spool = await SpoolFile.create(this.tmpPath(hex));
    return {
      write: (chunk) => spool.write(chunk),
      writev: (chunks) => spool.writev(chunks),
      openReader: () => spool.openReader(),
      commit: async () => {
        await spool.close();
        const path = this.objectPath(digest);
        await mkdir(dirname(path), { recursive: true });
        await rename(spool.path, path);
        this.quota.set(digest, spool.written);
        await this.evict(0);
        return stampOf(await stat(path));
      },
      abort: () => spool.discard(),
    };
  }

  /** Removes least recently used objects until `incoming` more bytes fit. */
  private async evict(incoming: number): Promise<void> {
    for (const digest of this.quota.victims(incoming)) {
      const size = this.quota.size(digest);
      await this.remove(digest);
      this.onEvict(digest, size);
    }
  }

  async remove(digest: string): Promise<void> {
    this.quota.delete(digest);
    // Readers that have the file open keep reading it (POSIX): removal never cuts a transfer.
    await unlink(this.objectPath(digest)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  touch(digest: string): void {
    // In memory only: writing the time to the file (utimes) would move its ctime, which is what
    // tells the cache that a file may have changed and must be hashed again.
    this.quota.touch(digest);
  }

  pin(digest: string): () => void {
    return this.quota.pin(digest);
  }

  async link(upstream: string, repository: string, kind: LinkKind, digest: string): Promise<string | undefined> {
    let found: string;
    try {
      found = await readFile(this.linkPath(upstream, repository, kind, digest), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    // A manifest link's value becomes a Content-Type: a damaged file is a miss, not a header.
    return kind === 'blob' || isMediaType(found) ? found : undefined;
  }

  async addLink(upstream: string, repository: string, kind: LinkKind, digest: string, mediaType = ''): Promise<void> {
    const path = this.linkPath(upstream, repository, kind, digest);
    if (kind === 'blob' && (await stat(path).catch(() => undefined))) return;
    await this.writeSmall(path, mediaType);
  }

  async tag(upstream: string, repository: string, tag: string, variant: string): Promise<TagRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.tagPath(upstream, repository, tag, variant), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return parseTagRecord(text);
  }

  async putTag(upstream: string, repository: string, tag: string, variant: string, record: TagRecord): Promise<void> {
    await this.writeSmall(this.tagPath(upstream, repository, tag, variant), JSON.stringify(record));
  }

  async *list(): AsyncIterable<ObjectInfo> {
    yield* this.scan();
  }

  private async *scan(): AsyncIterable<ObjectInfo> {
    const base = join(this.root, 'blobs', 'sha256');
    for (const prefix of await readdir(base).catch(() => [] as string[])) {
      for (const hex of await readdir(join(base, prefix)).catch(() => [] as string[])) {
        if (!/^[a-f0-9]{64}$/.test(hex)) continue;
        const st = await stat(join(base, prefix, hex)).catch(() => undefined);
        if (st?.isFile()) yield { digest: `sha256:${hex}`, size: st.size, lastUsed: st.mtimeMs };
      }
    }
  }

  async close(): Promise<void> {
    // Nothing held open: every handle belongs to a transfer and is closed by it.
  }
}
