import { connect as netConnect, isIP, type NetConnectOpts, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { ResponseBody } from './body.js';
import { BIG_READ, releaseChunk, takeBig } from './buffer-pool.js';
import type { CancelSignal } from './cancel.js';
import { NoResponseError } from './errors.js';
import { ProtocolError, type ResponseHead } from './head.js';
import { proxyAddress, proxyAuthorization } from './outbound-proxy.js';
import { pumpBody, requestHead, type Forward } from './request-writer.js';
import { ResponseReader } from './response-reader.js';
import type { Http1Request, Http1Response, Http1TransportOptions } from './http1.js';

/** Reads of headers and small bodies land here and are copied out; one buffer serves every socket. */
const SHARED_SMALL = Buffer.allocUnsafeSlow(64 * 1024);
const COPY_BELOW = BIG_READ / 4;
/** Request bodies (pushes) are written in the client's 64 KiB reads; a larger write buffer pauses the client less often. */
const WRITE_HWM = 1 << 20;

function timeoutError(message: string): Error {
  const e = new Error(message);
  e.name = 'TimeoutError';
  (e as NodeJS.ErrnoException).code = 'ETIMEDOUT';
  return e;
}

interface Pending {
  readonly req: Http1Request;
  resolve(r: Http1Response): void;
  reject(e: Error): void;
}

/**
 * One keep-alive HTTP/1.1 connection: the socket, its read buffers, timers and abort, and the
 * hand-back to the pool. What the bytes mean is the ResponseReader's (response-reader.ts) and how
 * a request is put on the wire the request writer's (request-writer.ts). Bodies of large blobs are
 * read straight into fresh 1 MiB buffers that are handed on without copying (Node's `onread`),
 * which is what keeps the relay's CPU per GiB near a bare TCP relay's; headers and small bodies
 * go through one shared buffer.
 */
export class Connection {
  readonly socket: Socket;
  reused = false;
  gotBytes = false;
  private readonly reader = new ResponseReader();
  private pending: Pending | undefined;
  private body: ResponseBody | undefined;
  /** Cleared for good when the connection is left mid-message (a request body cut short, a body discarded). */
  private reusable = true;
  private fresh = false;
  private spare: Buffer | undefined;
  /** While body bytes are framed: the chunk being fed is the body's to keep (not the shared buffer), and the reader still wants more. */
  private owned = false;
  private more = true;
  /** Why the body failed while the head's packet was being read. */
  private broken: Error | undefined;
  /**
   * The response-headers deadline: one timer for the connection's life, refreshed per request
   * (a setTimeout and clearTimeout per request cost six times a refresh), which acts only while
   * a head is awaited. It never outlives the socket, whose close clears it.
   */
  private headersTimer: NodeJS.Timeout | undefined;
  private headersMs = 0;
  private awaitingHead = false;
  private abortListener: (() => void) | undefined;
  private signal: CancelSignal | undefined;
  /** Stops a request body still being sent (true if it was unfinished); set while one is. */
  private bodyPump: (() => boolean) | undefined;
  private aborted = false;
  /** The pool's idle timer, kept for the connection's life and refreshed each time it goes back (http1.ts). */
  idleTimer: NodeJS.Timeout | undefined;
  idleMs = 0;
  /** Set by the pool while the connection waits in it; cleared when it is taken for a request. */
  pooled = false;
  /** Set by the pool: called once per exchange when the connection is free again (or dead). */
  onRelease: (reusable: boolean) => void = () => undefined;
  keepAliveHintMs: number | undefined;

  /** Through an HTTP proxy (plain http upstream): the request target in absolute form, and the proxy's credentials. */
  private readonly forward: Forward | undefined;

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
    const tls = { servername: isIP(name) ? undefined : name, ALPNProtocols: ['http/1.1'], ca: ca as string | Buffer | Array<string | Buffer> | undefined };
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
    const big = this.body !== undefined && this.reader.remaining >= BIG_READ / 4;
    this.fresh = big;
    if (!big) return SHARED_SMALL;
    const b = this.spare ?? takeBig();
    this.spare = undefined;
    return b;
  }

  /** Sends a request; resolves with the response once its headers have arrived. */
  send(req: Http1Request): Promise<Http1Response> {
    return new Promise((resolve, reject) => {
      let text: string;
      try {
        text = requestHead(req, this.forward);
      } catch (e) {
        reject(e as Error);
        this.onRelease(true);
        return;
      }
      if (req.signal?.aborted) {
        reject(req.signal.reason instanceof Error ? req.signal.reason : new Error('aborted'));
        this.onRelease(true);
        return;
      }
      this.pending = { req, resolve, reject };
      this.gotBytes = false;
      this.broken = undefined;
      this.reader.begin(req.method);
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
        this.armHeadersTimer(req.headersTimeoutMs);
        this.socket.write(`${text}\r\n`, 'latin1');
      } else if (Buffer.isBuffer(body)) {
        this.armHeadersTimer(req.headersTimeoutMs);
        if (!/\ncontent-length:/i.test(text)) text += `content-length: ${body.length}\r\n`;
        this.socket.write(`${text}\r\n`, 'latin1');
        this.socket.write(body);
      } else {
        // The upstream may take long to answer a large upload: the headers timer starts once the
        // body is sent, and until then the socket's idle timeout watches the transfer.
        this.socket.setTimeout(req.bodyIdleTimeoutMs);
        const chunked = !/\ncontent-length:/i.test(text);
        if (chunked) text += 'transfer-encoding: chunked\r\n';
        this.socket.write(`${text}\r\n`, 'latin1');
        this.bodyPump = pumpBody(this.socket, body, chunked, () => {
          // Still waiting for the head: an answer that came early stopped the pump (bodyPump), so
          // this is never reached after it.
          this.bodyPump = undefined;
          this.socket.setTimeout(0);
          this.armHeadersTimer(req.headersTimeoutMs);
        });
      }
    });
  }

  /** Starts the headers deadline of a request: `ms` from now, the socket is cut unless its head has come. */
  private armHeadersTimer(ms: number): void {
    this.awaitingHead = true;
    if (this.headersTimer !== undefined && this.headersMs === ms) {
      this.headersTimer.refresh();
      return;
    }
    clearTimeout(this.headersTimer);
    this.headersMs = ms;
    this.headersTimer = setTimeout(() => {
      if (this.awaitingHead) this.socket.destroy(timeoutError('upstream sent no response headers in time'));
    }, ms);
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
    let got;
    try {
      got = this.reader.readHead(chunk);
    } catch (e) {
      this.socket.destroy(e as Error);
      return;
    }
    if (got) this.onHead(got.head, got.rest);
  }

  /** Handles a final response head and the bytes that came after it in the same read (copies of its own). */
  private onHead(head: ResponseHead, rest: Buffer): void {
    const pending = this.pending as Pending;
    this.keepAliveHintMs = head.keepAliveHintMs;
    this.awaitingHead = false;
    if (this.bodyPump) {
      if (this.bodyPump()) this.reusable = false; // the upstream answered before the body was all sent
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
      if (this.body === body && this.reader.remaining <= 64 * 1024) {
        body.resume();
      } else {
        this.reusable = false;
        body.destroy();
        this.socket.destroy();
      }
    };
    body.once('close', () => {
      if (this.body === body && !body.readableEnded) this.socket.destroy();
    });
    this.pending = undefined;
    if (this.reader.remaining === 0) {
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
        return;
      }
    }
    pending.resolve({ statusCode: head.statusCode, headers: head.headers, body });
  }

  private feedBody(chunk: Buffer, fresh: boolean): void {
    if (fresh && chunk.length < COPY_BELOW && chunk.buffer.byteLength === BIG_READ) {
      // A short read into a big buffer: copy it out and keep the buffer for the next read, so
      // a slow trickle does not pin a megabyte per chunk.
      this.spare = Buffer.from(chunk.buffer, 0, BIG_READ);
      chunk = Buffer.from(chunk);
    }
    this.owned = fresh;
    this.more = true;
    let done: boolean;
    try {
      done = this.reader.readBody(chunk, this.emit);
    } catch (e) {
      this.broken = e as Error;
      this.socket.destroy(this.broken);
      return;
    }
    if (done) return this.finish();
    if (!this.more) {
      this.socket.pause();
      this.socket.setTimeout(0);
    }
  }

  /** Takes one piece of body data from the reader (a view into the chunk being fed). */
  private readonly emit = (data: Buffer): void => {
    this.more = (this.body as ResponseBody).push(this.owned ? data : Buffer.from(data)) && this.more;
  };

  private onEnd(): void {
    if (this.body && this.reader.closeDelimited) this.finish();
  }

  private finish(): void {
    const body = this.body;
    this.body = undefined;
    this.reader.end();
    if (this.socket.timeout) this.socket.setTimeout(0);
    this.detachSignal();
    if (body) {
      body.complete = true;
      body.push(null);
    }
    this.reused = true;
    this.onRelease(this.reusable && this.reader.keepAlive && !this.socket.destroyed);
  }

  private detachSignal(): void {
    if (this.signal && this.abortListener) this.signal.removeEventListener('abort', this.abortListener);
    this.signal = undefined;
    this.abortListener = undefined;
  }

  private fail(err: Error): void {
    this.awaitingHead = false;
    clearTimeout(this.headersTimer);
    this.headersTimer = undefined;
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
