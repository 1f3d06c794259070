/**
 * The `registry` cache store's quota, end to end: real docker-registry instances as the upstream
 * and as the store (delete enabled), the proxy in between with `maxBytes` set. Filling past the
 * quota evicts the least recently used object from the store registry (its record and its blob),
 * counted in registry_proxy_cache_evictions_total{store}; an object a client is still reading is
 * never the one evicted.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getGlobalDispatcher } from 'undici';
import { Pusher, requireCommands, startRegistry, waitFor, type TestRegistry } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { ALICE_PW as PW, registryStoreProxyConfig } from './support/registry-store-proxy.js';
import { fillsSettled, metric } from './support/metrics.js';

jest.setTimeout(120_000);
const REPO = 'cache/objects';
let upstream: TestRegistry;
let store: TestRegistry;
const spools: string[] = [];
const proxies: TestProxy[] = [];

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const storeAuth = { authorization: basic('store', 'store-pw') };

async function blobIn(repo: string, size: number): Promise<string> {
  const data = randomBytes(size);
  const digest = sha(data);
  await new Pusher(upstream.url, 'up', 'up-pw').blob(repo, { digest, data });
  return digest;
}
async function startProxy(maxBytes: number, storeUrl = store.url): Promise<TestProxy> {
  const spool = mkdtempSync(join(tmpdir(), 'rp-quota-spool-'));
  spools.push(spool);
  const p = await startTestProxy(registryStoreProxyConfig({ upstream: upstream.url, store: storeUrl, repository: REPO, spoolDir: spool, maxBytes }));
  proxies.push(p);
  return p;
}
async function token(p: TestProxy, repo: string): Promise<string> {
  const r = await fetch(`${p.url}/token?service=registry-proxy&scope=repository:${repo}:pull`, { headers: { authorization: basic('alice', PW) } });
  return ((await r.json()) as { token: string }).token;
}
/** A pull, and then the end of the fill it started (its upload to the store goes on after the client's last byte). */
async function pull(p: TestProxy, repo: string, digest: string): Promise<{ status: number; digest: string }> {
  const r = await fetch(`${p.url}/v2/${repo}/blobs/${digest}`, { headers: { authorization: `Bearer ${await token(p, repo)}` } });
  const got = { status: r.status, digest: sha(Buffer.from(await r.arrayBuffer())) };
  await fillsSettled(p);
  return got;
}
/** What the store registry itself says: the object's blob and its record manifest (200 or 404 each). */
async function inStore(digest: string): Promise<[number, number]> {
  const blob = await fetch(`${store.url}/v2/${REPO}/blobs/${digest}`, { method: 'HEAD', headers: storeAuth });
  const rec = await fetch(`${store.url}/v2/${REPO}/manifests/rp-o-${digest.slice(7)}`, { method: 'HEAD', headers: { ...storeAuth, accept: 'application/vnd.oci.image.manifest.v1+json' } });
  return [blob.status, rec.status];
}
const KEPT: [number, number] = [200, 200];
const GONE: [number, number] = [404, 404];

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd');
  upstream = await startRegistry({ up: 'up-pw' });
  store = await startRegistry({ store: 'store-pw' });
});
afterAll(async () => {
  for (const p of proxies) await p.close();
  await upstream?.stop();
  await store?.stop();
  for (const s of spools) rmSync(s, { recursive: true, force: true });
  await getGlobalDispatcher().close();
});

it('3 objects through a quota of 2: the least recently used one is gone from the store registry, counted; the others are served', async () => {
  const p = await startProxy(700_000);
  const [a, b, c] = [await blobIn('team/q', 300_000), await blobIn('team/q', 300_000), await blobIn('team/q', 300_000)];
  expect(await pull(p, 'team/q', a)).toEqual({ status: 200, digest: a });
  expect(await pull(p, 'team/q', b)).toEqual({ status: 200, digest: b });
  expect([await inStore(a), await inStore(b)]).toEqual([KEPT, KEPT]);
  // A hit makes a the most recently used: b is now the oldest.
  expect(await pull(p, 'team/q', a)).toEqual({ status: 200, digest: a });
  expect(await metric(p, 'registry_proxy_cache_evictions_total')).toBe(0);
  expect(await pull(p, 'team/q', c)).toEqual({ status: 200, digest: c });
  expect([await inStore(a), await inStore(b), await inStore(c)]).toEqual([KEPT, GONE, KEPT]);
  expect(await metric(p, 'registry_proxy_cache_evictions_total')).toBe(1);
  expect(await metric(p, 'registry_proxy_cache_store_bytes')).toBe(600_000);
  // b is simply filled again (and a, now the oldest, makes room).
  expect(await pull(p, 'team/q', b)).toEqual({ status: 200, digest: b });
  expect([await inStore(a), await inStore(b), await inStore(c)]).toEqual([GONE, KEPT, KEPT]);
  expect(await metric(p, 'registry_proxy_cache_evictions_total')).toBe(2);

  // Another proxy started on the same store learns the objects from their records (in the
  // background) and keeps the quota with them: one more fill evicts the oldest (c).
  const q = await startProxy(700_000);
  const d = await blobIn('team/q', 300_000);
  // Pulls do not wait for the background index; this test does.
  await waitFor('the second proxy to index the store', async () => q.logs.join('').includes('cache store indexed'), 10_000);
  expect(await pull(q, 'team/q', d)).toEqual({ status: 200, digest: d });
  expect([await inStore(b), await inStore(c), await inStore(d)]).toEqual([KEPT, GONE, KEPT]);
  expect(q.logs.join('')).toMatch(/"objects":2,"bytes":600000.*cache store indexed/);
  expect(q.logs.join('')).not.toContain('store-pw');
});

it('an object a client is still reading is not evicted, though least recently used; once the client is gone it is', async () => {
  // A 16 MiB object, more than the loopback socket buffers hold: a client that stops reading
  // keeps its transfer (and its store read) open.
  const p = await startProxy((16 << 20) + 400_000);
  const big = await blobIn('team/pin', 16 << 20);
  const small1 = await blobIn('team/pin', 300_000);
  expect(await pull(p, 'team/pin', big)).toEqual({ status: 200, digest: big });
  expect(await pull(p, 'team/pin', small1)).toEqual({ status: 200, digest: small1 });

  const tok = await token(p, 'team/pin');
  const stalled = await new Promise<{ destroy(): void }>((resolve, reject) => {
    const u = new URL(`${p.url}/v2/team/pin/blobs/${big}`);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, headers: { authorization: `Bearer ${tok}` } }, (res) => {
      expect(res.statusCode).toBe(200);
      res.pause(); // never read on
      resolve({ destroy: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
  // A hit on small1 after big's read started: big (last used when its read started) is the least recently used.
  await new Promise((r) => setTimeout(r, 20));
  expect(await pull(p, 'team/pin', small1)).toEqual({ status: 200, digest: small1 });
  const small2 = await blobIn('team/pin', 300_000);
  expect(await pull(p, 'team/pin', small2)).toEqual({ status: 200, digest: small2 });
  // big is pinned: small1 went instead.
  expect([await inStore(big), await inStore(small1), await inStore(small2)]).toEqual([KEPT, GONE, KEPT]);

  stalled.destroy();
  await new Promise((r) => setTimeout(r, 500));
  const small3 = await blobIn('team/pin', 300_000);
  expect(await pull(p, 'team/pin', small3)).toEqual({ status: 200, digest: small3 });
  expect([await inStore(big), await inStore(small2), await inStore(small3)]).toEqual([GONE, KEPT, KEPT]);
});

it('a store that refuses deletion (405): the eviction is logged and counted, never fails the pull, and the object is stored all the same', async () => {
  const noDelete = await startRegistry({ store: 'store-pw' }, { deleteEnabled: false });
  try {
    const p = await startProxy(500_000, noDelete.url);
    const a = await blobIn('team/nodel', 300_000);
    const b = await blobIn('team/nodel', 300_000);
    expect(await pull(p, 'team/nodel', a)).toEqual({ status: 200, digest: a });
    expect(await metric(p, 'registry_proxy_cache_errors_total', { reason: 'store' })).toBe(0);
    expect(await pull(p, 'team/nodel', b)).toEqual({ status: 200, digest: b });
    expect(await metric(p, 'registry_proxy_cache_errors_total', { reason: 'store' })).toBe(1);
    expect(await metric(p, 'registry_proxy_cache_evictions_total')).toBe(0);
    expect(p.logs.join('')).toMatch(new RegExp(`store registry answered 405 to a record DELETE.*${a}.*cache store eviction failed`));
    expect(p.logs.join('')).not.toContain('store-pw');
    for (const d of [a, b]) expect((await fetch(`${noDelete.url}/v2/${REPO}/blobs/${d}`, { method: 'HEAD', headers: storeAuth })).status).toBe(200);
    // Served from the store afterwards (a hit), both of them.
    expect(await pull(p, 'team/nodel', a)).toEqual({ status: 200, digest: a });
    expect(await metric(p, 'registry_proxy_cache_requests_total', { result: 'hit' })).toBe(1);
  } finally {
    await noDelete.stop();
  }
});
