#!/usr/bin/env node
// A lower floor than bare-relay.mjs, for `BENCH_BASELINE=tools/bench/raw-relay.mjs BENCH_ONLY=head
// node tools/bench/run.mjs`: the same relay through the project's own UpstreamClient, but
// behind a plain net.Server that finds the request line and the Accept header by hand instead
// of node:http (no IncomingMessage, no ServerResponse, no llhttp). It answers what the bench
// sends (GET/HEAD without a body, one request at a time per connection, keep-alive) and nothing
// else. What it measures: how much of a HEAD's CPU is node:http's server side, i.e. how low a
// Node process could go on this hot path with an HTTP/1.1 server of its own.
// With RAW_UPSTREAM=1 the upstream side is raw too: one keep-alive socket to the upstream per
// client connection, the request written as one string, the answer's head found by hand (HEADs
// only): the floor of any Node relay, two reads and two writes per request and almost no JS.
// Not a product: it checks nothing, parses almost nothing and must never face a network.
import { connect, createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { anonymousProvider, UpstreamClient } from '../../libs/registry-core/dist/index.js';

const config = YAML.parse(readFileSync(process.argv[process.argv.indexOf('--config') + 1], 'utf8'));
const client = new UpstreamClient({ name: 'raw', url: config.upstreams[0].url, retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 }, credentials: anonymousProvider });
const RELAYED = ['content-type', 'content-length', 'docker-content-digest', 'etag'];
const TOKEN = '{"token":"bare","access_token":"bare"}';

/** RAW_UPSTREAM=1: a HEAD over this connection's own upstream socket; resolves to the relayed head. */
function rawUpstream() {
  const u = new URL(config.upstreams[0].url);
  const socket = connect({ host: u.hostname, port: Number(u.port), noDelay: true });
  socket.setEncoding('latin1');
  let got = '';
  let waiting;
  socket.on('data', (s) => {
    got += s;
    const end = got.indexOf('\r\n\r\n');
    if (end < 0 || !waiting) return;
    const head = got.slice(0, end + 4);
    got = got.slice(end + 4);
    const w = waiting;
    waiting = undefined;
    w(head);
  });
  return (method, target, accept) =>
    new Promise((resolve) => {
      waiting = (head) => {
        const status = head.slice(9, 12);
        let out = `HTTP/1.1 ${status} X\r\n`;
        for (const h of RELAYED) {
          const m = new RegExp(`\r\n${h}: *([^\r]*)`, 'i').exec(head);
          if (m) out += `${h}: ${m[1]}\r\n`;
        }
        resolve(`${out}\r\n`);
      };
      socket.write(`${method} ${target} HTTP/1.1\r\nhost: ${u.host}\r\naccept: ${accept}\r\n\r\n`, 'latin1');
    });
}

async function answer(head, raw) {
  const lineEnd = head.indexOf('\r\n');
  const [method, target] = head.slice(0, lineEnd).split(' ');
  if (target.startsWith('/token') || target === '/healthz') {
    const body = method === 'HEAD' ? '' : TOKEN;
    return `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${TOKEN.length}\r\n\r\n${body}`;
  }
  const m = /\r\naccept: *([^\r]*)/i.exec(head);
  if (raw && method === 'HEAD') return raw(method, target, m ? m[1] : '*/*');
  try {
    const up = await client.request({ method, path: target, headers: { accept: m ? m[1] : '*/*' } });
    let out = `HTTP/1.1 ${up.statusCode} X\r\n`;
    for (const h of RELAYED) if (up.headers[h] !== undefined) out += `${h}: ${up.headers[h]}\r\n`;
    await up.body.dump();
    if (method !== 'HEAD' && up.headers['content-length'] !== '0') return `${out}connection: close\r\ncontent-length: 0\r\n\r\n`; // bodies are not this floor's business
    return `${out}\r\n`;
  } catch (err) {
    if (process.env.BARE_DEBUG) console.error(err);
    return 'HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n';
  }
}

createServer({ noDelay: true }, (socket) => {
  let pending = '';
  let busy = false;
  const raw = process.env.RAW_UPSTREAM === '1' ? rawUpstream() : undefined;
  const next = async () => {
    if (busy) return;
    busy = true;
    for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
      const head = pending.slice(0, end + 2);
      pending = pending.slice(end + 4);
      socket.write(await answer(head, raw), 'latin1');
    }
    busy = false;
  };
  socket.setEncoding('latin1');
  socket.on('data', (s) => {
    pending += s;
    void next();
  });
  socket.on('error', () => socket.destroy());
}).listen(config.listen.port, config.listen.host);
