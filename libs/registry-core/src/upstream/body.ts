import { Readable } from 'node:stream';

/**
 * A response body as a Readable stream of Buffers, with two helpers: `text()` reads it whole
 * (bounded), `dump()` discards it (cheaply: a large or unknown remainder closes the connection
 * instead of being read).
 */
export class ResponseBody extends Readable {
  /** True once the connection has pushed all of the body (HEAD and empty bodies from the start). */
  complete = false;
  /** Set by the connection: release the body without reading it. */
  discard: () => void = () => this.destroy();
  private resumeSource: () => void = () => undefined;

  constructor(highWaterMark = 1 << 20) {
    super({ highWaterMark });
    // A body can fail before anyone reads it (a protocol error in the packet that carried the
    // headers). Readers still see the error (for-await rejects, `errored` is set); an unread
    // body must not take the process down with an unhandled 'error'.
    this.on('error', () => undefined);
  }

  /** Called by the connection; `resume` restarts a paused socket when the reader wants more. */
  bind(resume: () => void): void {
    this.resumeSource = resume;
  }

  override _read(): void {
    this.resumeSource();
  }

  /** Reads the whole body as UTF-8, refusing more than `limit` bytes. */
  async text(limit = 16 << 20): Promise<string> {
    return (await this.bytes(limit)).toString('utf8');
  }

  /** Reads the whole body into one Buffer of its own, refusing more than `limit` bytes (BodyTooLargeError). */
  async bytes(limit = 16 << 20): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of this as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > limit) {
        this.destroy();
        throw new BodyTooLargeError(limit);
      }
      chunks.push(c);
    }
    const whole = Buffer.concat(chunks, size);
    for (const c of chunks) this.release(c);
    return whole;
  }

  /**
   * Says that every byte of `chunk` (one chunk this stream produced) has been used, so its
   * memory can be reused for later reads. Optional: unreleased chunks are garbage collected.
   */
  release(chunk: Buffer): void {
    this.releaser(chunk);
  }
  /** Set by the transport. */
  releaser: (chunk: Buffer) => void = () => undefined;

  /** Discards the body. */
  async dump(): Promise<void> {
    if (this.readableEnded || this.destroyed) return;
    if (this.complete) this.resume();
    else this.discard();
  }
}

/** A body was longer than the reader's limit. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`response body larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const QUOTED = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*"';
/** chunk-size and chunk-ext (RFC 9112 7.1.1): extensions are checked, since they are skipped unread. */
// No whitespace inside (RFC 9112 allows BWS; llhttp refuses it after ";", found by the fuzzer).
const CHUNK_SIZE = new RegExp(`^([0-9a-fA-F]{1,15})((?:;${TOKEN}(?:=(?:${TOKEN}|${QUOTED}))?)*)$`);
/** A trailer field line, checked as a header line is (and then dropped). */
const TRAILER = new RegExp(`^${TOKEN}:[\\t\\x20-\\x7e\\x80-\\xff]*$`);

/** Decodes `Transfer-Encoding: chunked` (RFC 9112 section 7.1); trailers are read and dropped. */
export class ChunkedDecoder {
  private state: 'size' | 'data' | 'data-crlf' | 'trailer' | 'done' = 'size';
  private line = '';
  private remaining = 0;

  get done(): boolean {
    return this.state === 'done';
  }

  /** Feeds bytes; calls `emit` with body data (views into `input`); returns bytes after the end. */
  push(input: Buffer, emit: (data: Buffer) => void): Buffer | undefined {
    let i = 0;
    while (i < input.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.remaining, input.length - i);
        emit(input.subarray(i, i + n));
        i += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = 'data-crlf';
        continue;
      }
      const nl = input.indexOf(10, i);
      const end = nl < 0 ? input.length : nl;
      this.line += input.toString('latin1', i, end);
      if (this.line.length > 4096) throw new Error('chunk header line too long');
      i = end;
      if (nl < 0) break;
      i++;
      // Lines end in CRLF, never a bare LF: a reader that takes either can be made to frame
      // the body differently from one that does not (chunk smuggling).
      if (!this.line.endsWith('\r')) throw new Error('chunk line not ended by CRLF');
      const line = this.line.slice(0, -1);
      this.line = '';
      if (this.state === 'data-crlf') {
        if (line !== '') throw new Error('missing CRLF after chunk data');
        this.state = 'size';
      } else if (this.state === 'size') {
        const m = CHUNK_SIZE.exec(line);
        if (!m) throw new Error(/^[0-9a-fA-F]{1,15}[ \t]*;/.test(line) ? 'invalid chunk extension' : 'invalid chunk size');
        this.remaining = parseInt(m[1] as string, 16);
        this.state = this.remaining === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        this.state = 'done';
      } else if (!TRAILER.test(line)) {
        throw new Error('invalid trailer field');
      }
    }
    return i < input.length ? input.subarray(i) : undefined;
  }
}
