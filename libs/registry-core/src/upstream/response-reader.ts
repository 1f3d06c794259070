import { ChunkedDecoder } from './body.js';
import { parseHead, ProtocolError, type ResponseHead } from './head.js';

const MAX_HEAD = 64 * 1024;
/** Interim (1xx) responses accepted before the final one; more is a storm meant to hold the connection. */
const MAX_INTERIM = 16;

/** The body framing while it is read (head.ts decides it). */
type BodyFraming = { kind: 'none' } | { kind: 'length'; remaining: number } | { kind: 'chunked'; decoder: ChunkedDecoder } | { kind: 'close' };
const NONE: BodyFraming = { kind: 'none' };

/**
 * Reads one HTTP/1.1 response at a time off a connection's bytes: gathers the head (bounded),
 * skips interim 1xx responses (bounded), parses the final head (head.ts), then frames the body by
 * Content-Length, chunked coding or the connection's close. No sockets, timers or buffers of its
 * own: the connection feeds it and acts on its answers, so framing is decided in this one place.
 */
export class ResponseReader {
  private head: Buffer[] = [];
  private headLen = 0;
  private interim = 0;
  private method = 'GET';
  private framing: BodyFraming = NONE;
  private reusable = true;

  /** Starts reading the response to a request sent with `method`. */
  begin(method: string): void {
    this.method = method;
    this.interim = 0;
    this.head = [];
    this.headLen = 0;
  }

  /**
   * Takes bytes of the head; `chunk` is copied (the connection reads heads into a buffer it
   * reuses). Returns the final head and the bytes after it once it is complete, `undefined`
   * while more is needed. Throws ProtocolError.
   */
  readHead(chunk: Buffer): { head: ResponseHead; rest: Buffer } | undefined {
    let all = Buffer.from(chunk);
    this.head.push(all);
    this.headLen += all.length;
    if (this.head.length > 1) all = Buffer.concat(this.head, this.headLen);
    for (;;) {
      const end = all.indexOf('\r\n\r\n');
      if (end < 0 ? this.headLen > MAX_HEAD : end > MAX_HEAD) throw new ProtocolError('response headers too large');
      if (end < 0) {
        this.head = [all];
        return undefined;
      }
      const rest = all.subarray(end + 4);
      this.head = [];
      this.headLen = 0;
      const head = parseHead(all.toString('latin1', 0, end), this.method);
      if (head) {
        this.reusable = head.keepAlive;
        const f = head.framing;
        this.framing = f.kind === 'length' ? { kind: 'length', remaining: f.length } : f.kind === 'chunked' ? { kind: 'chunked', decoder: new ChunkedDecoder() } : f;
        // Bytes after a bodiless response belong to no request we made: the connection cannot
        // be trusted to hold only what we ask for next.
        if (f.kind === 'none' && rest.length > 0) this.reusable = false;
        return { head, rest };
      }
      // An interim response: the real one follows, maybe in the same read.
      if (++this.interim > MAX_INTERIM) throw new ProtocolError('too many interim responses');
      if (rest.length === 0) return undefined;
      all = rest;
      this.head = [rest];
      this.headLen = rest.length;
    }
  }

  /** Body bytes still expected: 0 without a body, Infinity when the end is not known in advance. */
  get remaining(): number {
    const f = this.framing;
    return f.kind === 'length' ? f.remaining : f.kind === 'none' ? 0 : Infinity;
  }

  /** The body ends when the upstream closes the connection. */
  get closeDelimited(): boolean {
    return this.framing.kind === 'close';
  }

  /** The connection may carry another exchange after this response, as far as its framing goes. */
  get keepAlive(): boolean {
    return this.reusable;
  }

  /**
   * Frames body bytes: hands each piece of body data to `emit` (views into `chunk`) and returns
   * true once the body is complete. Throws ProtocolError for a broken chunked body.
   */
  readBody(chunk: Buffer, emit: (data: Buffer) => void): boolean {
    const f = this.framing;
    if (f.kind === 'length') {
      const take = Math.min(f.remaining, chunk.length);
      emit(chunk.subarray(0, take));
      f.remaining -= take;
      if (take < chunk.length) this.reusable = false; // the server sent more than it announced
      return f.remaining === 0;
    }
    if (f.kind === 'chunked') {
      let rest: Buffer | undefined;
      try {
        rest = f.decoder.push(chunk, emit);
      } catch (e) {
        throw new ProtocolError((e as Error).message);
      }
      // Bytes after the last chunk belong to no request we made.
      if (rest) this.reusable = false;
      return f.decoder.done;
    }
    emit(chunk);
    return false;
  }

  /** The response is over (its body complete, or it had none). */
  end(): void {
    this.framing = NONE;
  }
}
