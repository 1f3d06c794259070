/**
 * An upstream that authenticates through its own token realm on another host (Docker Hub, GHCR,
 * Quay): a real docker-registry with `auth: token` and a token realm on a separate port. The
 * proxy holds a username and PAT, which go only to the realm listed in `tokenRealms`.
 */
import { randomBytes } from 'node:crypto';
import { Pusher, sampleImage, sha256, MT, requireCommands, startTokenRegistry, type TokenRegistry } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import bcrypt from 'bcryptjs';

jest.setTimeout(60_000);
const PAT = 'ghp_test_personal_access_token_0123';
let reg: TokenRegistry;
let proxy: TestProxy;
const img = sampleImage('amd64');

async function tokenFrom(base: string, scope: string): Promise<string> {
  const res = await fetch(`${base}/token?service=registry-proxy&scope=${scope}`, { headers: { authorization: `Basic ${Buffer.from('alice:alice-pw').toString('base64')}` } });
  return ((await res.json()) as { token: string }).token;
}

beforeAll(async () => {
  await requireCommands('docker-registry', 'openssl');
  reg = await startTokenRegistry({ 'ci-bot': PAT });
  // Seed the upstream through its own realm.
  const tr = await fetch(`${reg.realmUrl}/token?service=test-registry&scope=repository:org/app:pull,push`, { headers: { authorization: `Basic ${Buffer.from(`ci-bot:${PAT}`).toString('base64')}` } });
  const upstreamToken = ((await tr.json()) as { token: string }).token;
  await Pusher.bearer(reg.url, upstreamToken).image('org/app', 'v1', img);
  proxy = await startTestProxy({
    auth: [{ type: 'static', users: [{ username: 'alice', passwordHash: bcrypt.hashSync('alice-pw', 4) }] }],
    rules: [{ account: 'alice', repository: '**', actions: ['pull', 'push'] }],
    upstreams: [
      { name: 'hub', prefix: 'hub', url: reg.url, tokenRealms: [reg.realmUrl], credentials: { type: 'static', username: 'ci-bot', password: PAT } },
      { name: 'unlisted', prefix: 'unlisted', url: reg.url, credentials: { type: 'static', username: 'ci-bot', password: PAT } },
      { name: 'wrong', prefix: 'wrong', url: reg.url, tokenRealms: [reg.realmUrl], credentials: { type: 'static', username: 'ci-bot', password: 'not-the-pat' } },
    ],
  });
});
afterAll(async () => {
  await proxy?.close();
  await reg?.stop();
});

const get = (path: string, t: string, init: RequestInit = {}) =>
  fetch(`${proxy.url}${path}`, { ...init, headers: { authorization: `Bearer ${t}`, accept: MT.manifest, ...((init.headers as Record<string, string>) ?? {}) } });

describe('an upstream with its token realm on another host', () => {
  it('pulls with the PAT sent only to the realm, and reuses the upstream token', async () => {
    reg.realmRequests.length = 0;
    const t = await tokenFrom(proxy.url, 'repository:hub/org/app:pull');
    const m = await get('/v2/hub/org/app/manifests/v1', t);
    expect(m.status).toBe(200);
    expect(m.headers.get('docker-content-digest')).toBe(img.digest);
    for (const b of img.blobs) {
      const r = await get(`/v2/hub/org/app/blobs/${b.digest}`, t);
      expect(Buffer.from(await r.arrayBuffer()).equals(b.data)).toBe(true);
    }
    // One realm round for the scope, with the PAT's user; every later request reused the token.
    expect(reg.realmRequests).toEqual([{ user: 'ci-bot', scopes: ['repository:org/app:pull'], status: 200 }]);
  });

  it('pushes through the realm with a pull,push token', async () => {
    const t = await tokenFrom(proxy.url, 'repository:hub/org/pushed:pull,push');
    const image = sampleImage('arm64');
    await Pusher.bearer(proxy.url, t).image('hub/org/pushed', 'v1', image);
    expect(reg.realmRequests.some((r) => r.user === 'ci-bot' && r.scopes.includes('repository:org/pushed:pull,push'))).toBe(true);
    const back = await get('/v2/hub/org/pushed/manifests/v1', t);
    expect(back.headers.get('docker-content-digest')).toBe(image.digest);
    // A chunked upload streams through the realm's token too.
    const data = randomBytes(1 << 20);
    const start = await get('/v2/hub/org/pushed/blobs/uploads/', t, { method: 'POST' });
    const loc = new URL(start.headers.get('location') as string);
    loc.searchParams.set('digest', sha256(data));
    expect((await fetch(loc, { method: 'PUT', body: data, headers: { authorization: `Bearer ${t}` } })).status).toBe(201);
  });

  it('never sends the PAT to a realm that is not listed: 502, and the realm saw no credentials', async () => {
    reg.realmRequests.length = 0;
    const t = await tokenFrom(proxy.url, 'repository:unlisted/org/app:pull');
    const res = await get('/v2/unlisted/org/app/manifests/v1', t);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { errors: Array<{ message: string }> }).errors[0]?.message).toBe('upstream credentials unavailable');
    expect(reg.realmRequests.filter((r) => r.user !== null)).toEqual([]);
    expect(proxy.logs.join('')).not.toContain(PAT);
  });

  it('answers 502 when the realm refuses the credentials', async () => {
    const t = await tokenFrom(proxy.url, 'repository:wrong/org/app:pull');
    const res = await get('/v2/wrong/org/app/manifests/v1', t);
    expect(res.status).toBe(502);
    expect(reg.realmRequests.at(-1)).toMatchObject({ user: 'ci-bot', status: 401 });
    expect(proxy.logs.join('')).not.toContain('not-the-pat');
  });
});
