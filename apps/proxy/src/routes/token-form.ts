import type { IncomingMessage } from 'node:http';
import { RegistryError } from '@registry-proxy/registry-core';
import { readBody } from '../read-body.js';

/** A token form is a few hundred bytes (a refresh token, a scope or two); 64 KiB is generous. */
export const MAX_FORM_BYTES = 64 * 1024;
/** Read before any credential is checked, so anyone can send one: a few hundred bytes get 10 s between chunks and 30 s in all. */
export const FORM_DEADLINES = { totalMs: 30_000, idleMs: 10_000 };

/** A Map, not an object: the charset is the client's text, and `constructor` must not be found. */
const CHARSETS = new Map<string, BufferEncoding>([
  ['utf-8', 'utf8'],
  ['utf8', 'utf8'],
  ['us-ascii', 'latin1'],
  ['iso-8859-1', 'latin1'],
  ['latin1', 'latin1'],
]);

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
  const encoding = CHARSETS.get(charset);
  if (encoding === undefined) return Promise.reject(new RegistryError('MEDIA_UNSUPPORTED', { message: `charset ${charset.slice(0, 40)} is not supported` }));
  const coding = (req.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
  if (coding !== 'identity') return Promise.reject(new RegistryError('MEDIA_UNSUPPORTED', { message: 'a token form must not be compressed' }));
  return readBody(req, MAX_FORM_BYTES, 'token form larger than 64 KiB', FORM_DEADLINES).then((b) => b.toString(encoding));
}
