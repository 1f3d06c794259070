import type { ServerResponse } from 'node:http';
import { BodyTooLargeError, Cancel, RegistryError, type Endpoint, type HttpMethod, type UpstreamResponse } from '@registry-proxy/registry-core';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Call } from '../call.js';
import type { Metrics } from '../metrics.js';
import type { SharedResponse } from '../coalesce.js';
import type { Target } from '../routing.js';
import { relayTagList, rewriteLink } from './tags.js';

/**
 * The relay: one client request on a repository endpoint, sent to the upstream that owns it
 * (or answered from its cache, or from a coalesced flight), and the answer written back in the
 * proxy's namespace. This runs for every /v2 request the proxy forwards, so it writes the
 * response head with Node's own writeHead and a flat header list (docs/benchmarks.md, the hot path).
 */

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
export const FORWARDED = ['accept', 'range', 'if-none-match', 'if-match', 'if-range', 'if-modified-since', 'content-type', 'content-range'];
/** Registries refuse manifests above 4 MiB; the proxy reads them whole so they can be resent. */
export const MAX_MANIFEST_BYTES = 4 << 20;

export type RepoEndpoint = Exclude<Endpoint, { kind: 'base' } | { kind: 'catalog' }>;

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
export interface Plan {
  readonly method: HttpMethod;
  readonly path: string;
  readonly scope: string;
  readonly body?: Buffer | Readable;
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
  metrics.observeUpstream(client.name, up.statusCode, started);
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

/**
 * The headers of an upstream answer in the proxy's namespace, as a flat name, value list; throws
 * the 502 for an upstream that refused the proxy's credentials.
 */
function relayedHeaders(ep: RepoEndpoint, target: Target, base: string, up: Pick<UpstreamResponse, 'statusCode' | 'headers' | 'url'>): Array<string | string[]> {
  if (up.statusCode === 401) throw new RegistryError('BAD_GATEWAY', { message: "upstream registry refused the proxy's credentials" });
  const head: Array<string | string[]> = [];
  for (const h of RELAYED) {
    const v = up.headers[h];
    if (v !== undefined) head.push(h, v);
  }
  const location = up.headers['location'];
  if (typeof location === 'string') head.push('Location', rewriteLocation(location, up.url, target.name, ep.name, base, target.ns));
  if (target.ns !== undefined) head.push('OCI-Namespace', target.ns);
  head.push('Docker-Distribution-API-Version', 'registry/2.0');
  return head;
}

/**
 * Status line and headers of an upstream answer, in the proxy's namespace, in one writeHead
 * with a flat list: Node then writes them without building its header map (one setHeader per
 * header was a measurable part of a relayed HEAD). Nothing may set a header on `res` after this.
 */
function relayHead(res: ServerResponse, ep: RepoEndpoint, target: Target, base: string, up: Pick<UpstreamResponse, 'statusCode' | 'headers' | 'url'>): void {
  res.writeHead(up.statusCode, relayedHeaders(ep, target, base, up));
}

export async function relay(call: Call, ep: RepoEndpoint, p: Plan, target: Target, base: string, metrics: Metrics, logger: Logger): Promise<void> {
  const { req, res } = call;
  const headers: Record<string, string> = {};
  for (const h of FORWARDED) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  const client = target.route.client;
  let cached: UpstreamResponse | undefined;
  const cache = target.route.cache;
  if (cache !== undefined && (ep.kind === 'blob' || ep.kind === 'manifest') && (p.method === 'GET' || p.method === 'HEAD')) {
    const extra: Record<string, string> = { 'Docker-Distribution-API-Version': 'registry/2.0', ...(target.ns !== undefined ? { 'OCI-Namespace': target.ns } : {}) };
    const out = await cache.serve({
      method: p.method,
      kind: ep.kind,
      repository: target.name,
      reference: ep.kind === 'blob' ? ep.digest : ep.reference,
      path: p.path,
      scope: p.scope,
      headers,
      extra,
      res,
      metrics,
      logger,
    });
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
  // A Cancel, not an AbortController: this runs per request, and an AbortController with a
  // listener cost a tenth of a relayed HEAD (registry-core's upstream/cancel.ts).
  const gone = new Cancel();
  const onClose = () => {
    if (!res.writableFinished) gone.abort(new Error('client went away'));
  };
  res.on('close', onClose);
  const started = process.hrtime.bigint();
  let up: UpstreamResponse;
  try {
    up = cached ?? (await client.request({ method: p.method, path: p.path, headers, scope: p.scope, signal: gone, ...(p.body !== undefined ? { body: p.body } : {}) }));
  } finally {
    // Past the response headers, a client that leaves is handled by destroying the body.
    res.off('close', onClose);
  }
  if (cached === undefined) metrics.observeUpstream(client.name, up.statusCode, started);

  if (up.statusCode === 401) await up.body.dump();
  if (ep.kind === 'tags' && up.statusCode === 200 && req.method === 'GET') {
    // The tag list's Link joins the relayed headers, which are set one by one here.
    const head = relayedHeaders(ep, target, base, up);
    res.statusCode = up.statusCode;
    for (let i = 0; i < head.length; i += 2) res.setHeader(head[i] as string, head[i + 1] as string | string[]);
    const link = up.headers['link'];
    if (typeof link === 'string') res.setHeader('Link', rewriteLink(link, target.name, ep.name));
    await relayTagList(up.body, res, ep.name);
    return;
  }
  relayHead(res, ep, target, base, up);
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
