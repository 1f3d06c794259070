/**
 * Push, delete and catalog through the proxy, against a real docker-registry (htpasswd auth, delete
 * enabled). The client here is fetch, so every Location and header can be checked; the skopeo,
 * docker and containerd suites push with real clients.
 */
import { randomBytes } from 'node:crypto';
import { Pusher, sampleImage, sha256, MT, requireCommands } from '@registry-proxy/testing';
import { UPSTREAM_USER, startWorld, token, type World } from './support/fixture.js';

jest.setTimeout(60_000);
let w: World;

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd');
  w = await startWorld();
});
afterAll(async () => {
  await w?.stop();
});

const push = (name: string) => `repository:${name}:pull,push`;
const call = (url: string, t: string | undefined, init: RequestInit & { headers?: Record<string, string> } = {}) =>
  fetch(url.startsWith('http') ? url : `${w.proxy.url}${url}`, { ...init, headers: { ...(t ? { authorization: `Bearer ${t}` } : {}), ...(init.headers ?? {}) } });
const errorCode = async (res: Response) => ((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code;
/** Reads straight from the upstream registry, bypassing the proxy. */
const direct = (path: string, init: RequestInit = {}) =>
  fetch(`${w.registry.url}${path}`, { ...init, headers: { authorization: `Basic ${Buffer.from(`${UPSTREAM_USER.username}:${UPSTREAM_USER.password}`).toString('base64')}`, accept: MT.manifest } });

describe('blob uploads', () => {
  it('chunked: POST, PATCH, PATCH, status, PUT; every Location is the proxy under the client name', async () => {
    const t = await token(w, 'alice', push('push/chunked'));
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const digest = sha256(data);

    const start = await call('/v2/push/chunked/blobs/uploads/', t, { method: 'POST' });
    expect(start.status).toBe(202);
    const uuid = start.headers.get('docker-upload-uuid') as string;
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/);
    let loc = start.headers.get('location') as string;
    expect(loc.startsWith(`${w.proxy.url}/v2/push/chunked/blobs/uploads/${uuid}?`)).toBe(true);
    expect(new URL(loc).searchParams.get('_state')).toBeTruthy(); // the upstream's own state, passed on

    const half = 2 * 1024 * 1024;
    const p1 = await call(loc, t, { method: 'PATCH', body: data.subarray(0, half), headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${half - 1}` } });
    expect(p1.status).toBe(202);
    expect(p1.headers.get('range')).toBe(`0-${half - 1}`);
    loc = p1.headers.get('location') as string;
    expect(loc.startsWith(`${w.proxy.url}/v2/push/chunked/blobs/uploads/${uuid}?`)).toBe(true);

    // The second chunk is streamed without a length (chunked transfer encoding).
    const rest = data.subarray(half);
    const p2 = await call(loc, t, {
      method: 'PATCH',
      body: new ReadableStream({
        start(c) {
          c.enqueue(rest.subarray(0, 1000));
          c.enqueue(rest.subarray(1000));
          c.close();
        },
      }),
      duplex: 'half',
      headers: { 'content-type': 'application/octet-stream' },
    } as RequestInit & { headers: Record<string, string> });
    expect(p2.status).toBe(202);
    expect(p2.headers.get('range')).toBe(`0-${data.length - 1}`);
    loc = p2.headers.get('location') as string;

    const status = await call(loc, t);
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe(`0-${data.length - 1}`);

    const done = new URL(loc);
    done.searchParams.set('digest', digest);
    const put = await call(done.href, t, { method: 'PUT' });
    expect(put.status).toBe(201);
    expect(put.headers.get('location')).toBe(`${w.proxy.url}/v2/push/chunked/blobs/${digest}`);
    expect(put.headers.get('docker-content-digest')).toBe(digest);

    const back = await direct(`/v2/push/chunked/blobs/${digest}`);
    expect(Buffer.from(await back.arrayBuffer()).equals(data)).toBe(true);
  });

  it('monolithic: POST, then one PUT with the whole blob; and a cancelled upload', async () => {
    const t = await token(w, 'alice', push('push/mono'));
    const data = randomBytes(100_000);
    const start = await call('/v2/push/mono/blobs/uploads/', t, { method: 'POST' });
    const loc = new URL(start.headers.get('location') as string);
    loc.searchParams.set('digest', sha256(data));
    const res = await call(loc.href, t, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`${w.proxy.url}/v2/push/mono/blobs/${sha256(data)}`);
    expect((await direct(`/v2/push/mono/blobs/${sha256(data)}`, { method: 'HEAD' })).status).toBe(200);

    const other = await call('/v2/push/mono/blobs/uploads/', t, { method: 'POST' });
    const cancel = other.headers.get('location') as string;
    expect((await call(cancel, t, { method: 'DELETE' })).status).toBe(204);
    expect(await errorCode(await call(cancel, t))).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  it('a client that hangs up mid-PATCH leaves the upload as it was, and the proxy serves on', async () => {
    const t = await token(w, 'alice', push('push/abort'));
    const start = await call('/v2/push/abort/blobs/uploads/', t, { method: 'POST' });
    const loc = start.headers.get('location') as string;
    const { request } = await import('node:http');
    const u = new URL(loc);
    await new Promise<void>((resolve) => {
      const req = request({
        hostname: u.hostname,
        port: u.port,
        path: `${u.pathname}${u.search}`,
        method: 'PATCH',
        headers: { authorization: `Bearer ${t}`, 'content-type': 'application/octet-stream', 'content-length': String(10 << 20) },
      });
      req.on('error', () => resolve());
      req.write(randomBytes(256 * 1024));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 200);
    });
    await new Promise((r) => setTimeout(r, 300));
    // The upload session is still there and holds no partial chunk: it can start over.
    const status = await call(loc, t);
    expect([204, 404]).toContain(status.status);
    if (status.status === 204) expect(status.headers.get('range')).toBe('0-0');
    const data = randomBytes(1000);
    const fresh = await call('/v2/push/abort/blobs/uploads/', t, { method: 'POST' });
    const put = new URL(fresh.headers.get('location') as string);
    put.searchParams.set('digest', sha256(data));
    expect((await call(put.href, t, { method: 'PUT', body: data })).status).toBe(201);
  });

  it('a wrong digest is the upstream registry error, relayed', async () => {
    const t = await token(w, 'alice', push('push/bad'));
    const start = await call('/v2/push/bad/blobs/uploads/', t, { method: 'POST' });
    const loc = new URL(start.headers.get('location') as string);
    loc.searchParams.set('digest', sha256('something else'));
    const res = await call(loc.href, t, { method: 'PUT', body: randomBytes(1000) });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('DIGEST_INVALID');
  });

  it('maps names through prefix and namespace both ways (mirror/push/x is team/push/x upstream)', async () => {
    const t = await token(w, 'alice', push('mirror/push/x'));
    const data = randomBytes(5000);
    const start = await call('/v2/mirror/push/x/blobs/uploads/', t, { method: 'POST' });
    const loc = new URL(start.headers.get('location') as string);
    expect(loc.pathname.startsWith('/v2/mirror/push/x/blobs/uploads/')).toBe(true);
    loc.searchParams.set('digest', sha256(data));
    const put = await call(loc.href, t, { method: 'PUT', body: data });
    expect(put.headers.get('location')).toBe(`${w.proxy.url}/v2/mirror/push/x/blobs/${sha256(data)}`);
    expect((await direct(`/v2/team/push/x/blobs/${sha256(data)}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('mounts across repositories only with pull on the source; otherwise the upload just starts', async () => {
    const data = randomBytes(4000);
    await Pusher.bearer(w.proxy.url, await token(w, 'alice', push('push/src'))).blob('push/src', { digest: sha256(data), data });

    const both = await token(w, 'alice', push('push/dst'), 'repository:push/src:pull');
    const mounted = await call(`/v2/push/dst/blobs/uploads/?mount=${sha256(data)}&from=push/src`, both, { method: 'POST' });
    expect(mounted.status).toBe(201);
    expect(mounted.headers.get('location')).toBe(`${w.proxy.url}/v2/push/dst/blobs/${sha256(data)}`);

    // bob may push to push/bob/** but not read push/src: no mount, a plain upload session instead.
    const bob = await token(w, 'bob', push('push/bob/dst'), 'repository:push/src:pull');
    const refused = await call(`/v2/push/bob/dst/blobs/uploads/?mount=${sha256(data)}&from=push/src`, bob, { method: 'POST' });
    expect(refused.status).toBe(202);
    expect(refused.headers.get('location')).toMatch(new RegExp(`^${w.proxy.url}/v2/push/bob/dst/blobs/uploads/`));
    expect((await direct(`/v2/push/bob/dst/blobs/${sha256(data)}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('refuses uploads without push: a pull-only token gets insufficient_scope, and nothing reaches the upstream', async () => {
    const t = await token(w, 'alice', 'repository:team/app:pull', push('team/app'));
    const before = await w.proxy.upstreamRequests();
    const res = await call('/v2/team/app/blobs/uploads/', t, { method: 'POST' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('scope="repository:team/app:pull,push",error="insufficient_scope"');
    expect(await w.proxy.upstreamRequests()).toBe(before);
  });
});

describe('manifests', () => {
  it('pushes an image, answers with the proxy Location, and pulls it back through the proxy', async () => {
    const t = await token(w, 'alice', push('push/img'));
    const img = sampleImage('amd64');
    await Pusher.bearer(w.proxy.url, t).image('push/img', 'v1', img);
    const res = await call('/v2/push/img/manifests/v1', t, { headers: { accept: MT.manifest } });
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(img.digest);
    const put = await call('/v2/push/img/manifests/v2', t, { method: 'PUT', body: img.manifest, headers: { 'content-type': MT.manifest } });
    expect(put.status).toBe(201);
    expect(put.headers.get('location')).toBe(`${w.proxy.url}/v2/push/img/manifests/${img.digest}`);
  });

  it('refuses a manifest over 4 MiB without sending it upstream', async () => {
    const t = await token(w, 'alice', push('push/big'));
    const res = await call('/v2/push/big/manifests/v1', t, { method: 'PUT', body: Buffer.alloc((4 << 20) + 1, 0x20), headers: { 'content-type': MT.manifest } });
    expect(res.status).toBe(413);
    expect(await errorCode(res)).toBe('SIZE_INVALID');
  });
});

describe('delete', () => {
  it('needs the delete action, then deletes the manifest and the blob upstream', async () => {
    const img = sampleImage('amd64');
    const t = await token(w, 'alice', push('push/del'));
    await Pusher.bearer(w.proxy.url, t).image('push/del', 'v1', img);

    const noDelete = await call(`/v2/push/del/manifests/${img.digest}`, t, { method: 'DELETE' });
    expect(noDelete.status).toBe(401);
    expect(noDelete.headers.get('www-authenticate')).toContain('scope="repository:push/del:delete"');

    const d = await token(w, 'alice', 'repository:push/del:delete');
    expect((await call(`/v2/push/del/manifests/${img.digest}`, d, { method: 'DELETE' })).status).toBe(202);
    expect((await direct(`/v2/push/del/manifests/${img.digest}`, { method: 'HEAD' })).status).toBe(404);
    const layer = img.blobs[0]?.digest as string;
    expect((await call(`/v2/push/del/blobs/${layer}`, d, { method: 'DELETE' })).status).toBe(202);
    expect((await direct(`/v2/push/del/blobs/${layer}`, { method: 'HEAD' })).status).toBe(404);

    // bob may push to push/bob/** but has no delete.
    const bob = await token(w, 'bob', 'repository:push/bob/x:delete');
    expect((await call(`/v2/push/bob/x/manifests/${img.digest}`, bob, { method: 'DELETE' })).status).toBe(401);
  });
});

describe('catalog', () => {
  it('lists only what the caller may pull, under client names, with n/last pagination', async () => {
    const t = await token(w, 'bob', 'registry:catalog:*');
    const all = await call('/v2/_catalog', t);
    expect(all.status).toBe(200);
    const names = ((await all.json()) as { repositories: string[] }).repositories;
    // bob: team/app by rule, push/bob/** by rule; never secret/app or team/multi.
    expect(names).toContain('team/app');
    expect(names).not.toContain('secret/app');
    expect(names).not.toContain('team/multi');
    expect(names.every((n) => n === 'team/app' || n.startsWith('push/bob/'))).toBe(true);

    const alice = await token(w, 'alice', 'registry:catalog:*');
    const a = ((await (await call('/v2/_catalog', alice)).json()) as { repositories: string[] }).repositories;
    expect(a).toEqual([...a].sort());
    expect(a).toEqual(expect.arrayContaining(['team/app', 'team/multi', 'mirror/app', 'mirror/multi']));
    expect(a).not.toContain('secret/app');

    const first = await call('/v2/_catalog?n=2', alice);
    const page1 = ((await first.json()) as { repositories: string[] }).repositories;
    expect(page1).toEqual(a.slice(0, 2));
    const link = first.headers.get('link') as string;
    expect(link).toBe(`</v2/_catalog?last=${encodeURIComponent(a[1] as string)}&n=2>; rel="next"`);
    const second = await call(/<([^>]+)>/.exec(link)?.[1] as string, alice);
    expect(((await second.json()) as { repositories: string[] }).repositories).toEqual(a.slice(2, 4));
  });

  it('needs the catalog scope; anonymous callers get none', async () => {
    const t = await token(w, 'alice', 'repository:team/app:pull');
    const res = await call('/v2/_catalog', t);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('scope="registry:catalog:*",error="insufficient_scope"');
    const anon = await fetch(`${w.proxy.url}/token?service=registry-proxy&scope=registry:catalog:*`);
    expect(anon.status).toBe(401);
    expect(await errorCode(await call('/v2/_catalog?n=x', await token(w, 'alice', 'registry:catalog:*')))).toBe('PAGINATION_NUMBER_INVALID');
  });
});
