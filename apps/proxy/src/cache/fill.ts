import { createHash } from 'node:crypto';
import type { ResponseBody } from '@registry-proxy/registry-core';
import type { ObjectHandle, ObjectWriter } from './store.js';

/** How far reading the upstream may run ahead of the store's writes. */
const MAX_AHEAD = 8 << 20;

/** Why a fill failed: the store could not take the bytes, the upstream failed, or the bytes did not match the digest. */
export class FillError extends Error {
  constructor(
    readonly reason: 'store' | 'upstream' | 'digest',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'FillError';
  }
}

/**
 * One object being copied from the upstream into the store, verified as it streams in. Readers
 * (every request for the object meanwhile, the one that started it included) read the
 * temporary file as it grows; none gets the last byte before the digest has been checked, so a
 * bad object never reaches a client whole. The fill does not depend on any reader: a client
 * that leaves changes nothing for the others.
 */
export class Fill {
  size: number | undefined;
  private written = 0;
  private finished = false;
  private failure: FillError | undefined;
  private waiters: Array<() => void> = [];
  /** The committed object's stamp: verified by this fill. */
  stamp: string | undefined;
  readonly done: Promise<void>;

  constructor(
    readonly digest: string,
    size: number | undefined,
    private readonly writer: ObjectWriter,
    body: ResponseBody,
    onBytes: (n: number) => void,
  ) {
    this.size = size;
    this.done = this.run(body, onBytes);
    this.done.catch(() => undefined); // read through failed(); nobody has to await it
  }

  get failed(): FillError | undefined {
    return this.failure;
  }

  /** True until the fill has ended, either way. */
  get growing(): boolean {
    return !this.finished && this.failure === undefined;
  }

  /** Bytes a reader may send now. */
  available(): number {
    if (this.finished) return this.written;
    return this.size === undefined ? 0 : Math.min(this.written, this.size - 1);
  }

  /** Resolves when more is available or the fill has ended; rejects with the fill's failure. */
  async wait(): Promise<void> {
    if (!this.finished && !this.failure) await new Promise<void>((r) => this.waiters.push(r));
    if (this.failure) throw this.failure;
  }

  /** The object's size: at once when the upstream announced it, else when the fill completes. */
  async knownSize(): Promise<number> {
    while (this.size === undefined) await this.wait();
    return this.size;
  }

  openReader(): Promise<ObjectHandle> {
    return this.writer.openReader();
  }

  /** The whole object is verified: every reader may have every byte. */
  private finish(): void {
    this.size = this.written;
    this.finished = true;
    this.listener = undefined;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /**
   * Hands every chunk, as it arrives and before it is on disk, to `listener` (the request that
   * started the fill sends it straight from the upstream's buffers, and so spares a file read and
   * a copy). Only from the first byte: false when chunks have already gone by. The listener says
   * whether it wants more; it keeps a chunk past its call with `hold`, and gives it back with
   * `drop`.
   */
  tap(listener: (chunk: Buffer, offset: number) => boolean): boolean {
    if (this.received > 0 || !this.growing) return false;
    this.listener = listener;
    return true;
  }

  /** Keeps a chunk's memory from going back to the upstream's pool until `drop`. */
  hold(chunk: Buffer): void {
    this.holds.set(chunk, (this.holds.get(chunk) ?? 0) + 1);
  }

  drop(chunk: Buffer): void {
    const n = (this.holds.get(chunk) ?? 1) - 1;
    if (n > 0) this.holds.set(chunk, n);
    else {
      this.holds.delete(chunk);
      this.body?.release(chunk);
    }
  }

  private listener: ((chunk: Buffer, offset: number) => boolean) | undefined;
  private readonly holds = new Map<Buffer, number>();
  private body: ResponseBody | undefined;
  /** Bytes taken from the upstream (hashed); `written` trails it by what is on its way to the store. */
  private received = 0;
  private queue: Buffer[] = [];
  private queued = 0;
  private flushing: Promise<void> | undefined;
  private storeError: FillError | undefined;

  /**
   * Writes what has queued up while the previous write was in the kernel, in one call: the
   * upstream is read, hashed and sent on while the store writes, and writes are as large as the
   * store lets them become, with no copy to gather them.
   */
  private flush(onBytes: (n: number) => void): Promise<void> {
    if (!this.flushing) {
      const p: Promise<void> = this.drain(onBytes).finally(() => {
        if (this.flushing === p) this.flushing = undefined;
      });
      this.flushing = p;
    }
    return this.flushing;
  }

  private async drain(onBytes: (n: number) => void): Promise<void> {
    while (this.queue.length > 0 && !this.storeError) {
      const batch = this.queue;
      const bytes = this.queued;
      this.queue = [];
      this.queued = 0;
      try {
        if (this.writer.writev && batch.length > 1) await this.writer.writev(batch);
        else for (const c of batch) await this.writer.write(c);
      } catch (cause) {
        this.storeError = new FillError('store', `cache store write failed: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
        return;
      } finally {
        for (const c of batch) this.drop(c);
      }
      this.written += bytes;
      onBytes(bytes);
      this.wake();
    }
  }

  private async run(body: ResponseBody, onBytes: (n: number) => void): Promise<void> {
    const hash = createHash('sha256');
    this.body = body;
    try {
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          if (this.size !== undefined && this.received + chunk.length > this.size) throw new FillError('upstream', 'upstream sent more bytes than its Content-Length');
          hash.update(chunk);
          const offset = this.received;
          this.received += chunk.length;
          if (this.listener && !this.listener(chunk, offset)) this.listener = undefined;
          this.hold(chunk);
          this.queue.push(chunk);
          this.queued += chunk.length;
          const flushing = this.flush(onBytes);
          // Reading runs ahead of the store by at most this much; then the upstream waits.
          if (this.received - this.written >= MAX_AHEAD) await flushing;
          if (this.storeError) throw this.storeError;
        }
        while (this.flushing) await this.flushing;
        if (this.storeError) throw this.storeError;
      } catch (err) {
        if (err instanceof FillError) throw err;
        throw new FillError('upstream', `upstream body failed: ${(err as Error).message}`, { cause: err });
      }
      if (this.size !== undefined && this.written !== this.size) throw new FillError('upstream', `upstream sent ${this.written} of ${this.size} bytes`);
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== this.digest) throw new FillError('digest', `upstream sent bytes with digest ${got} for ${this.digest}`);
      // Verified and whole in the spool file. Where the commit is an upload of the whole object
      // (the registry store), readers may send the last byte now rather than wait for it: a
      // commit that fails after this costs only the store its copy (readers keep reading their
      // open handles), and `done` still waits for it. Elsewhere (a rename) the object is stored
      // before its last byte goes out.
      if (this.writer.uploadsOnCommit) this.finish();
      try {
        this.stamp = await this.writer.commit();
      } catch (cause) {
        throw new FillError('store', `cache store commit failed: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
      }
      if (!this.finished) this.finish();
    } catch (err) {
      this.listener = undefined;
      body.destroy();
      // A write still in the kernel finishes before the file goes.
      while (this.flushing) await this.flushing.catch(() => undefined);
      // Readers learn of the failure only once the temporary file is gone.
      await this.writer.abort().catch(() => undefined);
      this.failure = err as FillError;
      this.wake();
      throw err;
    }
  }
}
