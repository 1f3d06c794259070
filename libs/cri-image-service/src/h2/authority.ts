import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { encodeHeaders, HpackDecoder, type HeaderField } from './hpack.js';

/**
 * Why this exists: Go gRPC clients that dial a unix socket with a custom dialer (kubelet before
 * kubernetes/kubernetes#123463, crictl and critest of that era, many CSI sidecars) send the
 * socket path, e.g. `/run/registry-proxy/image-service.sock`, as the HTTP/2 `:authority`.
 * Node's HTTP/2 server is nghttp2 with its HTTP messaging checks on, which allow no "/" in an
 * authority: the stream is reset with PROTOCOL_ERROR before grpc-js sees it, and nothing is
 * logged. node:http2 has no option to turn that check off (nghttp2_option_set_no_http_messaging
 * is not exposed; `unknownProtocolTimeout` and the settings do not touch it), so the image
 * service puts this small rewriter between the unix socket and grpc-js (through grpc-js's
 * connection injector, no second socket).
 *
 * It reads the client's frames, decodes each header block with the client's HPACK state, and
 * passes the bytes through untouched until a block carries an authority nghttp2 would refuse.
 * From then on, every header block of that connection is written again as literals without
 * indexing (so nghttp2's dynamic table never depends on what the client indexed), with that
 * authority replaced by `localhost`, the value newer kubelets send. The authority means nothing
 * on a unix socket; nothing else in the request changes. Frames the server sends go back as they
 * are. Anything the rewriter cannot parse before it has changed a byte is left to nghttp2 to
 * judge (the connection becomes a plain pipe); after it has, the connection is closed.
 */

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const HEADERS = 0x1;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;
/** SETTINGS_MAX_FRAME_SIZE's initial value, which grpc-js's server keeps. */
const MAX_FRAME = 16_384;
/** A header block larger than this is not buffered (grpc-js accepts 16 KiB of headers by default). */
const MAX_BLOCK = 256 * 1024;
export const REPLACEMENT_AUTHORITY = 'localhost';

/** What nghttp2 accepts in :authority and host (nghttp2_check_authority). */
export function isValidAuthority(value: string): boolean {
  return /^[A-Za-z0-9\-._~!$&'()*+,;=:%@[\]]*$/.test(value);
}

interface PendingBlock {
  readonly streamId: number;
  readonly flags: number;
  readonly priority: Buffer | undefined;
  readonly frames: Buffer[];
  readonly fragments: Buffer[];
  size: number;
}

/** The client-to-server half: frames in, (possibly rewritten) frames out. */
export class AuthorityRewriter {
  private readonly hpack = new HpackDecoder();
  private buf: Buffer = Buffer.alloc(0);
  private prefaceSeen = false;
  private passthrough = false;
  private rewriting = false;
  private pending: PendingBlock | undefined;

  constructor(private readonly onRewrite: (authority: string) => void = () => undefined) {}

  /** Takes bytes from the client; returns the bytes to hand to the HTTP/2 server. */
  push(chunk: Buffer): Buffer[] {
    if (this.passthrough) return [chunk];
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    if (!this.prefaceSeen) {
      if (this.buf.length < PREFACE.length) return PREFACE.subarray(0, this.buf.length).equals(this.buf) ? out : this.giveUp(out);
      if (!this.buf.subarray(0, PREFACE.length).equals(PREFACE)) return this.giveUp(out);
      out.push(this.buf.subarray(0, PREFACE.length));
      this.buf = this.buf.subarray(PREFACE.length);
      this.prefaceSeen = true;
    }
    while (this.buf.length >= 9) {
      const length = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + length) break;
      const frame = this.buf.subarray(0, 9 + length);
      this.buf = this.buf.subarray(9 + length);
      this.frame(frame, out);
      if (this.passthrough) {
        if (this.buf.length) out.push(this.buf);
        this.buf = Buffer.alloc(0);
        break;
      }
    }
    return out;
  }

  private frame(frame: Buffer, out: Buffer[]): void {
    const type = frame[3] as number;
    const flags = frame[4] as number;
    const streamId = frame.readUInt32BE(5) & 0x7fffffff;
    const payload = frame.subarray(9);
    if (this.pending) {
      if (type !== CONTINUATION || streamId !== this.pending.streamId) {
        const frames = [...this.pending.frames, frame];
        this.pending = undefined;
        return void this.fail('a header block was interrupted', out, frames);
      }
      this.collect(this.pending, frame, payload);
      if (flags & END_HEADERS || this.pending.size > MAX_BLOCK) this.finish(out);
      return;
    }
    if (type !== HEADERS) return void out.push(frame);
    let at = 0;
    let padding = 0;
    if (flags & PADDED) {
      padding = payload[0] ?? 0;
      at = 1;
    }
    const priority = flags & PRIORITY ? payload.subarray(at, at + 5) : undefined;
    if (priority) at += 5;
    if (at + padding > payload.length) return void this.fail('a malformed HEADERS frame', out, [frame]);
    this.pending = { streamId, flags, priority, frames: [], fragments: [], size: 0 };
    this.collect(this.pending, frame, payload.subarray(at, payload.length - padding));
    if (flags & END_HEADERS) this.finish(out);
  }

  private collect(p: PendingBlock, frame: Buffer, fragment: Buffer): void {
    p.frames.push(frame);
    p.fragments.push(fragment);
    p.size += fragment.length;
  }

  private finish(out: Buffer[]): void {
    const p = this.pending as PendingBlock;
    this.pending = undefined;
    if (p.size > MAX_BLOCK) return void this.fail('a header block is too large', out, p.frames);
    let fields: HeaderField[];
    try {
      fields = this.hpack.decode(Buffer.concat(p.fragments));
    } catch (err) {
      return void this.fail((err as Error).message, out, p.frames);
    }
    const bad = fields.find((f) => (f.name === ':authority' || f.name === 'host') && !isValidAuthority(f.value));
    if (bad && !this.rewriting) {
      this.rewriting = true;
      this.onRewrite(bad.value);
    }
    if (!this.rewriting) return void out.push(...p.frames);
    const fixed = fields.map((f) => ((f.name === ':authority' || f.name === 'host') && !isValidAuthority(f.value) ? { ...f, value: REPLACEMENT_AUTHORITY } : f));
    out.push(...headerFrames(p, encodeHeaders(fixed)));
  }

  /** Before any rewrite the bytes are still the client's: hand them to nghttp2 as they are. */
  private fail(why: string, out: Buffer[], frames: Buffer[] = []): void {
    if (this.rewriting) throw new Error(`HTTP/2 authority rewriter: ${why}`);
    out.push(...frames);
    this.giveUp(out);
  }

  private giveUp(out: Buffer[]): Buffer[] {
    this.passthrough = true;
    for (const f of this.pending?.frames ?? []) out.push(f);
    this.pending = undefined;
    if (this.buf.length) out.push(this.buf);
    this.buf = Buffer.alloc(0);
    return out;
  }
}

/** A HEADERS frame (priority kept, padding dropped) and CONTINUATIONs for one header block. */
function headerFrames(p: PendingBlock, block: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  const first = p.priority ? Buffer.concat([p.priority, block]) : block;
  let rest = first;
  let type = HEADERS;
  let flags = (p.flags & (END_STREAM | PRIORITY)) as number;
  do {
    const part = rest.subarray(0, MAX_FRAME);
    rest = rest.subarray(part.length);
    const head = Buffer.alloc(9);
    head.writeUIntBE(part.length, 0, 3);
    head[3] = type;
    head[4] = flags | (rest.length === 0 ? END_HEADERS : 0);
    head.writeUInt32BE(p.streamId, 5);
    frames.push(head, part);
    type = CONTINUATION;
    flags = 0;
  } while (rest.length > 0);
  return frames;
}

/**
 * A client connection as grpc-js should see it: the client's bytes through an
 * {@link AuthorityRewriter}, the server's bytes straight to the socket.
 */
export class AuthorityFixingConnection extends Duplex {
  private readonly rewriter: AuthorityRewriter;

  constructor(
    private readonly socket: Socket,
    onRewrite?: (authority: string) => void,
    onError?: (err: Error) => void,
  ) {
    super({ allowHalfOpen: false });
    this.rewriter = new AuthorityRewriter(onRewrite);
    socket.on('data', (chunk: Buffer) => {
      let parts: Buffer[];
      try {
        parts = this.rewriter.push(chunk);
      } catch (err) {
        onError?.(err as Error);
        this.destroy();
        return;
      }
      for (const part of parts) if (!this.push(part)) socket.pause();
    });
    socket.once('end', () => this.push(null));
    // Never destroy this stream with an error: node:http2 wraps a non-net stream in a
    // JSStreamSocket, whose error path writes to the stream it is closing (Node 20 then dies on
    // an internal assertion). A client that hangs up is a plain close here.
    socket.on('error', (err) => {
      onError?.(err);
      this.destroy();
    });
    socket.once('close', () => this.destroy());
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }
}
