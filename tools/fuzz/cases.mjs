// The request fuzzer's generator and runner (issue 11, "prove it"): seeded, so a failing case
// can be replayed by its number. Used by tools/fuzz/requests.mjs (100,000 cases against the
// built proxy) and by apps/proxy/test/fuzz.e2e.test.ts (a few thousand in the test suite).
// Every case is one TCP connection with raw bytes, so the framing itself can be wrong.
import { connect } from 'node:net';

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (list) => list[int(list.length)];
  const chance = (p) => next() < p;
  const bytes = (n) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  return { next, int, pick, chance, bytes };
}

/** The codes of the registry error table (libs/registry-core/src/errors.ts); docker-registry uses the same. */
export const REGISTRY_CODES = new Set([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'TAG_INVALID',
  'PAGINATION_NUMBER_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
  'UNKNOWN',
  'BAD_GATEWAY',
  'UNAVAILABLE',
  // distribution's own additions, relayed from docker-registry as they are
  'MANIFEST_UNVERIFIED',
  'RANGE_INVALID',
]);

const DIGEST = `sha256:${'0'.repeat(64)}`;
const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'get', 'PROPFIND', 'X'.repeat(40)];

function path(r, ctx) {
  const repo = r.pick([
    'team/app',
    'push/fuzz',
    'secret/app',
    'mirror/app',
    'app',
    'a',
    'x/'.repeat(r.int(60)) + 'y',
    '..',
    'team/../secret/app',
    '%2e%2e/x',
    'Team/App',
    'team//app',
    'a'.repeat(300),
    'ü/ñ',
    'team/app%00',
    '_catalog',
  ]);
  const ref = r.pick(['v1', 'latest', ctx.manifestDigest, DIGEST, 'sha256:xyz', 'a'.repeat(200), '', '..', '%20', 'v1?x=1']);
  const query = r.chance(0.3)
    ? `?${r.pick(['ns=quay.localtest', 'ns=ghcr.io', 'ns=', 'ns=%0d%0a', 'ns=a b', 'n=2', 'n=-1', 'n=99999999', 'last=zz', 'mount=' + ctx.blobDigest + '&from=team/app', 'mount=x&from=../..', 'digest=' + DIGEST, '_state=abc', 'scope=repository:team/app:pull&service=registry-proxy', 'a=' + 'b'.repeat(5000), '%', '&&&', 'ns=quay.localtest&ns=ghcr.io'])}`
    : '';
  const p = r.pick([
    '/v2/',
    '/v2',
    '/v2/_catalog',
    `/v2/${repo}/manifests/${ref}`,
    `/v2/${repo}/blobs/${r.pick([ctx.blobDigest, DIGEST, 'sha256:0', 'x'])}`,
    `/v2/${repo}/tags/list`,
    `/v2/${repo}/blobs/uploads/`,
    `/v2/${repo}/blobs/uploads/${r.pick(['0123-abcd', '..', 'a'.repeat(100), '%2f'])}`,
    '/token',
    '/token/',
    '/jwks',
    '/.well-known/jwks.json',
    '/healthz',
    '/readyz',
    '/',
    '/v1/',
    '//v2//',
    '/v2/../token',
    `/v2/${'%'.repeat(r.int(5))}`,
    '*',
    'http://evil.example/v2/',
    '/v2/' + 'a/'.repeat(2000),
  ]);
  return p + query;
}

function authorization(r, ctx) {
  const t = ctx.tokens;
  return r.pick([
    undefined,
    undefined,
    `Bearer ${t.pull}`,
    `Bearer ${t.pull}`,
    `Bearer ${t.push}`,
    `Bearer ${t.mirror}`,
    `Bearer ${t.otherHost}`,
    `Bearer ${t.expired}`,
    `Bearer ${t.foreignKey}`,
    `Bearer ${t.unsigned}`,
    `Bearer ${t.pull.slice(0, -3)}abc`,
    `Bearer ${t.pull.slice(0, 40)}`,
    'Bearer',
    'Bearer ' + 'a'.repeat(9000),
    `bearer ${t.pull}`,
    `Bearer ${t.pull} ${t.push}`,
    `Basic ${Buffer.from(`${ctx.user}:${ctx.password}`).toString('base64')}`,
    `Basic ${Buffer.from('alice:wrong').toString('base64')}`,
    'Basic !!!!',
    'Basic ' + Buffer.from('nocolon').toString('base64'),
    'Digest username="x"',
    '\u00ff\u00fe',
  ]);
}

function tokenQuery(r) {
  const scope = r.pick([
    'repository:team/app:pull',
    'repository:push/fuzz:pull,push',
    'repository:quay.localtest/team/app:pull',
    'registry:catalog:*',
    'repository::pull',
    'repository:a:',
    'x',
    'repository:team/app:pull,push,delete,*',
    'repository:' + 'a'.repeat(500) + ':pull',
  ]);
  return `?${r.pick(['service=registry-proxy&', 'service=other&', ''])}scope=${encodeURIComponent(scope)}${r.chance(0.2) ? '&offline_token=true' : ''}${r.chance(0.1) ? '&scope=' + encodeURIComponent(scope) : ''}`;
}

function tokenForm(r, ctx) {
  return r.pick([
    `grant_type=password&username=${ctx.user}&password=${ctx.password}&service=registry-proxy&scope=repository:team/app:pull`,
    `grant_type=password&username=${ctx.user}&password=wrong&service=registry-proxy`,
    `grant_type=refresh_token&refresh_token=${ctx.tokens.pull}&service=registry-proxy`,
    `grant_type=refresh_token&refresh_token=garbage`,
    'grant_type=client_credentials',
    'grant_type=password&username=&password=',
    '%%%=%%%',
    'a=' + 'b'.repeat(70_000),
    Array.from({ length: 150 }, (_, i) => `k${i}=v`).join('&'),
    '',
  ]);
}

function body(r, method, p, ctx) {
  if (p.startsWith('/token')) return method === 'POST' ? Buffer.from(tokenForm(r, ctx)) : Buffer.alloc(0);
  if (!['PUT', 'POST', 'PATCH'].includes(method) && !r.chance(0.05)) return Buffer.alloc(0);
  return r.pick([
    () => Buffer.alloc(0),
    () => Buffer.from('{"schemaVersion":2}'),
    () => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: DIGEST, size: 1 }, layers: [] })),
    () => r.bytes(r.int(4096)),
    () => r.bytes(r.int(256 * 1024)),
    () => Buffer.alloc(r.chance(0.02) ? (4 << 20) + 1 + r.int(1 << 20) : r.int(2 << 20)),
  ])();
}

/** One generated case: the bytes to send (in parts), and how the connection ends. */
export function generate(r, ctx, i) {
  const method = r.pick(METHODS);
  let p = path(r, ctx);
  if (p.startsWith('/token') && r.chance(0.6)) p = p.split('?')[0] + tokenQuery(r);
  const m = p.startsWith('/token') && r.chance(0.5) ? 'POST' : method;
  const b = body(r, m, p, ctx);
  const headers = [];
  const host = r.pick([ctx.host, ctx.host, ctx.host, ctx.host, 'vb.test', 'other.test:5000', '', null, 'dup', 'a/b', '[::1]:1', 'x'.repeat(300), ctx.host.toUpperCase()]);
  if (host === 'dup') headers.push(`Host: ${ctx.host}`, 'Host: vb.test');
  else if (host !== null) headers.push(`Host: ${host}`);
  const auth = authorization(r, ctx);
  if (auth !== undefined) headers.push(`Authorization: ${auth}`);
  headers.push(`X-Request-Id: fz-${ctx.seed}-${i}`);
  if (r.chance(0.5)) headers.push(`Accept: ${r.pick(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json', '*/*', '', 'x'.repeat(1000)])}`);
  if (m === 'POST' && p.startsWith('/token'))
    headers.push(
      `Content-Type: ${r.pick(['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=koi8-r', 'application/json', 'text/plain', 'application/x-www-form-urlencoded; charset=utf-8'])}`,
    );
  else if (b.length > 0) headers.push(`Content-Type: ${r.pick(['application/octet-stream', 'application/vnd.oci.image.manifest.v1+json', 'text/plain'])}`);
  if (r.chance(0.1)) headers.push(`Range: ${r.pick(['bytes=0-10', 'bytes=-5', 'bytes=9999999999-', 'bytes=a-b', '0-10'])}`);
  if (r.chance(0.05)) headers.push(`X-Forwarded-Host: ${r.pick(['evil.example', 'vb.test'])}`, 'X-Forwarded-Proto: https');
  if (r.chance(0.05)) headers.push(`${r.pick(['X-Long', 'Cookie'])}: ${'v'.repeat(r.pick([100, 10_000, 20_000]))}`);
  if (r.chance(0.03)) headers.push('Bad Header: x');
  if (r.chance(0.03)) headers.push(' folded: continuation');
  if (r.chance(0.03)) headers.push('X-Nul: a\u0000b');
  const expect = r.chance(0.08);
  if (expect) headers.push(`Expect: ${r.pick(['100-continue', '100-continue', 'something'])}`);

  // Framing: how the body is delimited, honestly or not.
  const framing =
    b.length === 0
      ? r.pick(['none', 'none', 'none', 'cl', 'chunked', 'cl-short'])
      : r.pick(['cl', 'cl', 'chunked', 'chunked', 'cl-short', 'cl-long', 'cl-te', 'bad-chunk', 'no-last-chunk', 'chunk-ext', 'two-cl', 'te-identity']);
  let payload = b;
  switch (framing) {
    case 'cl':
      headers.push(`Content-Length: ${b.length}`);
      break;
    case 'cl-short':
      headers.push(`Content-Length: ${b.length + 1 + r.int(1000)}`);
      break;
    case 'cl-long':
      headers.push(`Content-Length: ${Math.max(0, b.length - 1 - r.int(10))}`);
      break;
    case 'two-cl':
      headers.push(`Content-Length: ${b.length}`, `Content-Length: ${b.length + 1}`);
      break;
    case 'cl-te':
      headers.push(`Content-Length: ${b.length}`, 'Transfer-Encoding: chunked');
      payload = chunked(r, b);
      break;
    case 'te-identity':
      headers.push('Transfer-Encoding: identity');
      break;
    case 'chunked':
    case 'chunk-ext':
    case 'bad-chunk':
    case 'no-last-chunk':
      headers.push('Transfer-Encoding: chunked');
      payload = chunked(r, b, framing);
      break;
  }
  const version = r.pick(['1.1', '1.1', '1.1', '1.1', '1.0', '2.0', '0.9']);
  const head = Buffer.from(`${m} ${p} HTTP/${version}\r\n${headers.join('\r\n')}\r\n\r\n`, 'latin1');
  let data = Buffer.concat([head, payload]);
  if (r.chance(0.05)) data = Buffer.concat([data, Buffer.from(r.pick(['GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n', 'garbage\r\n\r\n', '\r\n']))]);
  if (r.chance(0.02)) data = r.bytes(r.int(2000)); // not HTTP at all
  // How the connection ends: half-close after sending (and read the answer), or an abort.
  const end = r.pick(['half-close', 'half-close', 'half-close', 'half-close', 'half-close', 'half-close', 'abort-head', 'abort-body', 'abort-after']);
  return { method: m, path: p, data, headLength: head.length, end, expect, framing, split: r.chance(0.2) ? 1 + r.int(Math.max(1, data.length - 1)) : 0 };
}

function chunked(r, b, kind = 'chunked') {
  const parts = [];
  for (let at = 0; at < b.length;) {
    const n = Math.min(b.length - at, 1 + r.int(64 * 1024));
    const ext = kind === 'chunk-ext' ? `;${r.pick(['a=b', 'x'.repeat(5000), '"'])}` : '';
    const size = kind === 'bad-chunk' && r.chance(0.5) ? r.pick(['zz', '-1', 'ffffffffffffffff', '']) : n.toString(16);
    parts.push(Buffer.from(`${size}${ext}\r\n`), b.subarray(at, at + n), Buffer.from('\r\n'));
    at += n;
  }
  if (kind !== 'no-last-chunk') parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

/** Splits a raw byte stream into HTTP/1.1 responses (heads, statuses and bodies). */
export function parseResponses(buf, method) {
  const out = [];
  let at = 0;
  while (at < buf.length) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const head = buf.subarray(at, end).toString('latin1');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    if (!m) return { responses: out, garbage: true };
    const status = Number(m[1]);
    const headers = {};
    for (const line of head.split('\r\n').slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    at = end + 4;
    let body = Buffer.alloc(0);
    let complete = true;
    if (status >= 200 && status !== 204 && status !== 304 && method !== 'HEAD') {
      if (headers['transfer-encoding'] === 'chunked') {
        const parts = [];
        complete = false;
        for (;;) {
          const nl = buf.indexOf('\r\n', at);
          if (nl < 0) break;
          const n = parseInt(buf.subarray(at, nl).toString('latin1'), 16);
          if (!Number.isFinite(n)) return { responses: out, garbage: true };
          if (buf.length < nl + 2 + n + 2) break;
          parts.push(buf.subarray(nl + 2, nl + 2 + n));
          at = nl + 2 + n + 2;
          if (n === 0) {
            complete = true;
            break;
          }
        }
        body = Buffer.concat(parts);
      } else if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length']);
        body = buf.subarray(at, at + n);
        complete = body.length === n;
        at += body.length;
      } else {
        body = buf.subarray(at);
        at = buf.length;
      }
    }
    out.push({ status, headers, body, complete });
  }
  return { responses: out, garbage: false };
}

/** Whether a final error response is in the registry's format; a reason when it is not. */
export function formatProblem(res, method, path) {
  if (res.status < 400 || method === 'HEAD' || !res.complete) return undefined;
  if (/^\/(metrics|healthz|readyz)/.test(path)) return undefined;
  let j;
  try {
    j = JSON.parse(res.body.toString('utf8'));
  } catch {
    return `status ${res.status}: body is not JSON: ${JSON.stringify(res.body.subarray(0, 80).toString('latin1'))}`;
  }
  if (!Array.isArray(j?.errors) || j.errors.length === 0) return `status ${res.status}: no errors array`;
  for (const e of j.errors) if (!REGISTRY_CODES.has(e?.code) || typeof e?.message !== 'string') return `status ${res.status}: bad entry ${JSON.stringify(e).slice(0, 120)}`;
  return undefined;
}

/**
 * The (code, HTTP status) pairs an error table allows, as `CODE status` strings; `table` is
 * registry-core's RegistryErrors (every row: name -> {code, status}), the one table that
 * docs/errors.md lists row for row.
 */
export function allowedPairs(table) {
  return new Set(Object.values(table).map((d) => `${d.code} ${d.status}`));
}

/** The `CODE status` pairs of a final error response that `allowed` does not have (none for a body that is not the registry format: formatProblem reports those). */
export function pairProblems(res, method, allowed) {
  if (res.status < 400 || method === 'HEAD' || !res.complete) return [];
  let j;
  try {
    j = JSON.parse(res.body.toString('utf8'));
  } catch {
    return [];
  }
  if (!Array.isArray(j?.errors)) return [];
  return [...new Set(j.errors.map((e) => `${e?.code} ${res.status}`))].filter((p) => !allowed.has(p));
}

/** Runs one case; resolves to what came back. */
export function runCase(port, c, timeoutMs = 15_000) {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    const chunks = [];
    let settled = false;
    let closedByServer = false;
    const finish = (outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ outcome, closedByServer, bytes: Buffer.concat(chunks) });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => undefined); // a reset after the answer is normal for broken framing
    sock.on('close', () => {
      closedByServer = true;
      finish('closed');
    });
    sock.on('connect', () => {
      const send = (buf, then) => sock.write(buf, () => then?.());
      if (c.end === 'abort-head') return send(c.data.subarray(0, Math.max(1, c.headLength >> 1)), () => setTimeout(() => finish('aborted'), 5));
      if (c.end === 'abort-body') return send(c.data.subarray(0, c.headLength + ((c.data.length - c.headLength) >> 1)), () => setTimeout(() => finish('aborted'), 5));
      if (c.split > 0) {
        send(c.data.subarray(0, c.split));
        setTimeout(() => send(c.data.subarray(c.split), () => (c.end === 'abort-after' ? finish('aborted') : sock.end())), 2);
      } else send(c.data, () => (c.end === 'abort-after' ? finish('aborted') : sock.end()));
    });
  });
}

/**
 * Sends `count` generated cases, `concurrency` at a time. `alive()` says whether the proxy
 * still runs (checked after every case). With `errorTable` (registry-core's RegistryErrors),
 * every error response whose (code, status) pair is not a row of it is listed in `badPairs`
 * with its request id, so that the caller can tell the proxy's own answers from relayed ones.
 * Returns the tallies and up to 20 examples of each problem.
 */
export async function fuzz({ port, ctx, seed, count, concurrency = 16, alive = () => true, onProgress, errorTable }) {
  const allowed = errorTable ? allowedPairs(errorTable) : undefined;
  const r = rng(seed);
  const cases = function* () {
    for (let i = 0; i < count; i++) yield [i, generate(r, ctx, i)];
  };
  const it = cases();
  const stats = {
    cases: 0,
    answered: 0,
    closedWithoutAnswer: 0,
    aborted: 0,
    timeouts: 0,
    crashes: 0,
    status: {},
    fiveXX: [],
    formatProblemCount: 0,
    formatProblems: [],
    continueBeforeRefusal: [],
    garbage: [],
    badPairs: [],
  };
  const example = (list, item) => list.length < 20 && list.push(item);
  const worker = async () => {
    for (let n = it.next(); !n.done; n = it.next()) {
      const [i, c] = n.value;
      const res = await runCase(port, c);
      stats.cases++;
      if (!alive()) {
        stats.crashes++;
        return;
      }
      if (res.outcome === 'timeout') {
        stats.timeouts++;
        example(stats.garbage, { i, what: 'timeout', method: c.method, path: c.path.slice(0, 120), framing: c.framing, end: c.end });
      }
      if (res.outcome === 'aborted') stats.aborted++;
      const parsed = parseResponses(res.bytes, c.method);
      if (parsed.garbage) example(stats.garbage, { i, what: 'unparseable response', first: res.bytes.subarray(0, 80).toString('latin1') });
      const final = parsed.responses.find((x) => x.status >= 200);
      if (!final) {
        if (res.outcome === 'closed') stats.closedWithoutAnswer++;
      } else {
        stats.answered++;
        stats.status[final.status] = (stats.status[final.status] ?? 0) + 1;
        if (final.status >= 500)
          stats.fiveXX.push({ i, status: final.status, id: `fz-${seed}-${i}`, method: c.method, path: c.path.slice(0, 120), body: final.body.subarray(0, 160).toString('latin1') });
        const problem = formatProblem(final, c.method, c.path.split('?')[0]);
        if (problem) stats.formatProblemCount++;
        if (problem) example(stats.formatProblems, { i, problem, method: c.method, path: c.path.slice(0, 120), framing: c.framing });
        // Every one is kept (not only 20 examples): the caller filters out relayed answers by id.
        if (allowed) for (const pair of pairProblems(final, c.method, allowed)) stats.badPairs.push({ i, id: `fz-${seed}-${i}`, pair, method: c.method, path: c.path.slice(0, 120) });
        // /token reads its form to authenticate, so it answers 100 first by design; /v2 must not.
        if (c.expect && /^\/v2(?:[/?]|$)/.test(c.path) && parsed.responses[0]?.status === 100 && (final.status === 401 || final.status === 403))
          example(stats.continueBeforeRefusal, { i, path: c.path.slice(0, 120) });
      }
      if (stats.cases % 1000 === 0) onProgress?.(stats);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return stats;
}
