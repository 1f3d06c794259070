import { open, rm, type FileHandle } from 'node:fs/promises';
import type { ObjectHandle } from './store.js';

/** Random reads through an open file: how both stores hand out stored and in-progress objects. */
export function fileHandle(fh: FileHandle): ObjectHandle {
  return {
    read: async (buffer, position) => (await fh.read(buffer, 0, buffer.length, position)).bytesRead,
    close: () => fh.close(),
  };
}

/**
 * The file a fill writes to before it is committed: the filesystem store renames it into place,
 * the registry store uploads it and removes it. Created exclusively (`wx`: two fills never share
 * one); short writes are written on from where they stopped.
 */
export class SpoolFile {
  private closed = false;
  /** Bytes appended so far. */
  written = 0;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  static async create(path: string): Promise<SpoolFile> {
    return new SpoolFile(path, await open(path, 'wx'));
  }

  async write(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) off += (await this.fh.write(chunk, off, chunk.length - off)).bytesWritten;
    this.written += chunk.length;
  }

  async writev(chunks: readonly Buffer[]): Promise<void> {
    const rest = chunks.slice();
    while (rest.length > 0) {
      let n = (await this.fh.writev(rest)).bytesWritten;
      this.written += n;
      // A short writev (a signal, a full pipe of the kernel's): go on from where it stopped.
      while (rest.length > 0 && n >= (rest[0] as Buffer).length) n -= (rest.shift() as Buffer).length;
      if (n > 0) rest[0] = (rest[0] as Buffer).subarray(n);
    }
  }

  /** A handle of its own on the file, valid after a rename and after the file is removed. */
  async openReader(): Promise<ObjectHandle> {
    return fileHandle(await open(this.path, 'r'));
  }

  /** Closes the writing handle, once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }

  /** Closes and removes the file (readers that have it open keep reading). */
  async discard(): Promise<void> {
    await this.close().catch(() => undefined);
    await rm(this.path, { force: true });
  }
}
