import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CredentialError, anonymousProvider, staticProvider } from '../credentials.js';
import { UpstreamClient, type UpstreamClientOptions } from './client.js';
import { UpstreamUnavailableError } from './errors.js';
import { Http1Transport } from './http1.js';
import { TokenCache } from './token-cache.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
interface TestServer {
  url: string;
  seen: IncomingMessage[];
  close(): Promise<void>;
}
const servers: TestServer[] = [];

async function serve(handler: Handler): Promise<TestServer> {
  const seen: IncomingMessage[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(req);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const s = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  servers.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const fast = { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 };
function client(url: string, over: Partial<UpstreamClientOptions> = {}) {
  return new UpstreamClient({ name: 'up', url, credentials: anonymousProvider, followRedirects: true, retry: fast, ...over });
}
const basicOf = (req: IncomingMessage) => Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();

/** A registry that wants Bearer tokens from its own /token realm (anonymous unless creds are needed). */
async function bearerRegistry(opts: { realm?: () => string; requireBasic?: string; expiresIn?: number } = {}) {
  let issued = 0;
  const s = await serve((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/token') {
      if (opts.requireBasic && basicOf(req) !== opts.requireBasic) {
        res.writeHead(401).end();
        return;
      }
      issued++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ token: `tok-${issued}-${url.searchParams.get('scope')}`, expires_in: opts.expiresIn ?? 300 }));
      return;
    }
    if (req.headers.authorization?.startsWith('Bearer tok-')) {
      res.setHeader('docker-content-digest', 'sha256:x');
      res.end('manifest-bytes');
      return;
    }
    const realm = opts.realm ? opts.realm() : `${s.url}/token`;
    res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="reg",scope="repository:a:pull"` }).end('{"errors":[]}');
  });
  return { s, issued: () => issued };
}

describe('UpstreamClient challenge and token cache', () => {
  it('does the anonymous bearer dance once per scope, then uses the cached token', async () => {
    const { s, issued } = await bearerRegistry();
    const c = client(s.url);
    const r1 = await c.request({ method: 'GET', path: '/v2/a/manifests/1', scope: 'repository:a:pull' });
    expect(r1.statusCode).toBe(200);
    expect(await r1.body.text()).toBe('manifest-bytes');
    const r2 = await c.request({ method: 'GET', path: '/v2/a/manifests/2', scope: 'repository:a:pull' });
    await r2.body.dump();
    expect(issued()).toBe(1);
    const r3 = await c.request({ method: 'GET', path: '/v2/b/manifests/1', scope: 'repository:b:pull' });
    await r3.body.dump();
    expect(issued()).toBe(2);
    // The challenge was learnt once: the second scope did not need another 401 first.
    expect(s.seen.filter((r) => r.url?.startsWith('/v2/') && !r.headers.authorization)).toHaveLength(1);
    const tokenReq = s.seen.find((r) => r.url?.startsWith('/token'));
    expect(new URL(tokenReq?.url ?? '', 'http://x').searchParams.get('service')).toBe('reg');
    await c.close();
  });

  it('fetches a new token when the upstream rejects a cached one', async () => {
    let reject = false;
    let issued = 0;
    const s = await serve((req, res) => {
      if (req.url?.startsWith('/token')) {
        issued++;
        res.end(JSON.stringify({ token: `t${issued}` }));
      } else if (req.headers.authorization === `Bearer t${issued}` && !(reject && issued === 1)) res.end('ok');
      else res.writeHead(401, { 'www-authenticate': `Bearer realm="${s.url}/token"` }).end();
    });
    const c = client(s.url);
    await (await c.request({ method: 'GET', path: '/v2/a/manifests/1', scope: 'repository:a:pull' })).body.dump();
    reject = true;
    const r = await c.request({ method: 'GET', path: '/v2/a/manifests/1', scope: 'repository:a:pull' });
    expect(r.statusCode).toBe(200);
    await r.body.dump();
    expect(issued).toBe(2);
  });

  it('sends Basic credentials to a Basic upstream, and not before it asks', async () => {
    const s = await serve((req, res) => {
      if (basicOf(req) === 'u:p') res.end('ok');
      else res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    });
    const c = client(s.url, { credentials: staticProvider({ kind: 'basic', username: 'u', password: 'p' }) });
    const r = await c.request({ method: 'GET', path: '/v2/' });
    expect(r.statusCode).toBe(200);
    await r.body.dump();
    expect(s.seen.map((q) => q.headers.authorization === undefined)).toEqual([true, false]);
  });

  it('returns the 401 when credentials are wrong, without looping', async () => {
    const { s } = await bearerRegistry({ requireBasic: 'u:right' });
    const c = client(s.url, { credentials: staticProvider({ kind: 'basic', username: 'u', password: 'wrong' }) });
    await expect(c.request({ method: 'GET', path: '/v2/a/manifests/1', scope: 'repository:a:pull' })).rejects.toBeInstanceOf(CredentialError);
    expect(s.seen.length).toBeLessThanOrEqual(3);
  });

  it('never sends credentials to a token realm on another origin unless it is configured', async () => {
    const realm = await serve((req, res) => {
      res.end(JSON.stringify({ token: basicOf(req) === 'u:p' ? 'tok-auth' : 'tok-anon' }));
    });
    const { s } = await bearerRegistry({ realm: () => `${realm.url}/token` });
    const creds = staticProvider({ kind: 'basic', username: 'u', password: 'p' });
    const strict = client(s.url, { credentials: creds });
    await expect(strict.request({ method: 'GET', path: '/v2/a/manifests/1', scope: 'repository:a:pull' })).rejects.toThrow(/tokenRealms/);
    expect(realm.seen).toHaveLength(0);
    const allowed = client(s.url, { credentials: creds, tokenRealms: [realm.url] });
    const r = await allowed.request({ method: 'GET', path: '/v2/a/manifests/1', scope: 'repository:a:pull' });
    expect(r.statusCode).toBe(200);
    await r.body.dump();
    expect(realm.seen).toHaveLength(1);
    expect(basicOf(realm.seen[0] as IncomingMessage)).toBe('u:p');
  });
});

describe('UpstreamClient retries and timeouts', () => {
  it('retries 502/503/504 for idempotent requests, with a bound', async () => {
    let n = 0;
    const s = await serve((_req, res) => {
      n++;
      if (n < 3) res.writeHead(n === 1 ? 503 : 502).end('busy');
      else res.end('ok');
    });
    const r = await client(s.url).request({ method: 'GET', path: '/v2/' });
    expect(r.statusCode).toBe(200);
    await r.body.dump();
    expect(n).toBe(3);

    let m = 0;
    const always = await serve((_req, res) => {
      m++;
      res.writeHead(503).end();
    });
    const last = await client(always.url).request({ method: 'GET', path: '/v2/' });
    expect(last.statusCode).toBe(503);
    await last.body.dump();
    expect(m).toBe(3);
  });

  it('retries connection errors and then reports them', async () => {
    const s = await serve((req) => req.socket.destroy());
    await expect(client(s.url).request({ method: 'GET', path: '/v2/' })).rejects.toMatchObject({ kind: 'connection' });
    expect(s.seen).toHaveLength(3);
    const closed = await serve(() => undefined);
    const url = closed.url;
    await closed.close();
    servers.splice(servers.indexOf(closed), 1);
    await expect(client(url).request({ method: 'GET', path: '/v2/' })).rejects.toBeInstanceOf(UpstreamUnavailableError);
  });

  it('gives up on a silent upstream within the bounded time', async () => {
    const s = await serve(() => undefined);
    const started = Date.now();
    const c = client(s.url, { timeouts: { headersMs: 150 }, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 10 } });
    await expect(c.request({ method: 'GET', path: '/v2/' })).rejects.toMatchObject({ kind: 'timeout' });
    // undici's timers tick coarsely (about 1 s), so the bound is loose; without the timeout this hangs.
    expect(Date.now() - started).toBeLessThan(6000);
  });

  it('stops when the caller aborts', async () => {
    const s = await serve(() => undefined);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('client left')), 50);
    await expect(client(s.url).request({ method: 'GET', path: '/v2/', signal: ac.signal })).rejects.toBeInstanceOf(UpstreamUnavailableError);
  });
});

describe('UpstreamClient redirects', () => {
  it('follows blob redirects to storage without the Authorization header', async () => {
    const storage = await serve((_req, res) => res.end('blob-bytes'));
    const redirecting = await serve((req, res) => {
      if (req.url?.startsWith('/token')) res.end(JSON.stringify({ token: 'tok-1' }));
      else if (req.headers.authorization === 'Bearer tok-1') res.writeHead(307, { location: `${storage.url}/blob?sig=1` }).end();
      else res.writeHead(401, { 'www-authenticate': `Bearer realm="${redirecting.url}/token"` }).end();
    });
    // Storage on loopback is allowed here only because the operator lists it (see the SSRF tests).
    const r = await client(redirecting.url, { redirectHosts: ['127.0.0.1'] }).request({ method: 'GET', path: '/v2/a/blobs/sha256:x', scope: 'repository:a:pull' });
    expect(await r.body.text()).toBe('blob-bytes');
    expect(r.url.origin).toBe(storage.url);
    expect(storage.seen[0]?.headers.authorization).toBeUndefined();
  });

  it('keeps Authorization on a same-origin redirect', async () => {
    const s = await serve((req, res) => {
      if (req.url === '/v2/a/blobs/x') res.writeHead(302, { location: '/v2/moved' }).end();
      else res.end(req.headers.authorization ?? 'none');
    });
    const c = client(s.url, { credentials: staticProvider({ kind: 'bearer', token: 'direct' }) });
    expect(await (await c.request({ method: 'GET', path: '/v2/a/blobs/x' })).body.text()).toBe('Bearer direct');
  });

  it('passes redirects on with an absolute Location when asked to', async () => {
    const s = await serve((_req, res) => res.writeHead(307, { location: '/storage/blob?sig=1' }).end());
    const r = await client(s.url, { followRedirects: false }).request({ method: 'GET', path: '/v2/a/blobs/x' });
    expect(r.statusCode).toBe(307);
    expect(r.headers['location']).toBe(`${s.url}/storage/blob?sig=1`);
    await r.body.dump();
  });

  describe('issue 11 defect 3: redirects to internal addresses (SSRF)', () => {
    /** A transport that records where it was asked to go. */
    const recording = () => {
      const asked: string[] = [];
      const t = new Http1Transport();
      const orig = t.request.bind(t);
      t.request = (r) => (asked.push(r.url.href), orig(r));
      return { t, asked };
    };
    it('refuses a 307 to loopback: the internal server sees no request', async () => {
      const metadata = await serve((_req, res) => res.end('{"AccessKeyId":"secret"}'));
      const s = await serve((_req, res) => res.writeHead(307, { location: `${metadata.url}/latest/meta-data/iam/security-credentials/role` }).end());
      await expect(client(s.url).request({ method: 'GET', path: '/v2/a/blobs/x' })).rejects.toMatchObject({ kind: 'redirect', message: expect.stringMatching(/127\.0\.0\.1.*not a public address/) });
      expect(metadata.seen).toHaveLength(0);
    });
    it('opens no connection for a Location that is not http(s)', async () => {
      const s = await serve((_req, res) => res.writeHead(302, { location: 'file:///etc/passwd' }).end());
      const { t, asked } = recording();
      await expect(client(s.url, { transport: t }).request({ method: 'GET', path: '/v2/a/blobs/x' })).rejects.toMatchObject({ kind: 'redirect' });
      expect(asked).toEqual([`${s.url}/v2/a/blobs/x`]);
      await t.close();
    });
    it('connects to the address it checked, not to a second DNS answer', async () => {
      const storage = await serve((req, res) => res.end(`storage saw host ${req.headers.host}`));
      const port = new URL(storage.url).port;
      const s = await serve((_req, res) => res.writeHead(307, { location: `http://storage.test:${port}/b` }).end());
      // storage.test exists only in this resolver: were the transport to resolve it again, it would fail.
      const c = client(s.url, { redirectHosts: ['storage.test'], lookup: async () => [{ address: '127.0.0.1' }] });
      const r = await c.request({ method: 'GET', path: '/v2/a/blobs/x' });
      expect(await r.body.text()).toBe(`storage saw host storage.test:${port}`);
      const refused = client(s.url, { lookup: async () => [{ address: '127.0.0.1' }] });
      await expect(refused.request({ method: 'GET', path: '/v2/a/blobs/x' })).rejects.toMatchObject({ kind: 'redirect' });
      expect(storage.seen).toHaveLength(1);
    });
  });

  it('stops redirect loops', async () => {
    const s = await serve((_req, res) => res.writeHead(302, { location: '/loop' }).end());
    await expect(client(s.url).request({ method: 'GET', path: '/v2/' })).rejects.toThrow(/too many redirects/);
  });
});

describe('TokenCache', () => {
  it('refreshes shortly before expiry and shares concurrent fetches', async () => {
    let now = 1_000_000;
    const cache = new TokenCache(10, () => now);
    let fetches = 0;
    const fetch = async () => ({ token: `t${++fetches}`, refreshAt: TokenCache.refreshAt(now, 60) });
    const [a, b] = await Promise.all([cache.get('k', fetch), cache.get('k', fetch)]);
    expect([a, b, fetches]).toEqual(['t1', 't1', 1]);
    now += 49_000;
    expect(await cache.get('k', fetch)).toBe('t1');
    now += 2_000; // 51 s into a 60 s token: within the last 10 s, fetch anew
    expect(await cache.get('k', fetch)).toBe('t2');
  });
  it('is bounded', async () => {
    const cache = new TokenCache(2);
    for (const k of ['a', 'b', 'c']) await cache.get(k, async () => ({ token: k, refreshAt: Date.now() + 60_000 }));
    let refetched = false;
    await cache.get('a', async () => ((refetched = true), { token: 'a2', refreshAt: Date.now() + 60_000 }));
    expect(refetched).toBe(true);
  });
});

describe('UpstreamClient edges', () => {
  /** Credentials that change each time they are invalidated (as ECR's do when they expire). */
  const rotating = () => {
    let n = 1;
    return {
      provider: { credentials: async () => ({ kind: 'basic' as const, username: 'u', password: `p${n}` }), invalidate: () => void n++ },
      invalidations: () => n - 1,
    };
  };

  it('refreshes credentials a token realm refused, and sends the request once more', async () => {
    const { s } = await bearerRegistry({ requireBasic: 'u:p2' });
    const r = rotating();
    const c = client(s.url, { credentials: r.provider });
    const res = await c.request({ method: 'GET', path: '/v2/a/manifests/1', scope: 'repository:a:pull' });
    expect(await res.body.text()).toBe('manifest-bytes');
    expect(r.invalidations()).toBe(1);
  });

  it('refreshes credentials the upstream refused with 403, and returns the refusal when nothing changes', async () => {
    let good = 'u:p2';
    const s = await serve((req, res) => {
      if (basicOf(req) === good) res.end('ok');
      else if (req.headers.authorization) res.writeHead(403).end();
      else res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    });
    const r = rotating();
    expect(await (await client(s.url, { credentials: r.provider }).request({ method: 'GET', path: '/v2/' })).body.text()).toBe('ok');
    good = 'nobody';
    const same = { credentials: async () => ({ kind: 'basic' as const, username: 'u', password: 'x' }), invalidate: () => undefined };
    const refused = await client(s.url, { credentials: same }).request({ method: 'GET', path: '/v2/' });
    expect(refused.statusCode).toBe(403);
    await refused.body.dump();
  });

  it('learns the challenge before a streamed push, and sends the stream once', async () => {
    const { PassThrough } = await import('node:stream');
    const s = await serve((req, res) => {
      if (req.url === '/v2/') return void res.end('{}');
      let n = 0;
      req.on('data', (d: Buffer) => (n += d.length));
      req.on('end', () => res.writeHead(201).end(String(n)));
    });
    const body = new PassThrough();
    const p = client(s.url).request({ method: 'PATCH', path: '/v2/a/blobs/uploads/1', body });
    body.end('0123456789');
    const res = await p;
    expect([res.statusCode, await res.body.text()]).toEqual([201, '10']);
    expect(s.seen.map((q) => `${q.method} ${q.url}`)).toEqual(['GET /v2/', 'PATCH /v2/a/blobs/uploads/1']);
  });

  it('turns a 303 into a GET, and takes the first of two Locations', async () => {
    const s = await serve((req, res) => {
      if (req.url === '/v2/a/blobs/x') {
        res.statusCode = 303;
        res.setHeader('location', ['/v2/first', '/v2/second']);
        res.end();
      } else res.end(`${req.method} ${req.url}`);
    });
    const r = await client(s.url).request({ method: 'HEAD', path: '/v2/a/blobs/x' });
    expect(r.url.pathname).toBe('/v2/first');
    await r.body.dump();
    expect(s.seen.map((q) => `${q.method} ${q.url}`)).toEqual(['HEAD /v2/a/blobs/x', 'GET /v2/first']);
  });

  it.each([
    ['a 500', (res: ServerResponse) => res.writeHead(500).end(), /answered 500/],
    ['no token', (res: ServerResponse) => res.end('{"other":1}'), /no token/],
    ['bad JSON', (res: ServerResponse) => res.end('{'), /invalid JSON/],
  ])('reports a token realm that sends %s', async (_n, answer, re) => {
    const s = await serve((req, res) => {
      if (req.url?.startsWith('/token')) answer(res);
      else res.writeHead(401, { 'www-authenticate': `Bearer realm="${s.url}/token"` }).end();
    });
    await expect(client(s.url).request({ method: 'GET', path: '/v2/a/manifests/1', scope: 'repository:a:pull  repository:b:pull' })).rejects.toThrow(re);
  });

  it('accepts an OAuth2 access_token, and sends nothing to a Basic upstream without credentials', async () => {
    const s = await serve((req, res) => {
      if (req.url?.startsWith('/token')) res.end('{"access_token":"oauth"}');
      else if (req.headers.authorization === 'Bearer oauth') res.end('bearer ok');
      else res.writeHead(401, { 'www-authenticate': `Bearer realm="${s.url}/token"` }).end();
    });
    expect(await (await client(s.url).request({ method: 'GET', path: '/v2/' })).body.text()).toBe('bearer ok');
    const basicOnly = await serve((_req, res) => res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end());
    const c = client(basicOnly.url);
    const r = await c.request({ method: 'GET', path: '/v2/' });
    expect(r.statusCode).toBe(401);
    await r.body.dump();
    const again = await c.request({ method: 'GET', path: '/v2/' });
    await again.body.dump();
    expect(basicOnly.seen.every((q) => q.headers.authorization === undefined)).toBe(true);
  });

  it('learns a Basic challenge before a streamed push (with the caller signal), reading every challenge header', async () => {
    const { PassThrough } = await import('node:stream');
    const s = await serve((req, res) => {
      if (basicOf(req) !== 'u:p') {
        res.statusCode = 401;
        res.setHeader('www-authenticate', ['Negotiate', 'Basic realm="r"']);
        return void res.end();
      }
      req.resume();
      req.on('end', () => res.writeHead(202).end());
    });
    const ac = new AbortController();
    const body = new PassThrough();
    const p = client(s.url, { credentials: staticProvider({ kind: 'basic', username: 'u', password: 'p' }), ca: 'unused for http' }).request({
      method: 'PATCH',
      path: '/v2/a/blobs/uploads/1',
      body,
      signal: ac.signal,
    });
    body.end('x');
    const res = await p;
    expect(res.statusCode).toBe(202);
    await res.body.dump();
  });

  it('fetches a token under the caller signal, and does not refresh credentials for an error that is not a refusal', async () => {
    const { s } = await bearerRegistry();
    const ac = new AbortController();
    const r = await client(s.url).request({ method: 'GET', path: '/v2/a/manifests/1', scope: 'repository:a:pull', signal: ac.signal });
    expect(await r.body.text()).toBe('manifest-bytes');
    const realm = await serve((_req, res) => res.end('{"token":"t"}'));
    const { s: elsewhere } = await bearerRegistry({ realm: () => `${realm.url}/token` });
    let invalidated = 0;
    const provider = { credentials: async () => ({ kind: 'basic' as const, username: 'u', password: 'p' }), invalidate: () => void invalidated++ };
    await expect(client(elsewhere.url, { credentials: provider }).request({ method: 'GET', path: '/v2/a/manifests/1', scope: 'repository:a:pull' })).rejects.toThrow(/tokenRealms/);
    expect(invalidated).toBe(0);
  });
});
