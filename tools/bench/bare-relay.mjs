#!/usr/bin/env node
// The floor of the /v2 hot path, for `BENCH_BASELINE=tools/bench/bare-relay.mjs npm run bench`:
// a node:http server that relays every /v2 request to the first upstream of the proxy's
// configuration through the project's own UpstreamClient (the transport, retry and auth
// layers, no credentials), and nothing else: no authorization, no routing, no log line, no
// metrics, no coalescing. /token answers a fixed dummy token so the bench can run it as it
// runs a proxy. What the proxy spends above this is the cost of its own per-request work.
// Not a product: it checks nothing and must never face a network.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { anonymousProvider, UpstreamClient } from '../../libs/registry-core/dist/index.js';

const config = YAML.parse(readFileSync(process.argv[process.argv.indexOf('--config') + 1], 'utf8'));
const client = new UpstreamClient({ name: 'bare', url: config.upstreams[0].url, retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 }, credentials: anonymousProvider });
const RELAYED = ['content-type', 'content-length', 'docker-content-digest', 'etag'];

createServer(async (req, res) => {
  if (req.url.startsWith('/token') || req.url === '/healthz') {
    res.setHeader('content-type', 'application/json');
    res.end('{"token":"bare","access_token":"bare"}');
    return;
  }
  try {
    const up = await client.request({ method: req.method, path: req.url, headers: { accept: req.headers.accept ?? '*/*' } });
    res.statusCode = up.statusCode;
    for (const h of RELAYED) if (up.headers[h] !== undefined) res.setHeader(h, up.headers[h]);
    res.end();
    await up.body.dump();
  } catch (err) {
    if (process.env.BARE_DEBUG) console.error(err);
    res.statusCode = 502;
    res.end();
  }
}).listen(config.listen.port, config.listen.host);
