import type { IncomingMessage } from 'node:http';
import { RegistryError } from '@registry-proxy/registry-core';

/** How long a small body may take: in all, and between two of its chunks. */
export interface BodyDeadlines {
  readonly totalMs: number;
  readonly idleMs: number;
}

/**
 * Reads a small request body whole (a manifest, a token form). Past `limit` bytes, declared or
 * counted as they come, it stops reading and refuses with 413 (BODY_TOO_LARGE, `message`); the
 * unread rest is the error writer's to drop (see ./respond.ts). A body that stops coming, or
 * trickles in for longer than `deadlines` allow, is refused with 408: the server has no request
 * timeout (blob uploads may take hours), so without this a client that never finishes its body
 * would hold its connection, and a file descriptor, for ever. Listeners rather than `for
 * await`: leaving that loop would destroy the request, and with it the socket that the answer
 * still has to travel on.
 */
export function readBody(req: IncomingMessage, limit: number, message: string, deadlines: BodyDeadlines): Promise<Buffer> {
  const tooLarge = () => new RegistryError('BODY_TOO_LARGE', { message });
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  // Mostly the whole body came in the packet with the head (a token form, a small manifest):
  // by the time the route reads it, the parser has buffered all of it (`complete`, or the
  // declared length; the end of the message follows in the same parse) and nobody has read any.
  // Then there is nothing to wait for and no deadline to keep: it is taken as it is, and the
  // request is left flowing, as the listeners below leave it, so that its end is read.
  // Anything else (still arriving, over the limit, already read from) takes the general path.
  const buffered = req.readableLength;
  if ((req.complete || buffered === declared) && buffered <= limit && req.readableFlowing === null && !req.readableEnded) {
    const body = (req.read() as Buffer | null) ?? Buffer.alloc(0);
    req.resume();
    return Promise.resolve(body);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const late = (what: string) => () => stop(new RegistryError('REQUEST_TIMEOUT', { message: `request body ${what}` }));
    const total = setTimeout(late(`not complete within ${deadlines.totalMs / 1000} s`), deadlines.totalMs);
    const idle = setTimeout(late(`idle for ${deadlines.idleMs / 1000} s`), deadlines.idleMs);
    const stop = (err?: Error) => {
      clearTimeout(total);
      clearTimeout(idle);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', stop);
      req.off('close', onClose);
      if (err) {
        req.pause();
        reject(err);
      }
    };
    const onData = (c: Buffer) => {
      idle.refresh();
      size += c.length;
      if (size > limit) stop(tooLarge());
      else chunks.push(c);
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks, size));
    };
    const onClose = () => stop(new Error('client went away'));
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', stop);
    req.once('close', onClose);
  });
}
