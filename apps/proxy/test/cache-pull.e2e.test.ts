/**
 * The pull-through cache with a real client (skopeo) and a real upstream (docker-registry):
 * a cold pull fills the cache; the upstream is stopped and the same images still pull by tag
 * and by digest (stale tags, within staleIfErrorSeconds), while images never pulled get a clean
 * registry error; the upstream comes back and tags revalidate (a conditional request: 304, or
 * the new digest when the tag moved). A corrupted file on disk is never served.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { getGlobalDispatcher } from 'undici';
import { Pusher, requireCommands, run, sampleImage, startDaemon, startRegistry, waitFor, type Daemon, type Image, type TestRegistry } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { metric as metricOf } from './support/metrics.js';

jest.setTimeout(180_000);
const USER = { username: 'up', password: 'up-pw-4d2a' };
const PW = 'alice-pw-cache';
let registry: TestRegistry;
let restarted: Daemon | undefined;
let proxy: TestProxy;
let store: string;
let push: Pusher;
const images: Record<string, Image> = {};

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'skopeo');
  registry = await startRegistry({ [USER.username]: USER.password });
  push = new Pusher(registry.url, USER.username, USER.password);
  for (const tag of ['v1', 'v2', 'moving', 'never']) {
    images[tag] = sampleImage('amd64', 256 << 10);
    await push.image('team/app', tag, images[tag] as Image);
  }
  store = mkdtempSync(join(tmpdir(), 'rp-cache-pull-'));
  proxy = await startTestProxy({
    auth: [{ type: 'static', users: [{ username: 'alice', passwordHash: bcrypt.hashSync(PW, 4) }] }],
    rules: [{ account: 'alice', repository: ['team/**'], actions: ['pull'] }],
    upstreams: [
      {
        name: 'local',
        url: registry.url,
        attempts: 1,
        timeouts: { connectMs: 1000 },
        credentials: { type: 'static', username: USER.username, password: USER.password },
        cache: { store: { type: 'filesystem', path: store }, maxBytes: '1GiB', tagFreshnessSeconds: 5, staleIfErrorSeconds: 3600 },
      },
    ],
  });
});
afterAll(async () => {
  await proxy?.close();
  await restarted?.stop();
  await registry?.stop();
  if (store) rmSync(store, { recursive: true, force: true });
  await getGlobalDispatcher().close();
});

const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 60_000 });
const ref = (name: string) => `docker://${proxy.host}/${name}`;
async function copy(source: string): Promise<{ code: number; stderr: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-skopeo-'));
  const r = await skopeo('copy', '--src-tls-verify=false', `--src-creds=alice:${PW}`, '--retry-times=0', ref(source), `dir:${dir}`);
  return { code: r.code, stderr: r.stderr, dir };
}
function expectImage(dir: string, image: Image): void {
  expect(readFileSync(join(dir, 'manifest.json')).equals(image.manifest)).toBe(true);
  for (const b of image.blobs) expect(readFileSync(join(dir, b.digest.slice(7))).equals(b.data)).toBe(true);
}
const metric = (name: string, labels: Record<string, string> = {}) => metricOf(proxy, name, labels);
const upstreamWith = (status: string) => metric('registry_proxy_upstream_response_seconds_count', { status });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stopRegistry(): Promise<void> {
  if (restarted) await restarted.stop();
  else await registry.stop();
  restarted = undefined;
}
/** Starts docker-registry again on the same port, with the same storage. */
async function restartRegistry(): Promise<void> {
  restarted = startDaemon('docker-registry', ['serve', join(registry.dir, 'config.yml')], join(registry.dir, 'registry.log'));
  await waitFor('docker-registry', async () => (await fetch(`${registry.url}/v2/`)).status === 401);
}

describe('skopeo through the pull-through cache', () => {
  it('a cold pull fills the cache; a second pull asks the upstream nothing', async () => {
    const cold = await copy('team/app:v1');
    expect([cold.code, cold.stderr]).toEqual([0, '']);
    expectImage(cold.dir, images['v1'] as Image);
    for (const b of (images['v1'] as Image).blobs) expect(readdirSync(join(store, 'blobs', 'sha256', b.digest.slice(7, 9)))).toContain(b.digest.slice(7));
    const before = await proxy.upstreamRequests();
    const warm = await copy('team/app:v1');
    expect(warm.code).toBe(0);
    expectImage(warm.dir, images['v1'] as Image);
    expect(await proxy.upstreamRequests()).toBe(before); // within tagFreshnessSeconds: all from the cache
    expect(await metric('registry_proxy_cache_requests_total', { result: 'hit' })).toBeGreaterThan(0);
  });

  it('revalidates a tag past its freshness with a conditional request (304), and sends no blob request', async () => {
    await sleep(5100);
    const before304 = await upstreamWith('304');
    const before = await proxy.upstreamRequests();
    const r = await copy('team/app:v1');
    expect(r.code).toBe(0);
    expect(await upstreamWith('304')).toBe(before304 + 1);
    expect(await proxy.upstreamRequests()).toBe(before + 1);
  });

  it('with the upstream stopped: the same image pulls by tag and by digest; an image never pulled gets a registry error', async () => {
    expect((await copy('team/app:moving')).code).toBe(0);
    await stopRegistry();
    await sleep(5100); // past freshness: the upstream is asked, fails, and the stale tag is served
    const staleBefore = await metric('registry_proxy_cache_requests_total', { result: 'stale' });
    const byTag = await copy('team/app:v1');
    expect([byTag.code, byTag.stderr]).toEqual([0, '']);
    expectImage(byTag.dir, images['v1'] as Image);
    const byDigest = await copy(`team/app@${(images['v1'] as Image).digest}`);
    expect(byDigest.code).toBe(0);
    expectImage(byDigest.dir, images['v1'] as Image);
    expect(await metric('registry_proxy_cache_requests_total', { result: 'stale' })).toBeGreaterThan(staleBefore);

    const never = await copy('team/app:never');
    expect(never.code).not.toBe(0);
    expect(never.stderr).toMatch(/502 Bad Gateway/);
    const res = await fetch(`${proxy.url}/v2/team/app/manifests/never`, { headers: { authorization: `Bearer ${await bearer()}` } });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('BAD_GATEWAY');
  });

  it('with the upstream back: a moved tag revalidates to its new image', async () => {
    await restartRegistry();
    const next = sampleImage('amd64', 128 << 10);
    await push.image('team/app', 'moving', next);
    await sleep(5100);
    const r = await copy('team/app:moving');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expectImage(r.dir, next);
  });

  it('a corrupted layer file on disk is detected, removed, fetched again and never served', async () => {
    const layer = (images['v2'] as Image).blobs[1] ?? (images['v2'] as Image).blobs[0];
    if (!layer) throw new Error('no layer');
    expect((await copy('team/app:v2')).code).toBe(0);
    const file = join(store, 'blobs', 'sha256', layer.digest.slice(7, 9), layer.digest.slice(7));
    const bad = Buffer.from(readFileSync(file));
    bad.writeUInt8(bad.readUInt8(bad.length >> 1) ^ 0x40, bad.length >> 1);
    writeFileSync(file, bad);
    const corruptBefore = await metric('registry_proxy_cache_errors_total', { reason: 'corrupt' });
    const r = await copy('team/app:v2');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expectImage(r.dir, images['v2'] as Image);
    expect(await metric('registry_proxy_cache_errors_total', { reason: 'corrupt' })).toBe(corruptBefore + 1);
    expect(readFileSync(file).equals(layer.data)).toBe(true);
  });
});

async function bearer(): Promise<string> {
  const q = new URLSearchParams({ service: 'registry-proxy', scope: 'repository:team/app:pull' });
  const res = await fetch(`${proxy.url}/token?${q}`, { headers: { authorization: `Basic ${Buffer.from(`alice:${PW}`).toString('base64')}` } });
  return ((await res.json()) as { token: string }).token;
}
