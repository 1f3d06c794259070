/**
 * The proxy's pull path over HTTP, against a real docker-registry with htpasswd auth.
 * The client side here is plain fetch, so every header and status can be checked; the
 * skopeo, docker and containerd suites do the same pulls with real clients.
 */
import { createLocalJWKSet, jwtVerify, SignJWT, UnsecuredJWT, type JSONWebKeySet } from 'jose';
import { generateKeyPairSync } from 'node:crypto';
import { request } from 'node:http';
import { KeySet, TokenService } from '@registry-proxy/registry-core';
import { MT, sha256, requireCommands } from '@registry-proxy/testing';
import { USERS, startWorld, token, type World } from './support/fixture.js';

jest.setTimeout(60_000);
let w: World;
const issued: string[] = [];

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd');
  w = await startWorld();
});
afterAll(async () => {
  await w?.stop();
});

async function tok(user: keyof typeof USERS | null, ...scopes: string[]) {
  const t = await token(w, user, ...scopes);
  issued.push(t);
  return t;
}
const pull = (name: string) => `repository:${name}:pull`;
const get = (path: string, t?: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
  fetch(`${w.proxy.url}${path}`, { ...init, headers: { ...(t ? { authorization: `Bearer ${t}` } : {}), ...(init.headers ?? {}) } });
function rawGet(path: string, t?: string, extra: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(w.proxy.url);
    const req = request({ hostname, port, path, headers: { ...(t ? { authorization: `Bearer ${t}` } : {}), ...extra } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}
const errorCode = async (res: Response) => ((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code;

describe('base endpoint and challenges', () => {
  it('challenges without a token, with realm and service, and answers 200 with one', async () => {
    const res = await get('/v2/');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer realm="${w.proxy.url}/token",service="registry-proxy"`);
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(await errorCode(res)).toBe('UNAUTHORIZED');
    const ok = await get('/v2/', await tok('alice'));
    expect(ok.status).toBe(200);
  });
  it('names the scope in the challenge of a repository request', async () => {
    const res = await get('/v2/team/app/manifests/v1');
    expect(res.headers.get('www-authenticate')).toBe(`Bearer realm="${w.proxy.url}/token",service="registry-proxy",scope="repository:team/app:pull"`);
  });
});

describe('pull', () => {
  it('relays a manifest by tag byte for byte, with digest and content type', async () => {
    const t = await tok('alice', pull('team/app'));
    const res = await get('/v2/team/app/manifests/v1', t, { headers: { accept: `${MT.manifest}, ${MT.index}` } });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.equals(w.images.v1.manifest)).toBe(true);
    expect(res.headers.get('docker-content-digest')).toBe(w.images.v1.digest);
    expect(res.headers.get('content-type')).toBe(MT.manifest);
  });
  it('answers HEAD with length and digest and no body', async () => {
    const t = await tok('alice', pull('team/app'));
    const res = await get('/v2/team/app/manifests/v1', t, { method: 'HEAD', headers: { accept: MT.manifest } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(w.images.v1.manifest.length));
    expect(res.headers.get('docker-content-digest')).toBe(w.images.v1.digest);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });
  it('relays by digest, and blobs with Range', async () => {
    const t = await tok('alice', pull('team/app'));
    const byDigest = await get(`/v2/team/app/manifests/${w.images.v2.digest}`, t, { headers: { accept: MT.manifest } });
    expect(sha256(Buffer.from(await byDigest.arrayBuffer()))).toBe(w.images.v2.digest);
    const layer = w.images.v1.blobs[1] as { digest: string; data: Buffer };
    const blob = await get(`/v2/team/app/blobs/${layer.digest}`, t);
    expect(blob.status).toBe(200);
    expect(sha256(Buffer.from(await blob.arrayBuffer()))).toBe(layer.digest);
    const part = await get(`/v2/team/app/blobs/${layer.digest}`, t, { headers: { range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${layer.data.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(layer.data.subarray(10, 20))).toBe(true);
  });
  it('answers 40 clients at once asking for the same tag, each with the right bytes (identical requests share upstream requests)', async () => {
    const t = await tok('alice', pull('team/app'), pull('team/multi'));
    // Two kinds of Accept on one tag, GETs and HEADs: only identical requests may share an answer.
    const asks = Array.from({ length: 40 }, (_, i) => {
      const index = i % 2 === 0;
      const name = index ? 'team/multi/manifests/latest' : 'team/app/manifests/v1';
      return get(`/v2/${name}`, t, { method: i % 4 < 2 ? 'GET' : 'HEAD', headers: { accept: index ? `${MT.index}, ${MT.manifest}` : MT.manifest } }).then(async (res) => ({
        index,
        method: i % 4 < 2 ? 'GET' : 'HEAD',
        status: res.status,
        digest: res.headers.get('docker-content-digest'),
        type: res.headers.get('content-type'),
        body: Buffer.from(await res.arrayBuffer()),
      }));
    });
    for (const a of await Promise.all(asks)) {
      expect(a.status).toBe(200);
      expect(a.digest).toBe(a.index ? w.indexDigest : w.images.v1.digest);
      expect(a.type).toBe(a.index ? MT.index : MT.manifest);
      if (a.method === 'GET') expect(sha256(a.body)).toBe(a.digest);
      else expect(a.body.length).toBe(0);
    }
  });
  it('forwards Accept, so a multi-platform index comes back as an index', async () => {
    const t = await tok('alice', pull('team/multi'));
    const res = await get('/v2/team/multi/manifests/latest', t, { headers: { accept: `${MT.index}, ${MT.manifest}` } });
    expect(res.headers.get('content-type')).toBe(MT.index);
    expect(res.headers.get('docker-content-digest')).toBe(w.indexDigest);
  });
  it('maps a prefix onto an upstream namespace, rewriting tag-list names and Link headers', async () => {
    const t = await tok('alice', pull('mirror/app'));
    const m = await get('/v2/mirror/app/manifests/v1', t, { headers: { accept: MT.manifest } });
    expect(m.headers.get('docker-content-digest')).toBe(w.images.v1.digest);
    // docker-registry 2.8 ignores n/last (pagination came with distribution 3); src/app.test.ts
    // checks pagination and Link rewriting against an upstream that paginates.
    const list = await get('/v2/mirror/app/tags/list?n=2', t);
    expect(await list.json()).toEqual({ name: 'mirror/app', tags: ['v1', 'v2', 'v3'] });
    expect((await get('/v2/mirror/app/tags/list?n=x', t)).status).toBe(400);
  });
  it('relays the upstream 404 as the registry error it is', async () => {
    const t = await tok('alice', pull('team/app'));
    const res = await get('/v2/team/app/manifests/nope', t);
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe('MANIFEST_UNKNOWN');
  });
});

describe('access control on every request', () => {
  it('grants nothing on a forbidden repository, and the request gets insufficient_scope', async () => {
    const t = await tok('alice', pull('secret/app'));
    const res = await get('/v2/secret/app/manifests/v1', t);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
  });
  it('does not let a token for one repository open another', async () => {
    const t = await tok('bob', pull('team/app'));
    expect((await get('/v2/team/app/manifests/v1', t, { headers: { accept: MT.manifest } })).status).toBe(200);
    expect((await get('/v2/team/multi/manifests/latest', t)).status).toBe(401);
  });

  it.each([
    ['no scheme', 'garbage'],
    ['Basic instead of Bearer', `Basic ${Buffer.from(`alice:${USERS.alice}`).toString('base64')}`],
    ['bearer with junk', 'Bearer not.a.jwt'],
    ['bearer with spaces', 'Bearer a b c'],
  ])('answers a malformed Authorization (%s) with 401 invalid_token', async (_l, authorization) => {
    const res = await fetch(`${w.proxy.url}/v2/team/app/manifests/v1`, { headers: { authorization } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(await errorCode(res)).toBe('UNAUTHORIZED');
  });

  it('refuses unsigned, foreign-key, other-algorithm, expired and other-audience tokens', async () => {
    const access = [{ type: 'repository', name: 'team/app', actions: ['pull'], upstream: 'local' }];
    const keys = await KeySet.fromPem(w.signingKeyPem);
    const mint = (over: { service?: string; issuer?: string; keys?: KeySet } = {}, now?: Date) =>
      new TokenService({
        issuer: over.issuer ?? 'registry-proxy',
        service: over.service ?? 'registry-proxy',
        keys: over.keys ?? keys,
        accessTokenTtl: 60,
        refreshTokenTtl: 60,
        algorithms: ['ES256', 'RS256'],
        clockTolerance: 0,
      })
        .issueAccessToken('alice', access, now)
        .then((t) => t.token);
    const good = await mint();
    expect((await get('/v2/team/app/manifests/v1', good, { headers: { accept: MT.manifest } })).status).toBe(200);
    const rsa = await KeySet.fromPem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    const hsKid = keys.signer.kid;
    const bad = {
      none: new UnsecuredJWT({ access }).setIssuer('registry-proxy').setAudience('registry-proxy').setSubject('alice').setExpirationTime('5m').encode(),
      foreignKey: await mint({ keys: await KeySet.ephemeral() }),
      otherAlg: await mint({ keys: rsa }),
      hmacWithPublicKey: await new SignJWT({ access })
        .setProtectedHeader({ alg: 'HS256', kid: hsKid })
        .setIssuer('registry-proxy')
        .setAudience('registry-proxy')
        .setSubject('alice')
        .setExpirationTime('5m')
        .sign(Buffer.from(JSON.stringify(keys.signer.jwk))),
      expired: await mint({}, new Date(Date.now() - 10 * 60_000)),
      otherAudience: await mint({ service: 'another-registry' }),
      otherIssuer: await mint({ issuer: 'someone-else' }),
    };
    for (const [label, t] of Object.entries(bad)) {
      const res = await get('/v2/team/app/manifests/v1', t);
      expect([label, res.status]).toEqual([label, 401]);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
  });
});

describe('bad input never reaches the upstream', () => {
  it.each([
    ['/v2/Team/app/manifests/v1', 400, 'NAME_INVALID'],
    ['/v2/team/../secret/app/manifests/v1', 400, 'NAME_INVALID'],
    ['/v2/team%2F..%2Fsecret%2Fapp/manifests/v1', 400, 'NAME_INVALID'],
    ['/v2/team/%2e%2e/secret/manifests/v1', 400, 'NAME_INVALID'],
    ['/v2/team/app/manifests/..', 400, 'TAG_INVALID'],
    ['/v2/team/app/manifests/sha256:1234', 400, 'DIGEST_INVALID'],
    ['/v2/team/app/blobs/sha256:zz', 400, 'DIGEST_INVALID'],
    ['/v2/team/app/nothing', 404, 'NAME_UNKNOWN'],
    [`/v2/${'a/'.repeat(200)}app/manifests/v1`, 400, 'NAME_INVALID'],
  ])('%s -> %i %s', async (path, status, code) => {
    const before = await w.proxy.upstreamRequests();
    const t = await tok('alice', pull('team/app'));
    // Sent raw: fetch would normalise '..' and '%2e%2e' before they left the client.
    const res = await rawGet(path, t);
    expect(res.status).toBe(status);
    expect(JSON.parse(res.body).errors[0].code).toBe(code);
    expect(await w.proxy.upstreamRequests()).toBe(before);
  });
  it('answers methods an endpoint does not have with 405 UNSUPPORTED', async () => {
    const t = await tok('alice', pull('team/app'));
    for (const [method, path] of [
      ['PATCH', '/v2/team/app/manifests/v9'],
      ['POST', `/v2/team/app/blobs/${w.images.v1.digest}`],
      ['PUT', '/v2/team/app/tags/list'],
      ['PUT', '/v2/team/app/blobs/uploads/'],
      ['POST', '/v2/_catalog'],
    ] as const) {
      const res = await get(path, t, { method });
      expect([method, path, res.status, await errorCode(res)]).toEqual([method, path, 405, 'UNSUPPORTED']);
    }
  });
});

describe('routing by virtual host and as a containerd mirror', () => {
  it('sends Host gcr.localtest to its upstream (app is team/app there); other hosts do not see that route', async () => {
    // The token is asked for on the host it is used on: grants are made per upstream.
    const tr = await rawGet(`/token?service=registry-proxy&scope=${pull('app')}`, undefined, {
      host: 'gcr.localtest:5000',
      authorization: `Basic ${Buffer.from(`alice:${USERS.alice}`).toString('base64')}`,
    });
    const t = (JSON.parse(tr.body) as { token: string }).token;
    issued.push(t);
    const r = await rawGet('/v2/app/manifests/v1', t, { host: 'gcr.localtest:5000', accept: MT.manifest });
    expect(r.status).toBe(200);
    expect(sha256(r.body)).toBe(w.images.v1.digest);
    // On another host the same name is another upstream's: this token is no good there...
    expect((await rawGet('/v2/app/manifests/v1', t, { accept: MT.manifest })).status).toBe(401);
    // ...and a token asked for there reaches the catch-all upstream, which has no repository "app".
    const other = await rawGet('/v2/app/manifests/v1', await tok('alice', pull('app')), { accept: MT.manifest });
    expect(other.status).toBe(404);
    // The challenge's realm names the host the client used.
    const c = await rawGet('/v2/app/manifests/v1', undefined, { host: 'gcr.localtest:5000' });
    expect(c.headers['www-authenticate']).toBe('Bearer realm="http://gcr.localtest:5000/token",service="registry-proxy",scope="repository:app:pull"');
  });
  it('serves ?ns=<registry> from the upstream that mirrors it, names unchanged, with OCI-Namespace', async () => {
    // The challenge asks for the name qualified with the registry (scope grammar: host/name).
    const c = await get('/v2/team/app/manifests/v1?ns=quay.localtest');
    expect(c.headers.get('www-authenticate')).toContain('scope="repository:quay.localtest/team/app:pull"');
    const t = await tok('alice', pull('quay.localtest/team/app'));
    const r = await get('/v2/team/app/manifests/v1?ns=quay.localtest', t, { headers: { accept: MT.manifest } });
    expect(r.status).toBe(200);
    expect(r.headers.get('oci-namespace')).toBe('quay.localtest');
    expect(r.headers.get('docker-content-digest')).toBe(w.images.v1.digest);
    const blob = await get(`/v2/team/app/blobs/${w.images.v1.blobs[0]?.digest}?ns=quay.localtest`, t);
    expect(blob.status).toBe(200);
    await blob.arrayBuffer();
    const unknown = await get('/v2/team/app/manifests/v1?ns=ghcr.io', t);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { errors: Array<{ message: string }> }).errors[0]?.message).toBe('no upstream mirrors ghcr.io');
    // Rules see the name without its registry: bob may pull team/app but not team/multi.
    const bob = await tok('bob', pull('quay.localtest/team/app'), pull('quay.localtest/team/multi'));
    expect((await get('/v2/team/app/manifests/v1?ns=quay.localtest', bob, { headers: { accept: MT.manifest } })).status).toBe(200);
    expect((await get(`/v2/team/multi/manifests/${w.indexDigest}?ns=quay.localtest`, bob)).status).toBe(401);
  });
  it('refuses a token granted on one upstream for the same name on another (issue 11, defect 6)', async () => {
    // team/app by prefix routing is the catch-all upstream's; with ?ns= it is the mirror's.
    const bare = await tok('alice', pull('team/app'));
    expect((await get('/v2/team/app/manifests/v1', bare, { headers: { accept: MT.manifest } })).status).toBe(200);
    const r = await get('/v2/team/app/manifests/v1?ns=quay.localtest', bare, { headers: { accept: MT.manifest } });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    // And the other way round.
    const mirrored = await tok('alice', pull('quay.localtest/team/app'));
    expect((await get('/v2/team/app/manifests/v1', mirrored, { headers: { accept: MT.manifest } })).status).toBe(401);
  });
});

describe('unreachable and slow upstreams', () => {
  it('answers 502 when nothing listens upstream', async () => {
    const t = await tok('alice', pull('dead/app'));
    const res = await get('/v2/dead/app/manifests/v1', t);
    expect(res.status).toBe(502);
    expect(await errorCode(res)).toBe('BAD_GATEWAY');
  });
  it('answers 504 within bounded time when the upstream never answers', async () => {
    const t = await tok('alice', pull('slow/app'));
    const started = Date.now();
    const res = await get('/v2/slow/app/manifests/v1', t);
    expect(res.status).toBe(504);
    expect(await errorCode(res)).toBe('UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('token endpoint', () => {
  const form = (body: Record<string, string>) => fetch(`${w.proxy.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });

  it('serves the POST OAuth2 flow with refresh tokens, as containerd and docker use it', async () => {
    const res = await form({
      grant_type: 'password',
      username: 'alice',
      password: USERS.alice,
      service: 'registry-proxy',
      client_id: 'test',
      access_type: 'offline',
      scope: 'repository:team/app:pull repository:secret/app:pull',
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, string>;
    issued.push(body['access_token'] as string, body['refresh_token'] as string);
    expect(body['scope']).toBe('repository:team/app:pull');
    expect(body['refresh_token']).toBeTruthy();
    const again = await form({ grant_type: 'refresh_token', refresh_token: body['refresh_token'] as string, service: 'registry-proxy', scope: 'repository:team/multi:pull' });
    const b2 = (await again.json()) as Record<string, string>;
    issued.push(b2['access_token'] as string);
    expect(again.status).toBe(200);
    expect(b2['scope']).toBe('repository:team/multi:pull');
    expect((await get('/v2/team/multi/manifests/latest', b2['access_token'], { headers: { accept: MT.index } })).status).toBe(200);
  });
  it('answers 401 to bad POST credentials (containerd then falls back to GET) and 400 to malformed forms', async () => {
    expect((await form({ grant_type: 'password', username: 'alice', password: 'wrong' })).status).toBe(401);
    expect((await form({ grant_type: 'magic' })).status).toBe(400);
    expect((await fetch(`${w.proxy.url}/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })).status).toBe(400);
  });
  it('answers 401 to wrong and unknown credentials on GET', async () => {
    for (const creds of ['alice:nope', 'nobody:x', 'alice:']) {
      const res = await fetch(`${w.proxy.url}/token?service=registry-proxy&scope=repository:team/app:pull`, { headers: { authorization: `Basic ${Buffer.from(creds).toString('base64')}` } });
      expect(res.status).toBe(401);
    }
  });
  it('publishes a JWKS that verifies its tokens', async () => {
    const jwks = (await (await fetch(`${w.proxy.url}/jwks`)).json()) as JSONWebKeySet;
    const t = await tok('alice', pull('team/app'));
    const { payload } = await jwtVerify(t, createLocalJWKSet(jwks), { issuer: 'registry-proxy', audience: 'registry-proxy' });
    expect(payload['access']).toEqual([{ type: 'repository', name: 'team/app', actions: ['pull'], upstream: 'local' }]);
  });
});

describe('operations', () => {
  it('serves health, readiness and metrics', async () => {
    expect((await fetch(`${w.proxy.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${w.proxy.url}/readyz`)).status).toBe(200);
    const m = await (await fetch(`${w.proxy.url}/metrics`)).text();
    expect(m).toMatch(/registry_proxy_requests_total\{route="manifest",method="GET",status="200"\} \d+/);
    expect(m).toMatch(/registry_proxy_tokens_total\{outcome="issued"\} \d+/);
    expect(m).toMatch(/registry_proxy_tokens_total\{outcome="denied"\} \d+/);
    expect(m).toMatch(/registry_proxy_upstream_response_seconds_count\{upstream="local",status="200"\} \d+/);
    expect(m).toMatch(/registry_proxy_upstream_bytes_total\{upstream="local"\} \d+/);
  });
  it('logs identity and repository per request, and never a password or a token', async () => {
    const lines = w.proxy.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.some((l) => l['msg'] === 'request' && l['subject'] === 'alice' && l['repository'] === 'team/app' && l['status'] === 200)).toBe(true);
    expect(lines.some((l) => l['audit'] === 'token' && l['outcome'] === 'denied' && l['subject'] === 'alice')).toBe(true);
    const all = w.proxy.logs.join('');
    expect(issued.length).toBeGreaterThan(10);
    for (const s of [...w.secrets, ...issued]) expect(all.includes(s)).toBe(false);
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
  });
});
