/**
 * The proxy against a small in-process upstream that speaks the registry API where the real
 * docker-registry 2.8 cannot show a behaviour: tag pagination (distribution 3 / Docker Hub)
 * and blob redirects to storage (S3, GCS, Artifact Registry's relative Locations).
 */
import { createHash } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { getGlobalDispatcher } from 'undici';
import bcrypt from 'bcryptjs';
import { parseConfig } from './config/load.js';
import { createLogger } from './logging.js';
import { startProxy, type RunningProxy } from './server.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
let upstream: Server;
let upstreamUrl: string;
const seen: IncomingMessage[] = [];
let storage: Server;
let storageUrl: string;
const storageSeen: IncomingMessage[] = [];
const proxies: RunningProxy[] = [];
let movingCount = 0;
let holdMoving = false;
const held: Array<() => void> = [];
const HUGE = Buffer.alloc(5 << 20, 'x');
const silent: IncomingMessage[] = [];

beforeAll(async () => {
  storage = createServer((req, res) => {
    storageSeen.push(req);
    res.end('blob-from-storage');
  });
  await new Promise<void>((r) => storage.listen(0, '127.0.0.1', r));
  storageUrl = `http://127.0.0.1:${(storage.address() as AddressInfo).port}`;
  upstream = createServer((req, res) => {
    seen.push(req);
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.headers.authorization !== 'Bearer upstream-token') {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end();
    } else if (url.pathname === '/v2/ns/app/tags/list') {
      const all = ['a', 'b', 'c', 'd', 'e'];
      const n = Number(url.searchParams.get('n') ?? all.length);
      const from = url.searchParams.has('last') ? all.indexOf(url.searchParams.get('last') as string) + 1 : 0;
      const tags = all.slice(from, from + n);
      if (from + n < all.length) res.setHeader('link', `</v2/ns/app/tags/list?last=${tags[tags.length - 1]}&n=${n}>; rel="next"`);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ name: 'ns/app', tags }));
    } else if (url.pathname === '/v2/ns/moving/manifests/latest') {
      // A tag that moves on every request: answer n names manifest n.
      const n = ++movingCount;
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, n }));
      const send = () =>
        res
          .writeHead(200, {
            'content-type': 'application/vnd.oci.image.manifest.v1+json',
            'content-length': body.length,
            'docker-content-digest': `sha256:${createHash('sha256').update(body).digest('hex')}`,
          })
          .end(req.method === 'HEAD' ? undefined : body);
      if (holdMoving) held.push(send);
      else send();
    } else if (url.pathname === '/v2/ns/huge/manifests/v1') {
      // Larger than registries accept (4 MiB), slow enough that two requests overlap.
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': HUGE.length }).end(HUGE), 100);
    } else if (url.pathname === '/v2/ns/silent/manifests/v1') {
      silent.push(req); // never answered: the proxy must let go when its client does
    } else if (url.pathname === `/v2/ns/app/blobs/${DIGEST}`) {
      res.writeHead(307, { location: `${storageUrl}/bucket/blob?signature=xyz` }).end();
    } else if (url.pathname === `/v2/ns/rel/blobs/${DIGEST}`) {
      res.writeHead(302, { location: '/artifacts-downloads/blob?sig=1' }).end();
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  upstream.closeAllConnections();
  storage.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  await new Promise((r) => storage.close(r));
  await getGlobalDispatcher().close();
});

function proxy(redirects: 'follow' | 'pass', token = 'upstream-token'): Promise<{ url: string; logs: string[] }> {
  return proxyFor(upstreamUrl, redirects, token);
}

async function proxyFor(url: string, redirects: 'follow' | 'pass', token: string, extra: Record<string, unknown> = {}): Promise<{ url: string; logs: string[] }> {
  const logs: string[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, cb) => (logs.push(c.toString()), cb()) });
  const config = parseConfig(
    stringify({
      listen: { port: 0 },
      auth: [{ type: 'static', users: [{ username: 'u', passwordHash: bcrypt.hashSync('p', 4) }] }],
      rules: [{ account: 'u', repository: '**', actions: ['pull'] }],
      // The storage server is on loopback, which a followed redirect may reach only when listed.
      upstreams: [{ name: 'up', prefix: 'x', namespace: 'ns', url, redirects, redirectHosts: ['127.0.0.1'], credentials: { type: 'bearer', token } }],
      ...extra,
    }),
    'test',
  );
  const p = await startProxy(config, createLogger('debug', sink), { defaultMetrics: false });
  proxies.push(p);
  return { url: p.url, logs };
}

async function tokenFor(url: string, repo: string): Promise<string> {
  const res = await fetch(`${url}/token?service=registry-proxy&scope=repository:${repo}:pull`, { headers: { authorization: `Basic ${Buffer.from('u:p').toString('base64')}` } });
  return ((await res.json()) as { token: string }).token;
}

describe('tag pagination', () => {
  it('passes n and last upstream and rewrites Link and name into the proxy namespace', async () => {
    const p = await proxy('follow');
    const t = await tokenFor(p.url, 'x/app');
    const page1 = await fetch(`${p.url}/v2/x/app/tags/list?n=2`, { headers: { authorization: `Bearer ${t}` } });
    expect(await page1.json()).toEqual({ name: 'x/app', tags: ['a', 'b'] });
    const link = page1.headers.get('link') as string;
    expect(link).toBe('</v2/x/app/tags/list?last=b&n=2>; rel="next"');
    const next = link.slice(1, link.indexOf('>'));
    const page2 = await fetch(`${p.url}${next}`, { headers: { authorization: `Bearer ${t}` } });
    expect(await page2.json()).toEqual({ name: 'x/app', tags: ['c', 'd'] });
    const page3 = await fetch(`${p.url}/v2/x/app/tags/list?n=2&last=d`, { headers: { authorization: `Bearer ${t}` } });
    expect(await page3.json()).toEqual({ name: 'x/app', tags: ['e'] });
    expect(page3.headers.get('link')).toBeNull();
  });
  it('answers HEAD on a tag list without parsing a body', async () => {
    // Regression: HEAD went through the name rewriting, read an empty body and answered 502.
    const p = await proxy('follow');
    const t = await tokenFor(p.url, 'x/app');
    const res = await fetch(`${p.url}/v2/x/app/tags/list`, { method: 'HEAD', headers: { authorization: `Bearer ${t}` } });
    expect(res.status).toBe(200);
  });
});

describe('identical manifest requests at once', () => {
  const digestOf = (n: number) =>
    `sha256:${createHash('sha256')
      .update(JSON.stringify({ schemaVersion: 2, n }))
      .digest('hex')}`;
  /** One request while the upstream holds its answer, then nine more, then the upstream lets go. */
  async function herd(url: string, method: 'HEAD' | 'GET') {
    const t = await tokenFor(url, 'x/moving');
    const ask = () => fetch(`${url}/v2/x/moving/manifests/latest`, { method, headers: { authorization: `Bearer ${t}`, accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const start = movingCount;
    holdMoving = true;
    const first = ask();
    while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
    const rest = Array.from({ length: 9 }, ask);
    await new Promise((r) => setTimeout(r, 300)); // the nine reach the proxy
    holdMoving = false;
    for (const send of held.splice(0)) send();
    const answers = await Promise.all([first, ...rest]);
    while (held.length > 0) held.shift()?.();
    return { answers, upstreamRequests: movingCount - start, start };
  }

  it('share upstream requests, and nobody gets an answer the upstream sent before they asked', async () => {
    const p = await proxy('follow');
    for (const method of ['HEAD', 'GET'] as const) {
      const { answers, upstreamRequests, start } = await herd(p.url, method);
      // One request in the air when the nine came; they all left together on the next.
      expect(upstreamRequests).toBe(2);
      expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
      expect(answers[0]?.headers.get('docker-content-digest')).toBe(digestOf(start + 1));
      // The tag moved after the first request was sent; the nine asked later and see the move.
      for (const a of answers.slice(1)) expect(a.headers.get('docker-content-digest')).toBe(digestOf(start + 2));
      if (method === 'GET') {
        const bodies = await Promise.all(answers.map((a) => a.text()));
        expect(bodies.slice(1)).toEqual(Array(9).fill(JSON.stringify({ schemaVersion: 2, n: start + 2 })));
      }
    }
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    expect(metrics).toContain('registry_proxy_coalesced_requests_total{upstream="up"} 16');
  });

  it('each go upstream when coalescing is off', async () => {
    const p = await proxyFor(upstreamUrl, 'follow', 'upstream-token', {
      upstreams: [{ name: 'up', prefix: 'x', namespace: 'ns', url: upstreamUrl, coalesce: false, credentials: { type: 'bearer', token: 'upstream-token' } }],
    });
    const { answers, upstreamRequests } = await herd(p.url, 'HEAD');
    expect(upstreamRequests).toBe(10);
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
  });

  it('fetch a manifest above 4 MiB each on their own, whole', async () => {
    const p = await proxy('follow');
    const t = await tokenFor(p.url, 'x/huge');
    const answers = await Promise.all(Array.from({ length: 3 }, () => fetch(`${p.url}/v2/x/huge/manifests/v1`, { headers: { authorization: `Bearer ${t}` } })));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(Buffer.from(await a.arrayBuffer()).equals(HUGE)).toBe(true);
    }
  });
});

describe('a client that leaves before the upstream answers', () => {
  it('takes the upstream request with it, long before the headers timeout', async () => {
    const p = await proxyFor(upstreamUrl, 'follow', 'upstream-token', {
      upstreams: [{ name: 'up', prefix: 'x', namespace: 'ns', url: upstreamUrl, coalesce: false, credentials: { type: 'bearer', token: 'upstream-token' } }],
    });
    const t = await tokenFor(p.url, 'x/silent');
    const before = silent.length;
    const client = request(`${p.url}/v2/x/silent/manifests/v1`, { method: 'HEAD', agent: false, headers: { authorization: `Bearer ${t}` } });
    client.on('error', () => undefined);
    client.end();
    while (silent.length === before) await new Promise((r) => setTimeout(r, 5));
    const up = silent[silent.length - 1] as IncomingMessage;
    const cut = new Promise<number>((r) => up.socket.once('close', () => r(Date.now())));
    const left = Date.now();
    client.destroy();
    // The upstream's headers timeout is 30 s: a proxy that kept waiting would take that long.
    expect((await cut) - left).toBeLessThan(2_000);
  });
});

describe('blob redirects', () => {
  it('follows them in the proxy, without sending the upstream credentials to storage', async () => {
    const p = await proxy('follow');
    const t = await tokenFor(p.url, 'x/app');
    const res = await fetch(`${p.url}/v2/x/app/blobs/${DIGEST}`, { headers: { authorization: `Bearer ${t}` }, redirect: 'manual' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('blob-from-storage');
    expect(storageSeen.at(-1)?.headers.authorization).toBeUndefined();
    expect(storageSeen.at(-1)?.url).toBe('/bucket/blob?signature=xyz');
  });
  it('passes them to the client when configured, with relative Locations made absolute', async () => {
    const p = await proxy('pass');
    const t = await tokenFor(p.url, 'x/app');
    const before = storageSeen.length;
    const res = await fetch(`${p.url}/v2/x/app/blobs/${DIGEST}`, { headers: { authorization: `Bearer ${t}` }, redirect: 'manual' });
    expect(res.status).toBe(307);
    expect(res.headers.get('location')).toBe(`${storageUrl}/bucket/blob?signature=xyz`);
    expect(storageSeen.length).toBe(before);
    const t2 = await tokenFor(p.url, 'x/rel');
    const rel = await fetch(`${p.url}/v2/x/rel/blobs/${DIGEST}`, { headers: { authorization: `Bearer ${t2}` }, redirect: 'manual' });
    expect(rel.status).toBe(302);
    expect(rel.headers.get('location')).toBe(`${upstreamUrl}/artifacts-downloads/blob?sig=1`);
  });
});

describe('an upstream that breaks the protocol', () => {
  // Regression: a protocol error in the packet that carried the headers destroyed the body
  // before the relay listened, and the unhandled 'error' took the whole process down.
  it('cuts that one response and keeps serving', async () => {
    const bad = createNetServer((sock) => sock.once('data', () => sock.write('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n')));
    await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r));
    const p = await proxyFor(`http://127.0.0.1:${(bad.address() as AddressInfo).port}`, 'follow', 'upstream-token');
    const t = await tokenFor(p.url, 'x/app');
    // Since the body's first packet is read before the response is handed on, the client now
    // gets a clean 502 (issue 11 defect 10) instead of a cut 200.
    const res = await fetch(`${p.url}/v2/x/app/blobs/${DIGEST}`, { headers: { authorization: `Bearer ${t}` } });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('BAD_GATEWAY');
    expect((await fetch(`${p.url}/healthz`)).status).toBe(200);
    bad.close();
  });
});

describe('upstream refusing the proxy', () => {
  it('answers 502 BAD_GATEWAY, not 401 (the client did nothing wrong), and logs no credential', async () => {
    const p = await proxy('follow', 'revoked-upstream-token');
    const t = await tokenFor(p.url, 'x/app');
    const res = await fetch(`${p.url}/v2/x/app/tags/list`, { headers: { authorization: `Bearer ${t}` } });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { errors: Array<{ code: string; message: string }> }).errors[0]).toEqual({ code: 'BAD_GATEWAY', message: "upstream registry refused the proxy's credentials" });
    expect(p.logs.join('')).not.toContain('revoked-upstream-token');
    expect(p.logs.join('')).not.toContain(t);
  });
});

describe('X-Forwarded-* from reverse proxies', () => {
  const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'registry.example.com' };
  const realmOf = async (url: string) => {
    const res = await fetch(`${url}/v2/`, { headers: forwarded });
    return /realm="([^"]+)"/.exec(res.headers.get('www-authenticate') ?? '')?.[1];
  };
  it('are believed only from configured addresses when the realm is built', async () => {
    const trusted = await proxyFor(upstreamUrl, 'follow', 'upstream-token', { trustedProxies: ['127.0.0.1/8'] });
    expect(await realmOf(trusted.url)).toBe('https://registry.example.com/token');
    const untrusted = await proxyFor(upstreamUrl, 'follow', 'upstream-token', { trustedProxies: ['10.0.0.0/8'] });
    expect(await realmOf(untrusted.url)).toBe(`${untrusted.url}/token`);
    const none = await proxyFor(upstreamUrl, 'follow', 'upstream-token');
    expect(await realmOf(none.url)).toBe(`${none.url}/token`);
    const fixed = await proxyFor(upstreamUrl, 'follow', 'upstream-token', { trustedProxies: ['127.0.0.1'], publicUrl: 'https://reg.example.org' });
    expect(await realmOf(fixed.url)).toBe('https://reg.example.org/token');
  });
});

describe('token endpoint rate limits', () => {
  it('answer 429 with Retry-After per client address (the other limits: routes/token.test.ts)', async () => {
    const p = await proxyFor(upstreamUrl, 'follow', 'upstream-token', {
      trustedProxies: ['127.0.0.1'],
      rateLimits: { perClient: { burst: 3, perSecond: 0.03 } },
    });
    const ask = (from: string, user = 'u', pw = 'p') =>
      fetch(`${p.url}/token?service=registry-proxy&scope=repository:x/app:pull`, { headers: { 'x-forwarded-for': from, authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}` } });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await ask('10.0.0.1')).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const limited = await ask('10.0.0.1');
    // 3 per window of 3 / 0.03 = 100 s.
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(90);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(100);
    expect(((await limited.json()) as { errors: Array<{ code: string; message: string }> }).errors[0]).toMatchObject({ code: 'TOOMANYREQUESTS', message: 'too many token requests from this client' });
    expect((await ask('10.0.0.2')).status).toBe(200); // another address has its own budget
  });
});

describe('rules per virtual host', () => {
  it('grant by the Host the token was asked on, and bind the token to it', async () => {
    const p = await proxyFor(upstreamUrl, 'follow', 'upstream-token', {
      rules: [{ account: 'u', hosts: ['a.localtest'], repository: '**', actions: ['pull'] }],
    });
    const { request } = await import('node:http');
    const call = (path: string, host: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
        const u = new URL(p.url);
        request({ hostname: u.hostname, port: u.port, path, headers: { host, ...headers } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        })
          .on('error', reject)
          .end();
      });
    const basicU = { authorization: `Basic ${Buffer.from('u:p').toString('base64')}` };
    const onA = JSON.parse((await call('/token?service=registry-proxy&scope=repository:x/app:pull', 'a.localtest:5000', basicU)).body) as { token: string };
    const onB = await call('/token?service=registry-proxy&scope=repository:x/app:pull', 'b.localtest:5000', basicU);
    expect(JSON.parse(Buffer.from((JSON.parse(onB.body) as { token: string }).token.split('.')[1] as string, 'base64url').toString()).access).toEqual([]);
    const claims = JSON.parse(Buffer.from(onA.token.split('.')[1] as string, 'base64url').toString()) as { host: string; access: unknown[] };
    expect(claims).toMatchObject({ host: 'a.localtest', access: [{ name: 'x/app', actions: ['pull'] }] });
    const ok = await call('/v2/x/app/tags/list', 'a.localtest:5000', { authorization: `Bearer ${onA.token}` });
    expect(ok.status).toBe(200);
    // The same token on another host is refused, even though its access would fit there.
    const elsewhere = await call('/v2/x/app/tags/list', 'b.localtest:5000', { authorization: `Bearer ${onA.token}` });
    expect(elsewhere.status).toBe(401);
    expect(String(elsewhere.headers['www-authenticate'])).toContain('error="invalid_token"');
  });
});
