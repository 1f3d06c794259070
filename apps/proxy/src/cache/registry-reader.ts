import type { ResponseBody, UpstreamResponse } from '@registry-proxy/registry-core';
import type { ObjectHandle } from './store.js';

/**
 * Reads one object of the registry store the way its callers read a file: in order, 1 MiB at a
 * time. Reads that follow each other share one ranged GET that runs to the end of the object
 * and is read on as they ask, rather than one GET each: a 512 MiB hit was 512 requests (each
 * with the store's auth check) and as many chances to meet a store that is slow to answer under
 * load. A read anywhere else (a client's Range), or after the stream failed (a slow client left
 * it idle past the store client's body timeout), starts a new GET there, once.
 */
export class StoreReader implements ObjectHandle {
  private body: ResponseBody | undefined;
  private chunks: AsyncIterator<Buffer> | undefined;
  /** A chunk the last read did not use up, and where its unread part starts. */
  private pending: { chunk: Buffer; from: number } | undefined;
  /** The object offset of the stream's next byte. */
  private at = 0;

  constructor(
    private readonly size: number,
    private readonly get: (range: string) => Promise<UpstreamResponse>,
  ) {}

  async read(buffer: Buffer, position: number): Promise<number> {
    if (position >= this.size || buffer.length === 0) return 0;
    const fresh = !(this.body && this.at === position);
    if (fresh) await this.start(position);
    try {
      return await this.take(buffer);
    } catch (err) {
      if (fresh) throw err;
      await this.start(position);
      return this.take(buffer);
    }
  }

  async close(): Promise<void> {
    this.drop();
  }

  private async start(position: number): Promise<void> {
    this.drop();
    const g = await this.get(`bytes=${position}-${this.size - 1}`);
    if (g.statusCode !== 206 && g.statusCode !== 200) {
      await g.body.dump();
      throw new Error(`store registry answered ${g.statusCode} to a blob GET`);
    }
    const range = /^bytes (\d+)-/.exec(String(g.headers['content-range'] ?? ''));
    if (g.statusCode === 206 && Number(range?.[1]) !== position) {
      g.body.destroy();
      throw new Error(`store registry answered a range at ${range?.[1] ?? '?'} for one at ${position}`);
    }
    this.body = g.body;
    this.chunks = (g.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    // A registry that ignores Range sends it all (200): skip to the position.
    this.at = g.statusCode === 200 ? 0 : position;
    while (this.at < position) {
      const r = await this.next();
      if (!r) throw new Error('store registry sent less than the object');
      const skip = Math.min(position - this.at, r.length);
      this.at += skip;
      if (skip < r.length) this.pending = { chunk: r, from: skip };
      else this.body.release(r);
    }
  }

  private async next(): Promise<Buffer | undefined> {
    const r = await (this.chunks as AsyncIterator<Buffer>).next();
    return r.done ? undefined : r.value;
  }

  /** Fills `buffer` from the stream; returns what it got before the stream ended or failed (throws only when that is nothing). */
  private async take(buffer: Buffer): Promise<number> {
    let n = 0;
    while (n < buffer.length) {
      if (!this.pending) {
        let chunk: Buffer | undefined;
        try {
          chunk = await this.next();
        } catch (err) {
          this.drop();
          if (n > 0) return n;
          throw err;
        }
        if (!chunk) {
          this.drop();
          break;
        }
        this.pending = { chunk, from: 0 };
      }
      const { chunk, from } = this.pending;
      const k = Math.min(chunk.length - from, buffer.length - n);
      chunk.copy(buffer, n, from, from + k);
      n += k;
      this.at += k;
      if (from + k < chunk.length) this.pending.from = from + k;
      else {
        this.pending = undefined;
        this.body?.release(chunk);
      }
    }
    return n;
  }

  private drop(): void {
    if (this.pending) this.body?.release(this.pending.chunk);
    this.pending = undefined;
    this.body?.destroy();
    this.body = undefined;
    this.chunks = undefined;
  }
}
