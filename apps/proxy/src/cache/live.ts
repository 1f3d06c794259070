import type { ServerResponse } from 'node:http';
import type { Fill } from './fill.js';

/** How much may wait in memory for a slow client before it goes over to reading the file. */
const MAX_BUFFERED = 4 << 20;

/**
 * The request that started a fill, sent its bytes straight from the upstream's buffers as they
 * arrive (hashed, and on their way to the store), rather than read back from the temporary
 * file: that read and its copy were a third of a cold pull's CPU. It keeps up or it drops out:
 * once the client falls behind (more than MAX_BUFFERED waits for it), or when the last chunk comes (the
 * last byte waits for the digest), it stops taking chunks and the caller goes on from the file
 * at `sent()`, as every other reader of a fill does. The fill never waits for this client.
 */
export class LiveSend {
  private pos = 0;
  private stopped = false;

  private constructor(
    private readonly res: ServerResponse,
    private readonly fill: Fill,
    private readonly size: number,
  ) {}

  /** Starts taking the fill's chunks; undefined when the fill is already past its first byte. */
  static start(res: ServerResponse, fill: Fill, size: number): LiveSend | undefined {
    const live = new LiveSend(res, fill, size);
    return fill.tap((chunk, offset) => live.take(chunk, offset)) ? live : undefined;
  }

  /** Bytes sent so far, from the start of the object. */
  sent(): number {
    return this.pos;
  }

  /** Resolves once the live send has stopped (or the fill has ended: then `sent()` says how far it got). */
  async done(): Promise<void> {
    while (!this.stopped && this.fill.growing) await this.fill.wait().catch(() => undefined);
    this.stop();
  }

  private stop(): void {
    this.stopped = true;
  }

  private take(chunk: Buffer, offset: number): boolean {
    if (this.stopped || offset !== this.pos || this.res.destroyed) return this.quit();
    // The object's last byte goes out only after the digest has been checked: from the file.
    if (offset + chunk.length >= this.size) return this.quit();
    this.fill.hold(chunk);
    this.pos += chunk.length;
    const ok = this.res.write(chunk, () => this.fill.drop(chunk));
    // `write` says false past the socket's 16 KiB high-water mark, which every big chunk
    // passes: what counts is how much is waiting in memory for this client.
    return ok || this.res.writableLength <= MAX_BUFFERED || this.quit();
  }

  private quit(): false {
    this.stop();
    return false;
  }
}
