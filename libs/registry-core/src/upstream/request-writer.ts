import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
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

/**
 * Streams a request body into the socket, with backpressure both ways (chunk-coded when
 * `chunked`); `onSent` runs once all of it is written. Returns `stop`, which lets go of the
 * body (an upstream answered early, or the connection failed) and says whether it was still
 * being sent, i.e. whether the connection is left mid-message.
 */
export function pumpBody(socket: Socket, body: Readable, chunked: boolean, onSent: () => void): () => boolean {
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
