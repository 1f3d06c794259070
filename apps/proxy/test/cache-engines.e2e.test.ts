/**
 * The pull-through cache with real engines: Docker Engine (dockerd and the docker CLI) and
 * containerd (ctr, reading hosts.toml as the CRI plugin does), against a real docker-registry
 * upstream. (skopeo has its own suite: cache-pull.e2e.test.ts.) One registry and proxy for both
 * engines, each with an image of its own, so the slow steps (the upstream stopped, freshness
 * running out) happen once:
 *   a cold pull fills the cache; the upstream is stopped and the same images pull by tag and by
 *   digest (stale, within staleIfErrorSeconds); an image never pulled fails with a registry
 *   error; the upstream comes back and a retagged image is seen once freshness runs out; a
 *   cached layer corrupted on disk is detected, removed, fetched again, never served.
 * Between pulls each engine forgets the image (docker rmi, ctr images rm --sync), so every pull
 * fetches its blobs from the proxy again. The proxy listens on plain HTTP on 127.0.0.1, which
 * dockerd allows without configuration and containerd through a hosts.toml.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { getGlobalDispatcher } from 'undici';
import {
  Pusher,
  requireCommands,
  sampleImage,
  startContainerd,
  startDaemon,
  startDockerd,
  startRegistry,
  waitFor,
  type Daemon,
  type Image,
  type TestContainerd,
  type TestDockerd,
  type TestRegistry,
} from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { metric as metricOf } from './support/metrics.js';

jest.setTimeout(300_000);
const USER = { username: 'up', password: 'up-pw-71c3' };
const PW = 'alice-pw-engines';
const FRESH_S = 3;
let registry: TestRegistry;
let restarted: Daemon | undefined;
let proxy: TestProxy;
let store: string;
let push: Pusher;
let dockerd: TestDockerd;
let containerd: TestContainerd;
const images: Record<string, Image> = {};

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'dockerd', 'docker', 'containerd', 'ctr');
  registry = await startRegistry({ [USER.username]: USER.password });
  push = new Pusher(registry.url, USER.username, USER.password);
  for (const repo of ['docker', 'ctr']) {
    for (const tag of ['v1', 'never']) {
      const image = sampleImage('amd64', 192 << 10);
      images[`${repo}:${tag}`] = image;
      await push.image(`team/${repo}`, tag, image);
    }
  }
  store = mkdtempSync(join(tmpdir(), 'rp-cache-engines-'));
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
        cache: { store: { type: 'filesystem', path: store }, maxBytes: '1GiB', tagFreshnessSeconds: FRESH_S, staleIfErrorSeconds: 3600 },
      },
    ],
  });
  [dockerd, containerd] = await Promise.all([startDockerd(), startContainerd()]);
  containerd.plainHttp(proxy.host);
  const login = await dockerd.docker(['login', proxy.host, '-u', 'alice', '--password-stdin'], `${PW}\n`);
  if (login.code !== 0) throw new Error(`docker login: ${login.stderr}`);
});
afterAll(async () => {
  await dockerd?.stop();
  await containerd?.stop();
  await proxy?.close();
  await restarted?.stop();
  await registry?.stop();
  if (store) rmSync(store, { recursive: true, force: true });
  await getGlobalDispatcher().close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const image = (key: string) => images[key] as Image;
const objectFile = (digest: string) => join(store, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));

/** Pulls `ref` (name:tag or name@digest) with one engine, having made it forget the repository's images first; the digest it ended up with. */
async function pull(engine: 'docker' | 'ctr', ref: string): Promise<{ code: number; stderr: string; digest: string | undefined }> {
  const full = `${proxy.host}/${ref}`;
  if (engine === 'docker') {
    const ids = (await dockerd.docker(['images', '-q', '--no-trunc'])).stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await dockerd.docker(['rmi', '-f', ...new Set(ids)]);
    const r = await dockerd.docker(['pull', full]);
    const digest = /Digest: (sha256:[a-f0-9]{64})/.exec(r.stdout)?.[1];
    return { code: r.code, stderr: r.stderr, digest };
  }
  const names = (await containerd.ctr(['images', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
  if (names.length > 0) await containerd.ctr(['images', 'rm', '--sync', ...names]);
  const r = await containerd.ctr(['images', 'pull', '--hosts-dir', containerd.certsDir, '--user', `alice:${PW}`, full]);
  const check = (await containerd.ctr(['images', 'check'])).stdout;
  const digest = new RegExp(`\\s(sha256:[a-f0-9]{64})\\s+complete`).exec(check)?.[1];
  return { code: r.code, stderr: r.stderr, digest: r.code === 0 ? digest : undefined };
}

const metric = (name: string, labels: Record<string, string> = {}) => metricOf(proxy, name, labels);

const engines = ['docker', 'ctr'] as const;

describe('docker and containerd through the pull-through cache', () => {
  it('a cold pull fills the cache (every blob of the image is stored)', async () => {
    for (const e of engines) {
      const r = await pull(e, `team/${e}:v1`);
      expect([e, r.code, r.digest]).toEqual([e, 0, image(`${e}:v1`).digest]);
      for (const b of image(`${e}:v1`).blobs) expect(readFileSync(objectFile(b.digest)).equals(b.data)).toBe(true);
    }
  });

  it('with the upstream stopped: the same images pull by tag and by digest; an image never pulled fails with a registry error', async () => {
    await registry.stop();
    await sleep(FRESH_S * 1000 + 100); // past freshness: the upstream is asked, fails, the stale tag is served
    const staleBefore = await metric('registry_proxy_cache_requests_total', { result: 'stale' });
    for (const e of engines) {
      const byTag = await pull(e, `team/${e}:v1`);
      expect([e, byTag.code, byTag.digest]).toEqual([e, 0, image(`${e}:v1`).digest]);
      const byDigest = await pull(e, `team/${e}@${image(`${e}:v1`).digest}`);
      expect([e, byDigest.code, byDigest.digest]).toEqual([e, 0, image(`${e}:v1`).digest]);
      const never = await pull(e, `team/${e}:never`);
      expect(never.code).not.toBe(0);
      // The proxy's 502 BAD_GATEWAY, as each engine reports it.
      expect(never.stderr).toMatch(/502 Bad Gateway|bad gateway|BAD_GATEWAY/i);
    }
    expect(await metric('registry_proxy_cache_requests_total', { result: 'stale' })).toBeGreaterThan(staleBefore);
  });

  it('with the upstream back: a retagged image is seen once freshness has run out', async () => {
    restarted = startDaemon('docker-registry', ['serve', join(registry.dir, 'config.yml')], join(registry.dir, 'registry.log'));
    await waitFor('docker-registry', async () => (await fetch(`${registry.url}/v2/`)).status === 401);
    for (const e of engines) {
      images[`${e}:v1b`] = sampleImage('amd64', 96 << 10);
      await push.image(`team/${e}`, 'v1', image(`${e}:v1b`));
    }
    await sleep(FRESH_S * 1000 + 100);
    for (const e of engines) {
      const r = await pull(e, `team/${e}:v1`);
      expect([e, r.code, r.digest]).toEqual([e, 0, image(`${e}:v1b`).digest]);
    }
  });

  it('a cached layer corrupted on disk is detected, removed, fetched again and never served', async () => {
    for (const e of engines) {
      const img = image(`${e}:v1b`);
      const layer = img.blobs[img.blobs.length - 1];
      if (!layer) throw new Error('no layer');
      const file = objectFile(layer.digest);
      const bad = Buffer.from(readFileSync(file));
      bad.writeUInt8(bad.readUInt8(bad.length >> 1) ^ 0x40, bad.length >> 1);
      writeFileSync(file, bad);
      const corruptBefore = await metric('registry_proxy_cache_errors_total', { reason: 'corrupt' });
      // By digest: within freshness the tag would be served from the cache anyway; this pulls the same blobs.
      const r = await pull(e, `team/${e}@${img.digest}`);
      // The engines check every layer's digest themselves: a pull that succeeds got the right bytes.
      expect([e, r.code, r.digest]).toEqual([e, 0, img.digest]);
      expect(await metric('registry_proxy_cache_errors_total', { reason: 'corrupt' })).toBe(corruptBefore + 1);
      expect(readFileSync(file).equals(layer.data)).toBe(true);
    }
  });
});
