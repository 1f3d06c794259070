import type { NextFunction, Request, Response } from 'express';
import {
  BodyTooLargeError,
  CredentialError,
  isValidDigest,
  isValidRepositoryName,
  RegistryError,
  UpstreamUnavailableError,
  grantsOn,
  parseApiPath,
  type Endpoint,
  type HttpMethod,
  type UpstreamResponse,
  type VerifiedAccess,
} from '@registry-proxy/registry-core';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { Runtime } from '../runtime.js';
import type { SharedResponse } from '../coalesce.js';
import { Router, type Target } from '../routing.js';
import { sendContinue } from '../expect.js';
import { clientGone, sendError } from '../respond.js';
import { authorize } from '../authorize.js';
import { externalBase } from '../external-base.js';
import { serveCatalog } from './catalog.js';
import { relayTagList, rewriteLink } from './tags.js';

/** Response headers relayed from the upstream; everything else (cookies, hop-by-hop, server) stays behind. */
const RELAYED = [
  'content-type',
  'content-length',
  'docker-content-digest',
  'docker-upload-uuid',
  'range',
  'etag',
  'last-modified',
  'content-range',
  'accept-ranges',
  'retry-after',
  'cache-control',
  'oci-subject',
  'oci-filters-applied',
];
/** Request headers passed to the upstream. */
const FORWARDED = ['accept', 'range', 'if-none-match', 'if-match', 'if-range', 'if-modified-since', 'content-type', 'content-range'];
/** Registries refuse manifests above 4 MiB; the proxy reads them whole so they can be resent. */
const MAX_MANIFEST_BYTES = 4 << 20;

/** A registry host as containerd names it in `ns` (host, optional port). */
const REGISTRY_HOST = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::\d{1,5})?$/;

const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' };

type Action = 'pull' | 'push' | 'delete';
type RepoEndpoint = Exclude<Endpoint, { kind: 'base' } | { kind: 'catalog' }>;

/** The action a request needs, or UNSUPPORTED for a method the endpoint does not have. */
function actionFor(ep: RepoEndpoint, method: string): Action {
  const read = method === 'GET' || method === 'HEAD';
  switch (ep.kind) {
    case 'tags':
      if (read) return 'pull';
      break;
    case 'manifest':
      if (read) return 'pull';
      if (method === 'PUT') return 'push';
      if (method === 'DELETE') return 'delete';
      break;
    case 'blob':
      if (read) return 'pull';
      if (method === 'DELETE') return 'delete';
      break;
    case 'upload':
      if (ep.session === undefined ? method === 'POST' : ['GET', 'PATCH', 'PUT', 'DELETE'].includes(method)) return 'push';
      break;
  }
  throw new RegistryError('UNSUPPORTED', { message: `${method} is not supported on this endpoint` });
}

function tagsQuery(query: URLSearchParams): string {
  const q = new URLSearchParams();
  const n = query.get('n');
  const last = query.get('last');
  if (n !== null) {
    if (!/^\d{1,6}$/.test(n)) throw new RegistryError('PAGINATION_NUMBER_INVALID');
    q.set('n', n);
  }
  if (last !== null) q.set('last', last);
  return q.toString();
}

/** Maps an upstream failure to the registry error the client sees; never includes a secret. */
export function upstreamFailure(err: unknown): RegistryError | undefined {
  if (err instanceof UpstreamUnavailableError) {
    return err.kind === 'timeout'
      ? new RegistryError('UPSTREAM_TIMEOUT', { cause: err })
      : new RegistryError('BAD_GATEWAY', { message: `upstream registry unavailable: ${err.kind}`, cause: err });
  }
  if (err instanceof CredentialError) return new RegistryError('BAD_GATEWAY', { message: 'upstream credentials unavailable', cause: err });
  return undefined;
}

/**
 * Rewrites an upstream Location into the proxy's namespace: a URL on the upstream under the
 * repository's `/v2/<upstream name>/` becomes the same path under the client's name on the
 * proxy. Locations elsewhere (blob storage, a CDN) are passed on unchanged.
 */
export function rewriteLocation(location: string, upstreamUrl: URL, upstreamName: string, clientName: string, base: string, ns?: string): string {
  let u: URL;
  try {
    u = new URL(location, upstreamUrl);
  } catch {
    throw new RegistryError('BAD_GATEWAY', { message: 'upstream sent an invalid Location' });
  }
  const from = `/v2/${upstreamName}/`;
  if (u.origin !== upstreamUrl.origin || !u.pathname.startsWith(from)) return u.href;
  const q = new URLSearchParams(u.search);
  if (ns !== undefined) q.set('ns', ns);
  const search = q.toString();
  return `${base}/v2/${clientName}/${u.pathname.slice(from.length)}${search ? `?${search}` : ''}`;
}

/** What the proxy sends upstream for one client request. */
interface Plan {
  readonly method: HttpMethod;
  readonly path: string;
  readonly scope: string;
  readonly body?: Buffer | Readable;
}

/**
 * Reads a manifest body whole. Past the limit it stops reading and refuses with 413; the
 * unread rest is the error writer's to drop (see ../respond.ts). Listeners rather than
 * `for await`: leaving that loop would destroy the request, and with it the socket that the
 * 413 still has to travel on.
 */
function readManifest(req: Request): Promise<Buffer> {
  const tooLarge = () => new RegistryError('BODY_TOO_LARGE', { message: 'manifest larger than 4 MiB' });
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_MANIFEST_BYTES) return Promise.reject(tooLarge());
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
      if (size > MAX_MANIFEST_BYTES) stop(tooLarge());
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

function hasBody(req: Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

async function plan(runtime: Runtime, req: Request, ep: RepoEndpoint, action: Action, target: Target, who: VerifiedAccess, query: URLSearchParams): Promise<Plan> {
  const method = req.method as HttpMethod;
  const up = target.name;
  const scope = `repository:${up}:${action === 'push' ? 'pull,push' : action}`;
  if (ep.kind === 'manifest') {
    const path = `/v2/${up}/manifests/${ep.reference}`;
    return method === 'PUT' ? { method, path, scope, body: await readManifest(req) } : { method, path, scope };
  }
  if (ep.kind === 'blob') return { method, path: `/v2/${up}/blobs/${ep.digest}`, scope };
  if (ep.kind === 'tags') {
    const qs = tagsQuery(query);
    return { method, path: `/v2/${up}/tags/list${qs ? `?${qs}` : ''}`, scope };
  }
  // An upload: the upstream's own query (its _state, the digest) goes back to it as it is.
  const q = new URLSearchParams(query);
  q.delete('ns');
  let extraScope = '';
  if (method === 'POST') {
    const mount = q.get('mount');
    const from = q.get('from');
    q.delete('mount');
    q.delete('from');
    // A cross-repository mount needs pull on the source, on the same upstream; otherwise the
    // upload simply starts (202), which clients handle by uploading the blob.
    if (mount !== null && from !== null && isValidDigest(mount) && isValidRepositoryName(from) && grantsOn(who.access, Router.scopeName(from, target.ns), target.route.client.name, 'pull')) {
      const src = runtime.router.resolve(from, { host: req.host, ns: target.ns });
      if (src && src.route === target.route) {
        q.set('mount', mount);
        q.set('from', src.name);
        if (src.name !== up) extraScope = ` repository:${src.name}:pull`;
      }
    }
  }
  const search = q.toString();
  const path = `/v2/${up}/blobs/uploads/${ep.kind === 'upload' && ep.session !== undefined ? ep.session : ''}${search ? `?${search}` : ''}`;
  const body = method === 'PATCH' || method === 'PUT' || method === 'POST' ? (hasBody(req) ? req : Buffer.alloc(0)) : undefined;
  return { method, path, scope: scope + extraScope, ...(body ? { body } : {}) };
}

/** The `/v2` API: the base endpoint, the catalog, and repository endpoints relayed to the upstream that owns the name. */
export function registryHandler(runtime: Runtime, metrics: Metrics, logger: Logger) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const head = req.method === 'HEAD';
    try {
      const ep = parseApiPath(req.path);
      res.locals['route'] = ep.kind;
      if (ep.kind === 'base') {
        if (req.method !== 'GET' && !head) throw new RegistryError('UNSUPPORTED');
        await authorize(runtime, req, undefined);
        res.set(API_VERSION).type('application/json').send('{}');
        return;
      }
      // Most requests carry no query: parse one only when there is one (this runs per request).
      const q = req.originalUrl.indexOf('?');
      const query = new URLSearchParams(q < 0 ? '' : req.originalUrl.slice(q + 1));
      if (ep.kind === 'catalog') {
        if (req.method !== 'GET') throw new RegistryError('UNSUPPORTED');
        await serveCatalog(runtime, req, res, query, logger);
        return;
      }
      const action = actionFor(ep, req.method);
      res.locals['repository'] = ep.name;
      const ns = query.get('ns') ?? undefined;
      if (ns !== undefined && !REGISTRY_HOST.test(ns)) throw new RegistryError('NAME_INVALID', { message: 'ns is not a registry host' });
      // The scope names the registry of a mirror request, so the token is granted on its upstream.
      const scopeName = Router.scopeName(ep.name, ns);
      const scope = `repository:${scopeName}:${action === 'push' ? 'pull,push' : action}`;
      const target = runtime.router.resolve(ep.name, { host: req.host, ns });
      // A name no upstream serves is told only to a caller with a valid token (a 404 before
      // the 401 would let anyone probe the routes).
      if (!target) {
        await authorize(runtime, req, scope);
        throw new RegistryError('NAME_UNKNOWN', { message: ns === undefined ? 'no upstream serves this repository' : `no upstream mirrors ${ns}` });
      }
      res.locals['upstream'] = target.route.client.name;
      const who = await authorize(runtime, req, scope, 'repository', scopeName, action, target.route.client.name);
      // Authorized: only now may a client waiting on `Expect: 100-continue` send its body.
      sendContinue(req, res);
      await relay(req, res, ep, await plan(runtime, req, ep, action, target, who, query), target, externalBase(runtime, req), metrics, logger);
    } catch (err) {
      if (clientGone(req, res)) {
        // The client left while the upstream was answering: nobody to tell.
        logger.debug({ err, repository: res.locals['repository'] }, 'client went away');
        return;
      }
      const regErr = err instanceof RegistryError ? err : upstreamFailure(err);
      if (!regErr) return next(err);
      if (regErr.status >= 500) logger.warn({ err: regErr.cause ?? regErr, req_id: res.locals['req_id'], repository: res.locals['repository'] }, regErr.message);
      sendError(req, res, regErr, head);
    }
  };
}

const EMPTY = Buffer.alloc(0);

/**
 * Fetches a manifest for every client of a flight (see ../coalesce.ts): the body is read whole
 * (registries cap manifests at 4 MiB); undefined when it is larger, and each client then fetches
 * its own. No client's AbortSignal is attached: the flight answers whoever is still waiting.
 */
async function fetchShared(client: Target['route']['client'], p: Plan, headers: Record<string, string>, metrics: Metrics): Promise<SharedResponse | undefined> {
  const started = process.hrtime.bigint();
  const up = await client.request({ method: p.method, path: p.path, headers, scope: p.scope });
  metrics.upstreamLatency.observe({ upstream: client.name, status: String(up.statusCode) }, Number(process.hrtime.bigint() - started) / 1e9);
  const answer = (body: Buffer) => ({ statusCode: up.statusCode, headers: up.headers, url: up.url, body });
  if (p.method === 'HEAD' || up.statusCode === 401) {
    await up.body.dump();
    return answer(EMPTY);
  }
  if (Number(up.headers['content-length']) > MAX_MANIFEST_BYTES) {
    await up.body.dump();
    return undefined;
  }
  try {
    const body = await up.body.bytes(MAX_MANIFEST_BYTES);
    metrics.upstreamBytes.inc({ upstream: client.name }, body.length);
    return answer(body);
  } catch (err) {
    if (err instanceof BodyTooLargeError) return undefined;
    throw new RegistryError('BAD_GATEWAY', { message: 'upstream registry failed while sending the manifest', cause: err });
  }
}

/** Status line and headers of an upstream answer, in the proxy's namespace. */
function relayHead(res: Response, ep: RepoEndpoint, target: Target, base: string, up: Pick<UpstreamResponse, 'statusCode' | 'headers' | 'url'>): void {
  if (up.statusCode === 401) throw new RegistryError('BAD_GATEWAY', { message: "upstream registry refused the proxy's credentials" });
  res.status(up.statusCode);
  for (const h of RELAYED) {
    const v = up.headers[h];
    if (v !== undefined) res.setHeader(h, v);
  }
  const location = up.headers['location'];
  if (typeof location === 'string') res.setHeader('Location', rewriteLocation(location, up.url, target.name, ep.name, base, target.ns));
  if (target.ns !== undefined) res.setHeader('OCI-Namespace', target.ns);
  res.set(API_VERSION);
}

async function relay(req: Request, res: Response, ep: RepoEndpoint, p: Plan, target: Target, base: string, metrics: Metrics, logger: Logger): Promise<void> {
  const headers: Record<string, string> = {};
  for (const h of FORWARDED) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  const client = target.route.client;
  let cached: UpstreamResponse | undefined;
  const cache = target.route.cache;
  if (cache !== undefined && (ep.kind === 'blob' || ep.kind === 'manifest') && (p.method === 'GET' || p.method === 'HEAD')) {
    const extra: Record<string, string> = { ...API_VERSION, ...(target.ns !== undefined ? { 'OCI-Namespace': target.ns } : {}) };
    const out = await cache.serve({ method: p.method, kind: ep.kind, repository: target.name, reference: ep.kind === 'blob' ? ep.digest : ep.reference, path: p.path, scope: p.scope, headers, extra, res, metrics, logger });
    if (out.served) return;
    cached = out.response;
  }
  const flights = target.route.flights;
  if (cached === undefined && flights !== undefined && ep.kind === 'manifest' && (p.method === 'GET' || p.method === 'HEAD')) {
    // Identical manifest requests share upstream requests; the client's own name and Host
    // only shape the Location and namespace headers, which are written per client below.
    const key = `${client.name} ${p.method} ${p.path}\n${FORWARDED.map((h) => headers[h] ?? '').join('\n')}`;
    let mine = false;
    const shared = await flights.run(key, () => {
      mine = true;
      return fetchShared(client, p, headers, metrics);
    });
    if (!mine) metrics.coalesced.inc({ upstream: client.name });
    if (shared !== undefined) {
      if (res.destroyed) return; // the client left while it waited
      relayHead(res, ep, target, base, shared);
      res.end(p.method === 'HEAD' ? undefined : shared.body);
      return;
    }
  }
  if (p.body !== undefined && !Buffer.isBuffer(p.body) && typeof req.headers['content-length'] === 'string') headers['content-length'] = req.headers['content-length'];
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort(new Error('client went away'));
  };
  res.once('close', onClose);
  const started = process.hrtime.bigint();
  let up: UpstreamResponse;
  try {
    up = cached ?? (await client.request({ method: p.method, path: p.path, headers, scope: p.scope, signal: abort.signal, ...(p.body !== undefined ? { body: p.body } : {}) }));
  } finally {
    // Past the response headers, a client that leaves is handled by destroying the body.
    res.off('close', onClose);
  }
  if (cached === undefined) metrics.upstreamLatency.observe({ upstream: client.name, status: String(up.statusCode) }, Number(process.hrtime.bigint() - started) / 1e9);

  if (up.statusCode === 401) await up.body.dump();
  relayHead(res, ep, target, base, up);
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
  // The upstream's Content-Length is relayed only when it frames the body (the transport refuses
  // a response that has it beside Transfer-Encoding): Node then holds the relay to it.
  res.strictContentLength = true;
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
