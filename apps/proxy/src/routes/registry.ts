import type { NextFunction, Request, Response } from 'express';
import {
  CredentialError,
  InvalidTokenError,
  RegistryError,
  UpstreamUnavailableError,
  formatChallenge,
  grants,
  parseApiPath,
  writeRegistryError,
  type Endpoint,
  type UpstreamResponse,
} from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { Runtime } from '../runtime.js';
import type { Target } from '../routing.js';
import { relayTagList, rewriteLink } from './tags.js';

/** Response headers relayed from the upstream; everything else (cookies, hop-by-hop, server) stays behind. */
const RELAYED = ['content-type', 'content-length', 'docker-content-digest', 'etag', 'last-modified', 'content-range', 'accept-ranges', 'location', 'retry-after', 'cache-control', 'oci-subject', 'oci-filters-applied'];
/** Request headers passed to the upstream. */
const FORWARDED = ['accept', 'range', 'if-none-match', 'if-match', 'if-range', 'if-modified-since'];

const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' };

function realm(runtime: Runtime, req: Request): string {
  return runtime.config.publicUrl ? `${runtime.config.publicUrl}/token` : `${req.protocol}://${req.get('host') ?? 'localhost'}/token`;
}

function challenge(runtime: Runtime, req: Request, scope: string | undefined, error?: string): RegistryError {
  const value = formatChallenge('Bearer', { realm: realm(runtime, req), service: runtime.config.service, scope, error });
  return new RegistryError('UNAUTHORIZED', { headers: { 'WWW-Authenticate': value } });
}

/** Verifies the request's bearer token locally; resolves to its subject and access, or throws a 401 challenge. */
async function authenticate(runtime: Runtime, req: Request, scope: string | undefined) {
  const h = req.headers.authorization;
  const m = h === undefined ? null : /^Bearer[ \t]+([A-Za-z0-9._~+/=-]+)[ \t]*$/i.exec(h);
  if (!m) throw challenge(runtime, req, scope, h === undefined ? undefined : 'invalid_token');
  try {
    return await runtime.tokens.verifyAccessToken(m[1] as string);
  } catch (err) {
    if (err instanceof InvalidTokenError) throw challenge(runtime, req, scope, 'invalid_token');
    throw err;
  }
}

function upstreamPath(ep: Endpoint & { name: string }, upstreamName: string, url: string): string {
  if (ep.kind === 'manifest') return `/v2/${upstreamName}/manifests/${ep.reference}`;
  if (ep.kind === 'blob') return `/v2/${upstreamName}/blobs/${ep.digest}`;
  const query = new URL(url, 'http://x').searchParams;
  const q = new URLSearchParams();
  const n = query.get('n');
  const last = query.get('last');
  if (n !== null) {
    if (!/^\d{1,6}$/.test(n)) throw new RegistryError('PAGINATION_NUMBER_INVALID');
    q.set('n', n);
  }
  if (last !== null) q.set('last', last);
  const qs = q.toString();
  return `/v2/${upstreamName}/tags/list${qs ? `?${qs}` : ''}`;
}

/** Maps an upstream failure to the registry error the client sees; never includes a secret. */
export function upstreamFailure(err: unknown): RegistryError | undefined {
  if (err instanceof UpstreamUnavailableError) {
    return err.kind === 'timeout'
      ? new RegistryError('UNAVAILABLE', { status: 504, message: 'upstream registry timed out', cause: err })
      : new RegistryError('BAD_GATEWAY', { message: `upstream registry unavailable: ${err.kind}`, cause: err });
  }
  if (err instanceof CredentialError) return new RegistryError('BAD_GATEWAY', { message: 'upstream credentials unavailable', cause: err });
  return undefined;
}

/** The `/v2` API: the base endpoint, then pull endpoints relayed to the upstream that owns the name. */
export function registryHandler(runtime: Runtime, metrics: Metrics, logger: Logger) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const head = req.method === 'HEAD';
    try {
      const ep = parseApiPath(req.path);
      res.locals['route'] = ep.kind;
      if (ep.kind === 'base') {
        if (req.method !== 'GET' && !head) throw new RegistryError('UNSUPPORTED');
        const who = await authenticate(runtime, req, undefined);
        res.locals['subject'] = who.subject;
        res.set(API_VERSION).type('application/json').send('{}');
        return;
      }
      if (ep.kind === 'catalog' || ep.kind === 'upload' || (req.method !== 'GET' && !head)) {
        throw new RegistryError('UNSUPPORTED', { message: 'this proxy serves pulls only: push, delete and catalog are not supported yet' });
      }
      res.locals['repository'] = ep.name;
      const scope = `repository:${ep.name}:pull`;
      const who = await authenticate(runtime, req, scope);
      res.locals['subject'] = who.subject;
      if (!grants(who.access, 'repository', ep.name, 'pull')) throw challenge(runtime, req, scope, 'insufficient_scope');

      const target = runtime.router.resolve(ep.name);
      if (!target) throw new RegistryError('NAME_UNKNOWN', { message: 'no upstream serves this repository' });
      res.locals['upstream'] = target.route.client.name;
      await relay(req, res, ep, target, metrics, logger);
    } catch (err) {
      if (res.destroyed || req.socket.destroyed) {
        // The client left while the upstream was answering: nobody to tell.
        logger.debug({ err, repository: res.locals['repository'] }, 'client went away');
        return;
      }
      const regErr = err instanceof RegistryError ? err : upstreamFailure(err);
      if (!regErr) return next(err);
      if (regErr.status >= 500) logger.warn({ err: regErr.cause ?? regErr, repository: res.locals['repository'] }, regErr.message);
      writeRegistryError(res, regErr, head);
    }
  };
}

async function relay(req: Request, res: Response, ep: Endpoint & { name: string }, target: Target, metrics: Metrics, logger: Logger): Promise<void> {
  const headers: Record<string, string> = {};
  for (const h of FORWARDED) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort(new Error('client went away'));
  };
  res.once('close', onClose);
  const started = process.hrtime.bigint();
  const client = target.route.client;
  let up: UpstreamResponse;
  try {
    up = await client.request({
      method: req.method === 'HEAD' ? 'HEAD' : 'GET',
      path: upstreamPath(ep, target.name, req.originalUrl),
      headers,
      scope: `repository:${target.name}:pull`,
      signal: abort.signal,
    });
  } finally {
    // Past the response headers, a client that leaves is handled by destroying the body.
    res.off('close', onClose);
  }
  metrics.upstreamLatency.observe({ upstream: client.name, status: String(up.statusCode) }, Number(process.hrtime.bigint() - started) / 1e9);

  if (up.statusCode === 401) {
    await up.body.dump();
    throw new RegistryError('BAD_GATEWAY', { message: "upstream registry refused the proxy's credentials" });
  }
  res.status(up.statusCode);
  for (const h of RELAYED) {
    const v = up.headers[h];
    if (v !== undefined) res.setHeader(h, v);
  }
  res.set(API_VERSION);
  if (ep.kind === 'tags' && up.statusCode === 200 && req.method === 'GET') {
    const link = up.headers['link'];
    if (typeof link === 'string') res.setHeader('Link', rewriteLink(link, target.name, ep.name));
    await relayTagList(up.body, res, ep.name);
    return;
  }
  if (req.method === 'HEAD' || (up.body.complete && up.body.readableLength === 0)) {
    res.end();
    await up.body.dump();
    return;
  }
  const length = Number(up.headers['content-length']);
  // A hand-written pipe: each chunk's memory goes back to the transport once the socket has
  // it (stream.pipeline would also build and abort an AbortController per request).
  const body = up.body;
  const ok = await new Promise<boolean>((resolve) => {
    body.once('error', (err) => {
      // The upstream broke mid-body: the status line is gone already, so the connection is cut
      // (the client sees a short body and retries).
      logger.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, repository: ep.name, upstream: client.name }, 'upstream body failed mid-transfer');
      res.destroy();
    });
    res.once('close', () => {
      if (!res.writableFinished) body.destroy(); // the client went away
      resolve(res.writableFinished);
    });
    if (body.destroyed) {
      res.destroy(); // failed before we got to it
      return;
    }
    res.on('drain', () => body.resume());
    body.on('data', (chunk: Buffer) => {
      if (!res.write(chunk, () => body.release(chunk))) body.pause();
    });
    body.once('end', () => res.end());
  });
  if (ok && Number.isFinite(length)) metrics.upstreamBytes.inc({ upstream: client.name }, length);
}
