import type { ServerResponse } from 'node:http';
import { RegistryError, type UpstreamResponse } from '@registry-proxy/registry-core';
import { sendJson } from '../respond.js';

const MAX_TAG_LIST_BYTES = 16 * 1024 * 1024;

/** Rewrites a tag-list `Link` header from the upstream's repository name to the proxy's. */
export function rewriteLink(link: string, upstreamName: string, proxyName: string): string {
  const from = `/v2/${upstreamName}/tags/list`;
  return link.replace(/<([^>]*)>/g, (whole, url: string) => {
    try {
      const u = new URL(url, 'http://upstream.invalid');
      if (u.pathname !== from) return whole;
      return `</v2/${proxyName}/tags/list${u.search}>`;
    } catch {
      return whole;
    }
  });
}

/** Relays a tag list with its `name` changed to the proxy's repository name (the body is small JSON). */
export async function relayTagList(body: UpstreamResponse['body'], res: ServerResponse, proxyName: string): Promise<void> {
  let parsed: { name?: unknown; tags?: unknown };
  try {
    parsed = JSON.parse(await body.text(MAX_TAG_LIST_BYTES)) as typeof parsed;
  } catch (cause) {
    throw new RegistryError('BAD_GATEWAY', { message: 'upstream sent an unreadable tag list', cause });
  }
  const out = JSON.stringify({ name: proxyName, tags: Array.isArray(parsed.tags) ? parsed.tags : [] });
  res.removeHeader('content-length');
  sendJson(res, res.statusCode, out);
}
