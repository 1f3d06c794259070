import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { RegistryError, writeRegistryError, type ErrorResponseTarget } from '@registry-proxy/registry-core';

/** How long, and how many bytes of an unread request body, the proxy drops before it closes. */
const LINGER_MS = 2_000;
const LINGER_BYTES = 16 << 20;

/**
 * Whether the client's connection is gone (nobody to answer). Not `req.destroyed`: a request
 * whose body has been read to the end is destroyed too, and still waits for its answer.
 */
export function clientGone(req: IncomingMessage, res: ServerResponse): boolean {
  return res.destroyed || !req.socket || req.socket.destroyed;
}

/**
 * The registry error for an error that carries an HTTP status (body-parser, Express): its own
 * status with the registry code that says what went wrong, never a blanket UNAUTHORIZED.
 */
export function fromHttpError(err: unknown): RegistryError | undefined {
  const e = err as { status?: unknown; type?: unknown } | null;
  const status = typeof e?.status === 'number' ? e.status : undefined;
  if (status === undefined || status < 400 || status >= 500) return undefined;
  const type = typeof e?.type === 'string' ? e.type : '';
  if (status === 413 || type === 'entity.too.large' || type === 'parameters.too.many') return new RegistryError('BODY_TOO_LARGE');
  if (type === 'request.size.invalid') return new RegistryError('SIZE_INVALID', { message: 'request body shorter or longer than its Content-Length' });
  if (status === 415) return new RegistryError('MEDIA_UNSUPPORTED');
  // Any other 4xx a body parser raises (400 for bad JSON or charset): the client's request was malformed.
  return new RegistryError('REQUEST_INVALID');
}

/**
 * Writes a registry error. When the request body has not been read (refused before or while
 * reading it), the connection cannot carry another request, so the answer says
 * `Connection: close`. Ending it at once would make Node close the socket with the client's
 * bytes still unread, and the kernel's RST can then destroy the answer before the client reads
 * it; so the answer is written whole, the rest of the body is read and dropped for a bounded
 * time and size (a "lingering close", as nginx and Go's net/http do), and then the
 * connection is closed.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, err: RegistryError, head: boolean): void {
  if (res.headersSent || res.destroyed) return;
  if (req.complete || req.destroyed) {
    writeRegistryError(res, err, head);
    return;
  }
  res.setHeader('Connection', 'close');
  const target: ErrorResponseTarget = {
    get statusCode() {
      return res.statusCode;
    },
    set statusCode(v: number) {
      res.statusCode = v;
    },
    get headersSent() {
      return res.headersSent;
    },
    setHeader: (name, value) => res.setHeader(name, value),
    end: (body) => {
      if (body !== undefined) res.write(body);
      linger(req, res);
    },
  };
  writeRegistryError(target, err, head);
}

function linger(req: IncomingMessage, res: ServerResponse): void {
  let dropped = 0;
  const finish = () => {
    clearTimeout(timer);
    req.off('data', onData);
    req.off('end', finish);
    req.off('close', finish);
    req.off('error', finish);
    if (!res.writableEnded) res.end();
  };
  const onData = (c: Buffer) => {
    dropped += c.length;
    if (dropped > LINGER_BYTES) finish();
  };
  const timer = setTimeout(finish, LINGER_MS);
  timer.unref();
  req.on('data', onData);
  req.once('end', finish);
  req.once('close', finish);
  req.once('error', finish); // a reset while lingering: nothing left to do but close
  req.resume();
}

/**
 * Node's answer to a request it could not parse (bad framing, oversized head, a head that
 * took too long), in the registry's error format: Node's own default is a bare `400 Bad
 * Request` without a body. There is no response object at that point, so the bytes go to the
 * socket, which is then closed; a connection whose response has begun is only closed.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex & { bytesWritten?: number; destroySoon?: () => void }): void {
  if (!socket.writable || (socket.bytesWritten ?? 0) > 0 || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const e = new RegistryError(err.code === 'HPE_HEADER_OVERFLOW' ? 'HEAD_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT' : 'REQUEST_INVALID');
  // The one error writer, aimed at the raw socket: it collects the head, then sends it whole.
  const head: string[] = [];
  const target: ErrorResponseTarget = {
    statusCode: 500,
    headersSent: false,
    setHeader: (name, value) => head.push(`${name}: ${value}\r\n`),
    end: (body) => socket.end(`HTTP/1.1 ${target.statusCode} ${STATUS_CODES[target.statusCode] ?? ''}\r\n${head.join('')}Connection: close\r\n\r\n${body ?? ''}`),
  };
  writeRegistryError(target, e);
  socket.destroySoon?.();
}

/**
 * A JSON answer (the text already serialized), framed by Content-Length, as Express's `res.json`
 * wrote it. The head goes in one writeHead with a flat header list, which Node writes without
 * building its header map (headers set before on `res` are kept, and these replace theirs).
 */
export function sendJson(res: ServerResponse, status: number, json: string, headers?: Readonly<Record<string, string>>): void {
  const head: string[] = [];
  if (headers) for (const k in headers) head.push(k, headers[k] as string);
  head.push('Content-Type', 'application/json; charset=utf-8', 'Content-Length', String(Buffer.byteLength(json)));
  res.writeHead(status, head);
  res.end(json);
}
