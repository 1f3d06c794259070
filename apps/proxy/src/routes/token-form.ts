import type { IncomingMessage } from 'node:http';
import { RegistryError } from '@registry-proxy/registry-core';

/** A token form is a few hundred bytes (a refresh token, a scope or two); 64 KiB is generous. */
export const MAX_FORM_BYTES = 64 * 1024;

const CHARSETS: Record<string, BufferEncoding> = { 'utf-8': 'utf8', utf8: 'utf8', 'us-ascii': 'latin1', 'iso-8859-1': 'latin1', latin1: 'latin1' };

/**
 * The POST body of a token request as text, for URLSearchParams (which keeps repeated fields:
 * `scope=a&scope=b` are two scopes, issue 11 defect 9). A body that is not a form is read as
 * an empty one, so the request is refused for what it lacks; one that is too large is refused
 * with 413 before it is read whole; a charset or content coding the proxy cannot read, 415.
 */
export function readForm(req: IncomingMessage): Promise<string> {
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  const semi = type.indexOf(';');
  if ((semi < 0 ? type : type.slice(0, semi)).trim() !== 'application/x-www-form-urlencoded') return Promise.resolve('');
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/.exec(type)?.[1] ?? 'utf-8';
  const encoding = CHARSETS[charset];
  if (encoding === undefined) return Promise.reject(new RegistryError('MEDIA_UNSUPPORTED', { message: `charset ${charset.slice(0, 40)} is not supported` }));
  const coding = (req.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
  if (coding !== 'identity') return Promise.reject(new RegistryError('MEDIA_UNSUPPORTED', { message: 'a token form must not be compressed' }));
  const tooLarge = () => new RegistryError('BODY_TOO_LARGE', { message: 'token form larger than 64 KiB' });
  const declared = Number(req.headers['content-length']);
  if (declared > MAX_FORM_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (err?: Error) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', stop);
      req.off('close', onClose);
      if (err) {
        req.pause(); // the error writer drops the rest (../respond.ts)
        reject(err);
      }
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > MAX_FORM_BYTES) stop(tooLarge());
      else chunks.push(c);
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks, size).toString(encoding));
    };
    const onClose = () => stop(new Error('client went away'));
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', stop);
    req.once('close', onClose);
  });
}
