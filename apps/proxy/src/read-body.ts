import type { IncomingMessage } from 'node:http';
import { RegistryError } from '@registry-proxy/registry-core';

/**
 * Reads a small request body whole (a manifest, a token form). Past `limit` bytes, declared or
 * counted as they come, it stops reading and refuses with 413 (BODY_TOO_LARGE, `message`); the
 * unread rest is the error writer's to drop (see ./respond.ts). Listeners rather than `for
 * await`: leaving that loop would destroy the request, and with it the socket that the 413
 * still has to travel on.
 */
export function readBody(req: IncomingMessage, limit: number, message: string): Promise<Buffer> {
  const tooLarge = () => new RegistryError('BODY_TOO_LARGE', { message });
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (err?: Error) => {
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
