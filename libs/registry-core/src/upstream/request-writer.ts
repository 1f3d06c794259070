import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Http1Request } from './http1.js';

/** Through an HTTP proxy (plain http upstream): the request target's absolute-form prefix, and the proxy's credentials. */
export interface Forward {
  readonly prefix: string;
  readonly auth: string | undefined;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The request line and header fields as latin1 text, each line ended by CRLF, without the blank
 * line that ends the head (the caller adds framing headers first). Throws TypeError for a header
 * whose name or value would split the request or forge another.
 */
export function requestHead(req: Http1Request, fwd: Forward | undefined): string {
  let text = `${req.method} ${fwd ? fwd.prefix : ''}${req.url.pathname}${req.url.search} HTTP/1.1\r\nhost: ${req.url.host}\r\n`;
  if (fwd?.auth) text += `proxy-authorization: ${fwd.auth}\r\n`;
  for (const [k, v] of Object.entries(req.headers)) {
    if (!TOKEN.test(k) || /[\r\n\0]/.test(v)) throw new TypeError(`invalid request header ${JSON.stringify(k)}`);
    text += `${k}: ${v}\r\n`;
  }
  return text;
}

/** Request bodies whose chunks nobody else holds (see {@link disposableChunks}). */
const DISPOSABLE = new WeakSet<Readable>();

/**
 * Says that every chunk `body` emits is an allocation of its own that nothing else keeps, as
 * node:http's IncomingMessage chunks are (its parser copies each piece of body into a new
 * Buffer), so the transport may free a chunk's memory as soon as the socket has written it.
 * Why: a relayed upload is a stream of 64 KiB buffers that each live until the upstream has
 * them, long enough to be promoted; V8 counts them as external memory and runs a full
 * mark-compact every few tens of MiB, which was most of a push's CPU (2.4 CPU-s/GiB for a 512
 * MiB push, 1.1 with the chunks freed on the spot: docs/benchmarks.md).
 */
export function disposableChunks<T extends Readable>(body: T): T {
  DISPOSABLE.add(body);
  return body;
}

type Transfer = (this: ArrayBuffer, newLength: number) => ArrayBuffer;

/** Node 20: the flag only decides whether a new context gets the builtin; a fresh context then has it. */
function borrowTransfer(): unknown {
  setFlagsFromString('--harmony-rab-gsab-transfer');
  return runInNewContext('ArrayBuffer.prototype.transfer');
}

/**
 * `ArrayBuffer.prototype.transfer` (ES2024), which detaches an ArrayBuffer and frees its memory
 * at once. Node 21+ has it; Node 20's V8 has it behind a flag, so it is taken from a fresh
 * context with the flag on (a builtin works on any realm's ArrayBuffer). Nothing global is
 * patched. Null when neither works: chunks are then left to the garbage collector, as before.
 */
export function transferFunction(native: unknown = (ArrayBuffer.prototype as { transfer?: unknown }).transfer, borrow: () => unknown = borrowTransfer): Transfer | null {
  if (typeof native === 'function') return native as Transfer;
  const borrowed = borrow();
  return typeof borrowed === 'function' ? (borrowed as Transfer) : null;
}

/** Looked up once, on the first disposable body (undefined until then). */
let transfer: Transfer | null | undefined;

/**
 * Streams a request body into the socket, with backpressure both ways (chunk-coded when
 * `chunked`); `onSent` runs once all of it is written. Returns `stop`, which lets go of the
 * body (an upstream answered early, or the connection failed) and says whether it was still
 * being sent, i.e. whether the connection is left mid-message.
 */
export function pumpBody(socket: Socket, body: Readable, chunked: boolean, onSent: () => void): () => boolean {
  let done = false;
  const disposable = DISPOSABLE.has(body);
  // Not `??=`: a null answer (no transfer on this runtime) must not be looked up again per body.
  if (disposable && transfer === undefined) transfer = transferFunction();
  const free = disposable ? (transfer ?? null) : null;
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
    // Only a chunk that is its whole ArrayBuffer is freed: a slice of a larger one shares it.
    const ab = chunk.buffer;
    const written = free !== null && chunk.byteOffset === 0 && ab.byteLength === chunk.length ? () => void free.call(ab as ArrayBuffer, 0) : undefined;
    const ok = chunked ? (socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1'), socket.write(chunk), socket.write('\r\n', 'latin1', written)) : socket.write(chunk, written);
    if (!ok) body.pause();
  };
  // cleanup() removes this listener and onClose, so neither runs once the pump let go.
  const onDrain = () => body.resume();
  const onEnd = () => {
    cleanup();
    if (chunked) socket.write('0\r\n\r\n', 'latin1');
    onSent();
  };
  const onError = (err: Error) => {
    cleanup();
    socket.destroy(err);
  };
  // The source went away before its end (the client hung up): the upstream must not take a
  // short body for a whole one.
  const onClose = () => onError(new Error('request body ended early'));
  // A source that errors after the pump let go (a client that hung up: Node emits 'close',
  // then 'error: aborted') must not become an uncaught exception that takes the process down.
  body.on('error', () => undefined);
  body.on('data', onData);
  body.once('end', onEnd);
  body.once('error', onError);
  body.once('close', onClose);
  socket.on('drain', onDrain);
  body.resume();
  return () => {
    if (done) return false;
    cleanup();
    body.resume(); // let the source drain so its producer is not stuck
    return true;
  };
}
