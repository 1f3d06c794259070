/**
 * Tags in the pull-through cache against the stand-in upstream (support/blob-upstream.ts), for
 * the failures a real docker-registry cannot be made to answer on cue: 503 and 429. A tag past
 * its freshness is served stale while the upstream fails, up to staleIfErrorSeconds, and the
 * failure is passed on after that. (Connection refused, with a real registry: cache-pull.e2e.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { getGlobalDispatcher } from 'undici';
import { digestOf, startBlobUpstream, type BlobUpstream } from './support/blob-upstream.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(60_000);
const PW = 'tags-pw-31';
const MT = 'application/vnd.oci.image.manifest.v1+json';
let up: BlobUpstream;
let proxy: TestProxy;
let store: string;
let token: string;

beforeAll(async () => {
  up = await startBlobUpstream();
  store = mkdtempSync(join(tmpdir(), 'rp-cache-tags-'));
  proxy = await startTestProxy({
    auth: [{ type: 'static', users: [{ username: 'alice', passwordHash: bcrypt.hashSync(PW, 4) }] }],
    rules: [{ account: 'alice', repository: ['a/**'], actions: ['pull'] }],
    upstreams: [{ name: 'up', url: up.url, attempts: 1, cache: { store: { type: 'filesystem', path: store }, maxBytes: '1GiB', tagFreshnessSeconds: 1, staleIfErrorSeconds: 2 } }],
  });
  const q = new URLSearchParams({ service: 'registry-proxy', scope: 'repository:a/app:pull' });
  token = ((await (await fetch(`${proxy.url}/token?${q}`, { headers: { authorization: `Basic ${Buffer.from(`alice:${PW}`).toString('base64')}` } })).json()) as { token: string }).token;
});
afterAll(async () => {
  await proxy?.close();
  await up?.stop();
  if (store) rmSync(store, { recursive: true, force: true });
  await getGlobalDispatcher().close();
});

const manifest = (n: number) =>
  Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'0'.repeat(63)}${n}`, size: 2 }, layers: [] }));
const get = (ref: string, method = 'GET') => fetch(`${proxy.url}/v2/a/app/manifests/${ref}`, { method, headers: { authorization: `Bearer ${token}`, accept: MT } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const upstreamGets = () => up.counts.get('GET /v2/a/app/manifests/v1') ?? 0;

describe('tags in the cache', () => {
  it('serves a fresh tag from the cache, revalidates a stale one, serves it stale on 503 and 429, and passes the failure on after staleIfError', async () => {
    const m1 = manifest(1);
    up.manifests.set('a/app:v1', { body: m1, mediaType: MT });
    const first = await get('v1');
    expect([first.status, first.headers.get('docker-content-digest'), Buffer.from(await first.arrayBuffer()).equals(m1)]).toEqual([200, digestOf(m1), true]);
    await get('v1');
    expect(upstreamGets()).toBe(1); // fresh: not asked

    await sleep(1100);
    const head = await get('v1', 'HEAD');
    expect([head.status, head.headers.get('docker-content-digest')]).toEqual([200, digestOf(m1)]);
    expect(upstreamGets()).toBe(2); // revalidated (a 304)

    await sleep(1100);
    for (const status of [503, 429]) {
      up.failManifests = status;
      const stale = await get('v1');
      expect([status, stale.status, Buffer.from(await stale.arrayBuffer()).equals(m1)]).toEqual([status, 200, true]);
    }
    // Past freshness + staleIfError: the upstream's answer is the client's.
    await sleep(3100);
    const gone = await get('v1');
    expect(gone.status).toBe(429);
    expect(((await gone.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('TOOMANYREQUESTS');
    up.failManifests = undefined;
  });

  it('follows a tag that moved upstream once it is past its freshness', async () => {
    up.manifests.set('a/app:v2', { body: manifest(2), mediaType: MT });
    expect((await get('v2')).headers.get('docker-content-digest')).toBe(digestOf(manifest(2)));
    up.manifests.set('a/app:v2', { body: manifest(3), mediaType: MT });
    expect((await get('v2')).headers.get('docker-content-digest')).toBe(digestOf(manifest(2))); // still fresh
    await sleep(1100);
    const moved = await get('v2');
    expect([moved.headers.get('docker-content-digest'), Buffer.from(await moved.arrayBuffer()).equals(manifest(3))]).toEqual([digestOf(manifest(3)), true]);
    // And by digest, from the cache, both the old and the new.
    for (const n of [2, 3]) expect((await get(digestOf(manifest(n)))).status).toBe(200);
  });
});
