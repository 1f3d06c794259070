import { connect as netConnect, isIP, type NetConnectOpts, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Readable } from 'node:stream';
import { ChunkedDecoder, ResponseBody } from './body.js';
import { BIG_READ, releaseChunk, takeBig } from './buffer-pool.js';
import { NoResponseError } from './errors.js';
import { parseHead, ProtocolError } from './head.js';
import { proxyAddress, proxyAuthorization } from './outbound-proxy.js';
import type { Http1Request, Http1Response, Http1TransportOptions } from './http1.js';

/** Reads of headers and small bodies land here and are copied out; one buffer serves every socket. */
const SHARED_SMALL = Buffer.allocUnsafeSlow(64 * 1024);
const MAX_HEAD = 64 * 1024;
const COPY_BELOW = BIG_READ / 4;
/** Interim (1xx) responses accepted before the final one; more is a storm meant to hold the connection. */
const MAX_INTERIM = 16;
/** Request bodies (pushes) are written in the client's 64 KiB reads; a larger write buffer pauses the client less often. */
const WRITE_HWM = 1 << 20;

function timeoutError(message: string): Error {
  const e = new Error(message);
  e.name = 'TimeoutError';
  (e as NodeJS.ErrnoException).code = 'ETIMEDOUT';
  return e;
}

/** The body framing while it is read (head.ts decides it). */
type Framing = { kind: 'none' } | { kind: 'length'; remaining: number } | { kind: 'chunked'; decoder: ChunkedDecoder } | { kind: 'close' };

interface Pending {
  readonly req: Http1Request;
  resolve(r: Http1Response): void;
  reject(e: Error): void;
}

/**
 * One keep-alive HTTP/1.1 connection. Bodies of large blobs are read straight into fresh 1 MiB
 * buffers that are handed on without copying (Node's `onread`), which is what keeps the relay's
 * CPU per GiB near a bare TCP relay's; headers and small bodies go through one shared buffer.
 */
export class Connection {
  readonly socket: Socket;
  reused = false;
  gotBytes = false;
  private head: Buffer[] = [];
  private headLen = 0;
  private pending: Pending | undefined;
  private body: ResponseBody | undefined;
  private framing: Framing = { kind: 'none' };
  private keepAlive = true;
  private fresh = false;
  private spare: Buffer | undefined;
  /** Interim responses seen for the current request. */
  private interim = 0;
  /** Why the body failed while the head's packet was being read. */
  private broken: Error | undefined;
  private headersTimer: NodeJS.Timeout | undefined;
  private abortListener: (() => void) | undefined;
  private signal: AbortSignal | undefined;
  /** Stops a request body still being sent; set while one is. */
  private bodyPump: (() => void) | undefined;
  private aborted = false;
  /** Set by the pool while the connection waits in it; cleared when it is taken for a request. */
  idleTimer: NodeJS.Timeout | undefined;
  /** Set by the pool: called once per exchange when the connection is free again (or dead). */
  onRelease: (reusable: boolean) => void = () => undefined;
  keepAliveHintMs: number | undefined;

  /** Through an HTTP proxy (plain http upstream): the request target in absolute form, and the proxy's credentials. */
  private readonly forward: { readonly prefix: string; readonly auth: string | undefined } | undefined;

  /**
   * Opens a connection to `url`'s origin: directly (to `connectTo` if given), through an HTTP
   * proxy (`via.proxy`, plain http only), or with TLS over a CONNECT tunnel (`via.tunnel`).
   */
  constructor(url: URL, connectTo: string | undefined, connectTimeoutMs: number, ca: Http1TransportOptions['ca'], onConnectError: (e: Error) => void, via?: { proxy: URL } | { tunnel: Socket }) {
    const onread = {
      buffer: () => this.nextBuffer(),
      callback: (n: number, buf: Uint8Array) => {
        this.onData(Buffer.from(buf.buffer, buf.byteOffset, n));
        return true; // pausing is done explicitly, on the body's backpressure
      },
    };
    const name = url.hostname.replace(/^\[|\]$/g, '');
    const host = connectTo ?? name;
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const tls = { servername: isIP(name) ? undefined : name, ALPNProtocols: ['http/1.1'], ...(ca ? { ca: ca as string | Buffer | Array<string | Buffer> } : {}) };
    if (via && 'tunnel' in via) {
      // tls.connect over an existing socket ignores onread: this path reads through 'data'
      // events, whose buffers are the connection's own to hand on (no zero-copy pool here).
      this.socket = tlsConnect({ socket: via.tunnel, ...tls });
      this.socket.on('data', (chunk: Buffer) => {
        this.fresh = true;
        this.onData(chunk);
      });
    } else if (via) {
      this.forward = { prefix: `${url.protocol}//${connectTo === undefined ? url.host : `${isIP(connectTo) === 6 ? `[${connectTo}]` : connectTo}:${port}`}`, auth: proxyAuthorization(via.proxy) };
      this.socket = netConnect({ ...proxyAddress(via.proxy), onread, writableHighWaterMark: WRITE_HWM } as NetConnectOpts);
    } else {
      this.socket =
        url.protocol === 'https:'
          ? // tls.connect takes net's onread option (documented), but @types/node does not list it.
            tlsConnect({ host, port, ...tls, onread, writableHighWaterMark: WRITE_HWM } as ConnectionOptions)
          : netConnect({ host, port, onread, writableHighWaterMark: WRITE_HWM } as NetConnectOpts);
    }
    this.socket.setNoDelay(true);
    const connectTimer = setTimeout(() => this.socket.destroy(timeoutError(`connect to ${url.host} timed out`)), connectTimeoutMs);
    this.socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
    this.socket.on('error', (e) => {
      clearTimeout(connectTimer);
      if (!this.pending && !this.body) onConnectError(e);
      this.fail(e);
    });
    this.socket.on('end', () => this.onEnd());
    this.socket.on('close', () => {
      clearTimeout(connectTimer);
      this.fail(new Error('connection closed'));
    });
    this.socket.on('timeout', () => this.socket.destroy(timeoutError('upstream body stalled')));
  }

  private nextBuffer(): Uint8Array {
    const f = this.framing;
    const big = this.body !== undefined && (f.kind === 'chunked' || f.kind === 'close' || (f.kind === 'length' && f.remaining >= BIG_READ / 4));
    this.fresh = big;
    if (!big) return SHARED_SMALL;
    const b = this.spare ?? takeBig();
    this.spare = undefined;
    return b;
  }

  /** Sends a request; resolves with the response once its headers have arrived. */
  send(req: Http1Request): Promise<Http1Response> {
    return new Promise((resolve, reject) => {
      const fwd = this.forward;
      let text = `${req.method} ${fwd ? fwd.prefix : ''}${req.url.pathname}${req.url.search} HTTP/1.1\r\nhost: ${req.url.host}\r\n`;
      if (fwd?.auth) text += `proxy-authorization: ${fwd.auth}\r\n`;
      for (const [k, v] of Object.entries(req.headers)) {
        if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(k) || /[\r\n\0]/.test(v)) {
          reject(new TypeError(`invalid request header ${JSON.stringify(k)}`));
          this.onRelease(true);
          return;
        }
        text += `${k}: ${v}\r\n`;
      }
      if (req.signal?.aborted) {
        reject(req.signal.reason instanceof Error ? req.signal.reason : new Error('aborted'));
        this.onRelease(true);
        return;
      }
      this.pending = { req, resolve, reject };
      this.gotBytes = false;
      this.interim = 0;
      this.broken = undefined;
      this.head = [];
      this.headLen = 0;
      this.headersTimer = setTimeout(() => this.socket.destroy(timeoutError('upstream sent no response headers in time')), req.headersTimeoutMs);
      if (req.signal) {
        this.signal = req.signal;
        this.abortListener = () => {
          this.aborted = true;
          this.socket.destroy(req.signal?.reason instanceof Error ? req.signal.reason : new Error('aborted'));
        };
        req.signal.addEventListener('abort', this.abortListener, { once: true });
      }
      this.socket.resume();
      const body = req.body;
      if (body === undefined) {
        this.socket.write(`${text}\r\n`, 'latin1');
      } else if (Buffer.isBuffer(body)) {
        if (!/\ncontent-length:/i.test(text)) text += `content-length: ${body.length}\r\n`;
        this.socket.write(`${text}\r\n`, 'latin1');
        this.socket.write(body);
      } else {
        // The upstream may take long to answer a large upload: the headers timer starts once the
        // body is sent, and until then the socket's idle timeout watches the transfer.
        clearTimeout(this.headersTimer);
        this.socket.setTimeout(req.bodyIdleTimeoutMs);
        const chunked = !/\ncontent-length:/i.test(text);
        if (chunked) text += 'transfer-encoding: chunked\r\n';
        this.socket.write(`${text}\r\n`, 'latin1');
        this.pump(body, chunked, req.headersTimeoutMs);
      }
    });
  }

  /** Streams a request body into the socket, with backpressure both ways. */
  private pump(body: Readable, chunked: boolean, headersTimeoutMs: number): void {
    const socket = this.socket;
    let done = false;
    const cleanup = () => {
      done = true;
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
      socket.off('drain', onDrain);
    };
    const onData = (chunk: Buffer) => {
      if (chunk.length === 0) return;
      const ok = chunked ? (socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1'), socket.write(chunk), socket.write('\r\n', 'latin1')) : socket.write(chunk);
      if (!ok) body.pause();
    };
    // cleanup() removes this listener and onClose, so neither runs once the pump let go.
    const onDrain = () => body.resume();
    const onEnd = () => {
      cleanup();
      this.bodyPump = undefined;
      if (chunked) socket.write('0\r\n\r\n', 'latin1');
      // Still waiting for the head: an answer that came early stopped the pump (bodyPump), so
      // this end is never reached after it.
      socket.setTimeout(0);
      this.headersTimer = setTimeout(() => socket.destroy(timeoutError('upstream sent no response headers in time')), headersTimeoutMs);
    };
    const onError = (err: Error) => {
      cleanup();
      socket.destroy(err);
    };
    // The source went away before its end (the client hung up): the upstream must not take a
    // short body for a whole one.
    const onClose = () => onError(new Error('request body ended early'));
    this.bodyPump = () => {
      // The upstream answered before the body was all sent (an error, usually): stop sending;
      // the connection cannot be reused.
      if (!done) {
        cleanup();
        this.keepAlive = false;
        body.resume(); // let the source drain so its producer is not stuck
      }
    };
    // A source that errors after the pump let go (a client that hung up: Node emits 'close',
    // then 'error: aborted') must not become an uncaught exception that takes the process down.
    body.on('error', () => undefined);
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    body.once('close', onClose);
    socket.on('drain', onDrain);
    body.resume();
  }

  private onData(chunk: Buffer): void {
    this.gotBytes = true;
    const fresh = this.fresh;
    if (this.body) {
      this.feedBody(chunk, fresh);
      return;
    }
    if (!this.pending) {
      // Nothing was asked: whatever this is, it is not an answer to anything we will send.
      this.socket.destroy(new ProtocolError('data on an idle connection'));
      return;
    }
    const copy = Buffer.from(chunk); // the shared small buffer is reused by the next read
    this.head.push(copy);
    this.headLen += copy.length;
    const all = this.head.length === 1 ? copy : Buffer.concat(this.head, this.headLen);
    const end = all.indexOf('\r\n\r\n');
    if (end < 0 ? this.headLen > MAX_HEAD : end > MAX_HEAD) {
      this.socket.destroy(new ProtocolError('response headers too large'));
      return;
    }
    if (end < 0) {
      this.head = [all];
      return;
    }
    const rest = all.subarray(end + 4);
    this.head = [];
    this.headLen = 0;
    try {
      if (!this.onHead(all.toString('latin1', 0, end), rest)) {
        if (++this.interim > MAX_INTERIM) throw new ProtocolError('too many interim responses');
        if (rest.length > 0) this.onData(rest); // an interim response: the real one follows
      }
    } catch (e) {
      this.socket.destroy(e as Error);
    }
  }

  /** Handles a response head and the bytes that came after it in the same read; false for a 1xx. */
  private onHead(text: string, rest: Buffer): boolean {
    const pending = this.pending as Pending;
    const head = parseHead(text, pending.req.method);
    if (!head) return false;
    this.keepAlive = head.keepAlive;
    this.keepAliveHintMs = head.keepAliveHintMs;
    const f = head.framing;
    this.framing = f.kind === 'length' ? { kind: 'length', remaining: f.length } : f.kind === 'chunked' ? { kind: 'chunked', decoder: new ChunkedDecoder() } : f;

    clearTimeout(this.headersTimer);
    if (this.bodyPump) {
      this.bodyPump();
      this.bodyPump = undefined;
    }
    const body = new ResponseBody();
    body.releaser = releaseChunk;
    // The idle timer measures the upstream's silence, so it stops while we hold the socket
    // paused for a slow client, and starts again when the reader wants more.
    body.bind(() => {
      this.socket.resume();
      if (this.body === body) this.socket.setTimeout(pending.req.bodyIdleTimeoutMs);
    });
    body.discard = () => {
      // A small known remainder is read and thrown away to keep the connection; anything else closes it.
      if (this.body === body && this.framing.kind === 'length' && this.framing.remaining <= 64 * 1024) {
        body.resume();
      } else {
        this.keepAlive = false;
        body.destroy();
        this.socket.destroy();
      }
    };
    body.once('close', () => {
      if (this.body === body && !body.readableEnded) this.socket.destroy();
    });
    this.pending = undefined;
    if (this.framing.kind === 'none') {
      // Bytes after a bodiless response belong to no request we made: the connection cannot
      // be trusted to hold only what we ask for next.
      if (rest.length > 0) this.keepAlive = false;
      body.complete = true;
      body.push(null);
      this.finish();
    } else {
      this.body = body;
      this.socket.setTimeout(pending.req.bodyIdleTimeoutMs);
      // The rest of this read is fed before the caller sees the response, so a body that is
      // already broken here (a bad first chunk) fails the request as a whole: the caller can
      // still answer 502 instead of a status line with an empty, cut body.
      if (rest.length > 0) this.feedBody(rest, true);
      if (this.broken) {
        pending.reject(this.broken);
        return true;
      }
    }
    pending.resolve({ statusCode: head.statusCode, headers: head.headers, body });
    return true;
  }

  private feedBody(chunk: Buffer, fresh: boolean): void {
    const body = this.body as ResponseBody;
    const f = this.framing;
    const own = (b: Buffer) => (fresh ? b : Buffer.from(b));
    if (fresh && chunk.length < COPY_BELOW && chunk.buffer.byteLength === BIG_READ) {
      // A short read into a big buffer: copy it out and keep the buffer for the next read, so
      // a slow trickle does not pin a megabyte per chunk.
      this.spare = Buffer.from(chunk.buffer, 0, BIG_READ);
      chunk = Buffer.from(chunk);
    }
    let more = true;
    if (f.kind === 'length') {
      const take = Math.min(f.remaining, chunk.length);
      more = body.push(own(chunk.subarray(0, take)));
      f.remaining -= take;
      if (take < chunk.length) this.keepAlive = false; // the server sent more than it announced
      if (f.remaining === 0) return this.finish();
    } else if (f.kind === 'chunked') {
      let rest: Buffer | undefined;
      try {
        rest = f.decoder.push(chunk, (data) => {
          more = body.push(own(data)) && more;
        });
      } catch (e) {
        this.broken = new ProtocolError((e as Error).message);
        this.socket.destroy(this.broken);
        return;
      }
      if (rest) this.keepAlive = false;
      if (f.decoder.done) return this.finish();
    } else {
      more = body.push(own(chunk));
    }
    if (!more) {
      this.socket.pause();
      this.socket.setTimeout(0);
    }
  }

  private onEnd(): void {
    if (this.body && this.framing.kind === 'close') this.finish();
  }

  private finish(): void {
    const body = this.body;
    this.body = undefined;
    this.framing = { kind: 'none' };
    this.socket.setTimeout(0);
    this.detachSignal();
    if (body) {
      body.complete = true;
      body.push(null);
    }
    this.reused = true;
    this.onRelease(this.keepAlive && !this.socket.destroyed);
  }

  private detachSignal(): void {
    if (this.signal && this.abortListener) this.signal.removeEventListener('abort', this.abortListener);
    this.signal = undefined;
    this.abortListener = undefined;
  }

  private fail(err: Error): void {
    clearTimeout(this.headersTimer);
    this.bodyPump?.();
    this.bodyPump = undefined;
    this.detachSignal();
    const pending = this.pending;
    const body = this.body;
    this.pending = undefined;
    this.body = undefined;
    if (pending) {
      // Reset or EOF before a single response byte: say so, so the retry layer can tell the
      // stale kept-alive connection (safe to send a GET again) from everything else.
      const silent = !this.gotBytes && err.name !== 'TimeoutError' && !(err instanceof ProtocolError) && !this.aborted;
      pending.reject(silent ? new NoResponseError(err, this.reused) : err);
    }
    if (body && !body.destroyed) body.destroy(err);
    if (pending || body) this.onRelease(false);
  }
}
