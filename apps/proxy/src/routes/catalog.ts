import { RegistryError, isValidRepositoryName } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Route } from '../routing.js';
import type { Runtime } from '../runtime.js';
import { authorize } from '../authorize.js';
import type { Call } from '../call.js';
import { sendJson } from '../respond.js';

const PAGE = 1000;
const MAX_PAGES = 100;
const CACHE_MS = 30_000;
const MAX_LIST_BYTES = 16 << 20;

const cache = new WeakMap<Route, { at: number; names: Promise<string[]> }>();

/** Reads an upstream's whole catalog, page by page (bounded). */
async function fetchCatalog(route: Route): Promise<string[]> {
  const names: string[] = [];
  let last: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const q = new URLSearchParams({ n: String(PAGE) });
    if (last !== undefined) q.set('last', last);
    const up = await route.client.request({ method: 'GET', path: `/v2/_catalog?${q}`, scope: 'registry:catalog:*' });
    if (up.statusCode !== 200) {
      await up.body.dump();
      throw new Error(`upstream ${route.client.name} answered ${up.statusCode} to a catalog request`);
    }
    const parsed = JSON.parse(await up.body.text(MAX_LIST_BYTES)) as { repositories?: unknown };
    const repos = Array.isArray(parsed.repositories) ? parsed.repositories.filter((r): r is string => typeof r === 'string' && isValidRepositoryName(r)) : [];
    names.push(...repos);
    const link = up.headers['link'];
    const url = typeof link === 'string' ? /<([^>]*)>\s*;\s*rel="?next"?/.exec(link)?.[1] : undefined;
    const next = url === undefined ? null : new URL(url, 'http://upstream.invalid').searchParams.get('last');
    if (next === null || next === last || repos.length === 0) break;
    last = next;
  }
  return names;
}

function upstreamCatalog(route: Route): Promise<string[]> {
  const hit = cache.get(route);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.names;
  const names = fetchCatalog(route);
  cache.set(route, { at: Date.now(), names });
  names.catch(() => cache.delete(route)); // a failure is not remembered
  return names;
}

/**
 * `GET /v2/_catalog`: the repositories of every upstream that serves this host, under the names
 * clients use, limited to those the caller may pull, sorted, with `n`/`last` pagination and a
 * `Link` to the next page. Upstreams that cannot list (Docker Hub, for one) are left out.
 */
export async function serveCatalog(runtime: Runtime, call: Call, query: URLSearchParams, logger: Logger): Promise<void> {
  const scope = 'registry:catalog:*';
  const who = await authorize(runtime, call, scope, 'registry', 'catalog', '*');
  const identity = who.identity;
  if (identity === undefined) throw new Error('authorize() let the catalog through without an identity'); // unreachable: narrows the type
  const rawN = query.get('n');
  if (rawN !== null && !/^\d{1,6}$/.test(rawN)) throw new RegistryError('PAGINATION_NUMBER_INVALID');
  const n = rawN === null ? PAGE : Math.min(Number(rawN), PAGE * 10);
  const last = query.get('last') ?? '';

  const names = new Set<string>();
  const host = call.host;
  await Promise.all(
    runtime.router.forHost(host).map(async (route) => {
      let upstreamNames: string[];
      try {
        upstreamNames = await upstreamCatalog(route);
      } catch (err) {
        logger.warn({ err: { message: (err as Error).message }, upstream: route.client.name }, 'upstream catalog unavailable; left out');
        return;
      }
      for (const u of upstreamNames) {
        const name = runtime.router.clientName(route, u, host);
        if (name === undefined) continue;
        const actions = runtime.rules.allowedActions(identity, name, host, route.client.name);
        if (actions.includes('pull') || actions.includes('*')) names.add(name);
      }
    }),
  );
  const sorted = [...names].filter((x) => x > last).sort();
  const page = sorted.slice(0, n);
  if (sorted.length > n && page.length > 0) {
    call.res.setHeader('Link', `</v2/_catalog?${new URLSearchParams({ last: page[page.length - 1] as string, n: String(n) })}>; rel="next"`);
  }
  sendJson(call.res, 200, JSON.stringify({ repositories: page }), { 'Docker-Distribution-API-Version': 'registry/2.0' });
}
