import type { Response } from 'express';
import type { UpstreamResponse } from '@registry-proxy/registry-core';

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
export async function relayTagList(body: UpstreamResponse['body'], res: Response, proxyName: string): Promise<void> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_TAG_LIST_BYTES) {
      body.destroy();
      throw new Error('tag list too large');
    }
    chunks.push(chunk);
  }
  const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { name?: unknown; tags?: unknown };
  const out = JSON.stringify({ name: proxyName, tags: Array.isArray(parsed.tags) ? parsed.tags : [] });
  res.removeHeader('content-length');
  res.type('application/json').send(out);
}
