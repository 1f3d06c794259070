import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PlainLines } from './logging.js';
import type { Metrics } from './metrics.js';
import type { RequestNotes } from './call.js';

/** This process's part of the ids it makes: 48 random bits, so that the ids of replicas and restarts do not meet. */
const ID_PREFIX = randomBytes(6).toString('hex');
let idCount = 0;

/**
 * The request id: the client's X-Request-Id (its first 64 characters), else this process's
 * prefix and a count (`3f9a0c12e4b7-1a`), unique within the process. A count, not a random UUID:
 * this runs for every request, and a UUID cost about 3,200 instructions against 700 (callgrind).
 */
export function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return (typeof given === 'string' && given.slice(0, 64)) || `${ID_PREFIX}-${(++idCount).toString(36)}`;
}

/**
 * One log line and one count per request, when its response closes: method, path, route,
 * status, duration, identity and repository, never headers or secrets. Shared by the /v2
 * dispatcher and the Express routes (./app.ts); `notes` is filled in by the handler as it goes.
 */
export function observeRequest(req: IncomingMessage, res: ServerResponse, notes: RequestNotes, id: string, metrics: Metrics, lines: PlainLines): void {
  const started = process.hrtime.bigint();
  res.once('close', () => {
    const route = notes.route ?? 'other';
    metrics.countRequest(route, req.method ?? '', res.statusCode);
    // The line is built only when it will be written (this runs for every request).
    if (!lines.enabled('info')) return;
    const url = logPath(req.url ?? '');
    const q = url.indexOf('?');
    lines.info(
      {
        req_id: id,
        method: req.method,
        path: (q < 0 ? url : url.slice(0, q)).slice(0, 512),
        route,
        status: res.statusCode,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
        subject: notes.subject,
        repository: notes.repository,
        upstream: notes.upstream,
        aborted: !res.writableFinished,
      },
      'request',
    );
  });
}

/**
 * The request target as the log line shows it: an absolute-form target (`http://user:pw@host/x`)
 * loses its scheme and authority, which may carry userinfo; any other target that is not a path
 * (Node's parser lets a few through) is not logged at all, since it may be userinfo too. The
 * query is cut by the caller.
 */
export function logPath(url: string): string {
  if (url.charCodeAt(0) === 47 /* / */ || url === '*') return url;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url);
  if (scheme === null) return '(not a path)';
  const slash = url.indexOf('/', scheme[0].length);
  return slash < 0 ? '/' : url.slice(slash);
}
