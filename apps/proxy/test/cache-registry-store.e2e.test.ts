/**
 * The `registry` cache store against real parts: the upstream and the store are both real
 * docker-registry instances (with htpasswd: the store's credentials go through the upstream
 * credential providers). Blobs are pushed to the store by digest once verified, served back with
 * ranged GETs, only through repositories the upstream has shown them in, and a store that stops
 * never fails a pull the upstream can serve.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getGlobalDispatcher } from 'undici';
import { Pusher, requireCommands, startRegistry, waitFor, type TestRegistry } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { ALICE_PW as PW, registryStoreProxyConfig } from './support/registry-store-proxy.js';
import { metric as metricOf } from './support/metrics.js';

jest.setTimeout(120_000);
let upstream: TestRegistry;
let store: TestRegistry;
let proxy: TestProxy;
let spool: string;
const tokens: Record<string, string> = {};

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

async function blobIn(repo: string, size = 300_000): Promise<{ digest: string; data: Buffer }> {
  const data = randomBytes(size);
  const digest = sha(data);
  await new Pusher(upstream.url, 'up', 'up-pw').blob(repo, { digest, data });
  return { digest, data };
}
async function token(repo: string): Promise<string> {
  tokens[repo] ??= (
    (await (await fetch(`${proxy.url}/token?service=registry-proxy&scope=repository:${repo}:pull`, { headers: { authorization: basic('alice', PW) } })).json()) as { token: string }
  ).token;
  return tokens[repo] as string;
}
async function pull(repo: string, digest: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const r = await fetch(`${proxy.url}/v2/${repo}/blobs/${digest}`, { headers: { authorization: `Bearer ${await token(repo)}`, ...headers } });
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()), headers: r.headers };
}
/** What the store registry itself says about an object: its size, or 404. */
async function inStore(digest: string): Promise<number | string> {
  const r = await fetch(`${store.url}/v2/cache/objects/blobs/${digest}`, { method: 'HEAD', headers: { authorization: basic('store', 'store-pw') } });
  return r.status === 200 ? Number(r.headers.get('content-length')) : r.status;
}
const metric = (name: string, labels: Record<string, string> = {}) => metricOf(proxy, name, labels);

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd');
  upstream = await startRegistry({ up: 'up-pw' });
  store = await startRegistry({ store: 'store-pw' });
  spool = mkdtempSync(join(tmpdir(), 'rp-spool-'));
  proxy = await startTestProxy(registryStoreProxyConfig({ upstream: upstream.url, store: store.url, repository: 'cache/objects', spoolDir: spool }));
});
afterAll(async () => {
  await proxy?.close();
  await upstream?.stop();
  await store?.stop();
  if (spool) rmSync(spool, { recursive: true, force: true });
  await getGlobalDispatcher().close();
});

describe('registry cache store (docker-registry as the store)', () => {
  let first: { digest: string; data: Buffer };

  it('a cold pull is verified, pushed to the store registry by digest, and nothing is left in the spool', async () => {
    first = await blobIn('team/app');
    expect(await inStore(first.digest)).toBe(404);
    const r = await pull('team/app', first.digest);
    expect([r.status, sha(r.body)]).toEqual([200, first.digest]);
    await waitFor('object in the store', async () => (await inStore(first.digest)) === first.data.length, 5000);
    expect(readdirSync(spool)).toEqual([]);
  });

  it('served from the store registry: the upstream lost the blob, the pull still gets it whole and in ranges', async () => {
    // Remove the blob's data from the upstream's own storage: only the store can answer now.
    const hex = first.digest.slice(7);
    rmSync(join(upstream.dir, 'data/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex), { recursive: true, force: true });
    const hits = await metric('registry_proxy_cache_requests_total', { result: 'hit' });
    const r = await pull('team/app', first.digest);
    expect([r.status, sha(r.body)]).toEqual([200, first.digest]);
    const part = await pull('team/app', first.digest, { range: 'bytes=100000-100099' });
    expect([part.status, part.headers.get('content-range')]).toEqual([206, `bytes 100000-100099/${first.data.length}`]);
    expect(part.body.equals(first.data.subarray(100000, 100100))).toBe(true);
    expect(await metric('registry_proxy_cache_requests_total', { result: 'hit' })).toBe(hits + 2);
  });

  it('the store is no way around the repository check: a digest stored for team/app is not served through team/other', async () => {
    const other = await blobIn('team/other');
    expect((await pull('team/other', other.digest)).status).toBe(200);
    const cross = await pull('team/other', first.digest);
    expect(cross.status).toBe(404);
    expect(cross.body.toString()).toContain('BLOB_UNKNOWN');
  });

  it('the store registry stopped: pulls are relayed from the upstream (whole, right bytes), warned and counted', async () => {
    await store.stop();
    const next = await blobIn('team/app', 600_000);
    const before = await metric('registry_proxy_cache_errors_total', { reason: 'store' });
    for (let i = 0; i < 2; i++) {
      const r = await pull('team/app', next.digest);
      expect([r.status, sha(r.body)]).toEqual([200, next.digest]);
    }
    expect(await metric('registry_proxy_cache_errors_total', { reason: 'store' })).toBeGreaterThan(before);
    expect(proxy.logs.join('')).toMatch(/cache store (upload )?failed/);
    expect(proxy.logs.join('')).not.toContain('store-pw');
    expect(readdirSync(spool)).toEqual([]);
  });
});
