import { createHash } from 'node:crypto';
import type { ResponseBody } from '@registry-proxy/registry-core';
import type { ObjectHandle, ObjectWriter } from './store.js';

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

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async run(body: ResponseBody, onBytes: (n: number) => void): Promise<void> {
    const hash = createHash('sha256');
    try {
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          if (this.size !== undefined && this.written + chunk.length > this.size) throw new FillError('upstream', 'upstream sent more bytes than its Content-Length');
          hash.update(chunk);
          try {
            await this.writer.write(chunk);
          } catch (cause) {
            throw new FillError('store', `cache store write failed: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
          }
          body.release(chunk);
          this.written += chunk.length;
          onBytes(chunk.length);
          this.wake();
        }
      } catch (err) {
        if (err instanceof FillError) throw err;
        throw new FillError('upstream', `upstream body failed: ${(err as Error).message}`, { cause: err });
      }
      if (this.size !== undefined && this.written !== this.size) throw new FillError('upstream', `upstream sent ${this.written} of ${this.size} bytes`);
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== this.digest) throw new FillError('digest', `upstream sent bytes with digest ${got} for ${this.digest}`);
      try {
        this.stamp = await this.writer.commit();
      } catch (cause) {
        throw new FillError('store', `cache store commit failed: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
      }
      this.size = this.written;
      this.finished = true;
      this.wake();
    } catch (err) {
      body.destroy();
      // Readers learn of the failure only once the temporary file is gone.
      await this.writer.abort().catch(() => undefined);
      this.failure = err as FillError;
      this.wake();
      throw err;
    }
  }
}
