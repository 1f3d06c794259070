import type { IncomingMessage } from 'node:http';
import {
  CredentialError,
  disposableChunks,
  isValidDigest,
  isValidRepositoryName,
  RegistryError,
  UpstreamUnavailableError,
  grantsOn,
  parseApiPath,
  type HttpMethod,
  type VerifiedAccess,
} from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { Call } from '../call.js';
import type { Runtime } from '../runtime.js';
import { Router, type Target } from '../routing.js';
import { sendContinue } from '../expect.js';
import { clientGone, sendError, sendJson } from '../respond.js';
import { authorize } from '../authorize.js';
import { readBody } from '../read-body.js';
import { externalBase } from '../external-base.js';
import { serveCatalog } from './catalog.js';
import { MAX_MANIFEST_BYTES, relay, type Plan, type RepoEndpoint } from './relay.js';

export { rewriteLocation } from './relay.js';

/** A registry host as containerd names it in `ns` (host, optional port). */
const REGISTRY_HOST = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::\d{1,5})?$/;

const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' } as const;

/** The query of every request that has none; only read (plan() copies a query before it changes one). */
const NO_QUERY = new URLSearchParams();

type Action = 'pull' | 'push' | 'delete';

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
    return err.kind === 'timeout' ? new RegistryError('UPSTREAM_TIMEOUT', { cause: err }) : new RegistryError('BAD_GATEWAY', { message: `upstream registry unavailable: ${err.kind}`, cause: err });
  }
  if (err instanceof CredentialError) return new RegistryError('BAD_GATEWAY', { message: 'upstream credentials unavailable', cause: err });
  return undefined;
}

/** A manifest (at most 4 MiB) from a client allowed to push: 30 s between chunks, 5 minutes in all. */
const MANIFEST_DEADLINES = { totalMs: 300_000, idleMs: 30_000 };

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

async function plan(runtime: Runtime, call: Call, ep: RepoEndpoint, action: Action, target: Target, who: VerifiedAccess, query: URLSearchParams): Promise<Plan> {
  const req = call.req;
  const method = call.method as HttpMethod;
  const up = target.name;
  const scope = `repository:${up}:${action === 'push' ? 'pull,push' : action}`;
  if (ep.kind === 'manifest') {
    const path = `/v2/${up}/manifests/${ep.reference}`;
    return method === 'PUT' ? { method, path, scope, body: await readBody(req, MAX_MANIFEST_BYTES, 'manifest larger than 4 MiB', MANIFEST_DEADLINES) } : { method, path, scope };
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
      const src = runtime.router.resolve(from, { host: call.host, ns: target.ns });
      if (src && src.route === target.route) {
        q.set('mount', mount);
        q.set('from', src.name);
        if (src.name !== up) extraScope = ` repository:${src.name}:pull`;
      }
    }
  }
  const search = q.toString();
  const path = `/v2/${up}/blobs/uploads/${ep.kind === 'upload' && ep.session !== undefined ? ep.session : ''}${search ? `?${search}` : ''}`;
  const body = method === 'PATCH' || method === 'PUT' || method === 'POST' ? (hasBody(req) ? disposableChunks(req) : Buffer.alloc(0)) : undefined;
  return { method, path, scope: scope + extraScope, ...(body ? { body } : {}) };
}

/**
 * The `/v2` API: the base endpoint, the catalog, and repository endpoints relayed to the
 * upstream that owns the name. It answers every failure itself, in the registry's error
 * format, and never rejects: nothing above it would catch the rejection.
 */
export function registryHandler(runtime: Runtime, metrics: Metrics, logger: Logger) {
  return async (call: Call, reqId: string): Promise<void> => {
    const { req, res, notes } = call;
    const head = call.method === 'HEAD';
    try {
      const ep = parseApiPath(call.path);
      notes.route = ep.kind;
      if (ep.kind === 'base') {
        if (call.method !== 'GET' && !head) throw new RegistryError('UNSUPPORTED');
        await authorize(runtime, call, undefined);
        sendJson(res, 200, '{}', API_VERSION);
        return;
      }
      // Most requests carry no query: parse one only when there is one (this runs per request;
      // an empty URLSearchParams cost 2,800 instructions). NO_QUERY is shared: read it, never change it.
      const query = call.search === '' ? NO_QUERY : new URLSearchParams(call.search);
      if (ep.kind === 'catalog') {
        if (call.method !== 'GET') throw new RegistryError('UNSUPPORTED');
        await serveCatalog(runtime, call, query, logger);
        return;
      }
      const action = actionFor(ep, call.method);
      notes.repository = ep.name;
      const ns = query.get('ns') ?? undefined;
      if (ns !== undefined && !REGISTRY_HOST.test(ns)) throw new RegistryError('NAME_INVALID', { message: 'ns is not a registry host' });
      // The scope names the registry of a mirror request, so the token is granted on its upstream.
      const scopeName = Router.scopeName(ep.name, ns);
      const scope = `repository:${scopeName}:${action === 'push' ? 'pull,push' : action}`;
      const target = runtime.router.resolve(ep.name, { host: call.host, ns });
      // A name no upstream serves is told only to a caller with a valid token (a 404 before
      // the 401 would let anyone probe the routes).
      if (!target) {
        await authorize(runtime, call, scope);
        throw new RegistryError('NAME_UNKNOWN', { message: ns === undefined ? 'no upstream serves this repository' : `no upstream mirrors ${ns}` });
      }
      notes.upstream = target.route.client.name;
      const who = await authorize(runtime, call, scope, 'repository', scopeName, action, target.route.client.name);
      // Authorized: only now may a client waiting on `Expect: 100-continue` send its body.
      sendContinue(req, res);
      await relay(call, ep, await plan(runtime, call, ep, action, target, who, query), target, externalBase(runtime, call), metrics, logger);
    } catch (err) {
      if (clientGone(req, res)) {
        // The client left while the upstream was answering: nobody to tell.
        logger.debug({ err, repository: notes.repository }, 'client went away');
        return;
      }
      const regErr = err instanceof RegistryError ? err : upstreamFailure(err);
      if (regErr) {
        if (regErr.status >= 500) logger.warn({ err: regErr.cause ?? regErr, req_id: reqId, repository: notes.repository }, regErr.message);
        sendError(req, res, regErr, head);
        return;
      }
      // A bug, not a client's or an upstream's fault: logged whole, answered without its details.
      logger.error({ err, req_id: reqId }, 'unhandled error');
      if (res.headersSent) res.destroy();
      else sendError(req, res, new RegistryError('UNKNOWN'), head);
    }
  };
}
