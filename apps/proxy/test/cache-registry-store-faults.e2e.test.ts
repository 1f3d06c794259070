/**
 * The `registry` cache store failing under a pull: its docker-registry SIGKILLed in the middle
 * of an upload, answering 503 to everything, and sending garbage. The upstream and the store
 * are real docker-registry instances; between the proxy and the store sits a fault injector
 * written here (a plain HTTP pass-through that can kill the store process after N bytes of an
 * upload have gone by, or replace the store's answers), since a real registry cannot be made to
 * fail on cue. Every pull must still succeed from the upstream with the right bytes, without a
 * hang or an unhandled rejection; every fault is warned about and counted; nothing half-written
 * is ever visible in the store.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import { getGlobalDispatcher } from 'undici';
import { MT, Pusher, requireCommands, sampleImage, startRegistry, waitFor, type TestRegistry } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { ALICE_PW as PW, registryStoreProxyConfig } from './support/registry-store-proxy.js';
import { fillsSettled, metric as metricOf } from './support/metrics.js';

jest.setTimeout(120_000);
const STORE_REPO = 'cache/objects';
let upstream: TestRegistry;
let store: TestRegistry;
let front: Server;
let proxy: TestProxy;
let spool: string;
let bearer = '';
const rejections: unknown[] = [];
const onRejection = (err: unknown) => rejections.push(err);

/** What the fault injector does to the next requests. */
const fault: {
  mode: 'pass' | '503' | 'garbage';
  blobGet?: number | undefined;
  killAfterPutBytes?: { digest: string; bytes: number } | undefined;
  holdPut?: { digest: string; until: Promise<void> } | undefined;
  killed: boolean;
} = { mode: 'pass', killed: false };
/** Bytes of object GETs the store answered, and how many GETs, by digest. */
const readBytes = new Map<string, number>();
const readGets = new Map<string, number>();

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const storeAuth = `Basic ${Buffer.from('store:store-pw').toString('base64')}`;

function startFront(target: string): Promise<string> {
  const t = new URL(target);
  front = createServer((req, res) => {
    if (fault.mode === '503') {
      const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'the fault injector says 503' }] });
      res.writeHead(503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      req.resume();
      return;
    }
    if (fault.blobGet !== undefined && req.method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}$/.test(req.url ?? '')) {
      // The blob HEAD passes; its GET fails (a storage backend failing behind a cached HEAD, or the blob deleted in between).
      const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `the fault injector says ${fault.blobGet}` }] });
      res.writeHead(fault.blobGet, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      req.resume();
      return;
    }
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      const len = Number(ur.headers['content-length']);
      if (fault.mode === 'garbage' && req.method === 'GET' && (ur.statusCode === 200 || ur.statusCode === 206) && len > 0) {
        // The store's headers, with bytes of the right length that are not the object's.
        res.writeHead(ur.statusCode, ur.headers);
        ur.resume();
        res.end(randomBytes(len));
        return;
      }
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      const d = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '')?.[1];
      if (d && req.method === 'GET') readGets.set(d, (readGets.get(d) ?? 0) + 1);
      if (d && req.method === 'GET') ur.on('data', (c: Buffer) => readBytes.set(d, (readBytes.get(d) ?? 0) + c.length));
      // pipeline, not pipe: a store that dies mid-body must cut the proxy's connection too, as a
      // direct connection to it would (pipe leaves it open, and the proxy waits for its body timeout).
      pipeline(ur, res, () => undefined);
    });
    up.on('error', () => res.destroy());
    const hold = fault.holdPut;
    if (hold && req.method === 'PUT' && (req.url ?? '').includes(`digest=${encodeURIComponent(hold.digest)}`)) {
      // The upload's bytes wait here (the proxy's PUT stalls on backpressure) until let go.
      req.pause();
      void hold.until.then(() => req.pipe(up));
      return;
    }
    const kill = fault.killAfterPutBytes;
    if (kill && req.method === 'PUT' && (req.url ?? '').includes(`digest=${encodeURIComponent(kill.digest)}`)) {
      let sent = 0;
      req.on('data', (c: Buffer) => {
        sent += c.length;
        if (sent >= kill.bytes && fault.killAfterPutBytes) {
          fault.killAfterPutBytes = undefined;
          fault.killed = true;
          void store.kill?.();
        }
      });
    }
    req.pipe(up);
  });
  return new Promise((r) => front.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(front.address() as AddressInfo).port}`)));
}

async function blobIn(repo: string, size: number): Promise<{ digest: string; data: Buffer }> {
  const data = randomBytes(size);
  const digest = sha(data);
  await new Pusher(upstream.url, 'up', 'up-pw').blob(repo, { digest, data });
  return { digest, data };
}

/**
 * A pull through the proxy, which must end (whole or not) within 30 s: no hang; then the end of
 * the fill it started (the upload to the store goes on after the client's last byte), unless
 * `settle` is false.
 */
async function pull(digest: string, settle = true): Promise<{ status: number; digest: string; length: number }> {
  const r = await fetch(`${proxy.url}/v2/team/app/blobs/${digest}`, { headers: { authorization: `Bearer ${bearer}` }, signal: AbortSignal.timeout(30_000) });
  const body = Buffer.from(await r.arrayBuffer());
  if (settle) await fillsSettled(proxy);
  return { status: r.status, digest: sha(body), length: body.length };
}

async function manifest(tag: string): Promise<{ status: number; digest: string }> {
  const r = await fetch(`${proxy.url}/v2/team/app/manifests/${tag}`, { headers: { authorization: `Bearer ${bearer}`, accept: MT.manifest }, signal: AbortSignal.timeout(30_000) });
  return { status: r.status, digest: sha(Buffer.from(await r.arrayBuffer())) };
}

/** What the store registry itself holds for a digest: its size (and its bytes' digest), or the status. */
async function inStore(digest: string): Promise<{ status: number; digest?: string; length?: number }> {
  const r = await fetch(`${store.url}/v2/${STORE_REPO}/blobs/${digest}`, { headers: { authorization: storeAuth } });
  if (r.status !== 200) {
    await r.arrayBuffer();
    return { status: r.status };
  }
  const body = Buffer.from(await r.arrayBuffer());
  return { status: 200, digest: sha(body), length: body.length };
}

const metric = (name: string, labels: Record<string, string> = {}) => metricOf(proxy, name, labels);

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd');
  process.on('unhandledRejection', onRejection);
  upstream = await startRegistry({ up: 'up-pw' });
  store = await startRegistry({ store: 'store-pw' });
  const storeUrl = await startFront(store.url);
  spool = mkdtempSync(join(tmpdir(), 'rp-spool-faults-'));
  proxy = await startTestProxy(registryStoreProxyConfig({ upstream: upstream.url, store: storeUrl, repository: STORE_REPO, spoolDir: spool }));
  const t = await fetch(`${proxy.url}/token?service=registry-proxy&scope=repository:team/app:pull`, { headers: { authorization: `Basic ${Buffer.from(`alice:${PW}`).toString('base64')}` } });
  bearer = ((await t.json()) as { token: string }).token;
});
afterAll(async () => {
  process.off('unhandledRejection', onRejection);
  await proxy?.close();
  front?.closeAllConnections();
  await new Promise((r) => front?.close(r));
  await upstream?.stop();
  await store?.stop();
  if (spool) rmSync(spool, { recursive: true, force: true });
  await getGlobalDispatcher().close();
});

describe('registry store faults (real docker-registry as the store, killed and lying)', () => {
  // First: the faults below pause this store's fills for 30 s.
  it("a cold pull's client gets its last byte while the object's upload to the store is still held; the store has the object once the upload is let go", async () => {
    const blob = await blobIn('team/app', 3 << 20);
    let letGo: () => void = () => undefined;
    fault.holdPut = { digest: blob.digest, until: new Promise<void>((r) => (letGo = r)) };
    try {
      // The whole blob, verified, while its upload cannot have ended (its PUT is held).
      expect(await pull(blob.digest, false)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length });
      expect(await metric('registry_proxy_cache_fills')).toBe(1);
      expect(await inStore(blob.digest)).toEqual({ status: 404 });
      // A second client meanwhile is served from the spool: the fill is still this process's.
      expect(await pull(blob.digest, false)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length });
    } finally {
      letGo();
      fault.holdPut = undefined;
    }
    await fillsSettled(proxy);
    expect(await inStore(blob.digest)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length });
  });

  it('the store registry SIGKILLed mid-upload: the pull succeeds, the failure is warned and counted, and the restarted store holds nothing of it', async () => {
    const blob = await blobIn('team/app', 32 << 20);
    const failedBefore = await metric('registry_proxy_cache_errors_total', { reason: 'store' });
    fault.killAfterPutBytes = { digest: blob.digest, bytes: 4 << 20 };
    expect(await pull(blob.digest)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length });
    expect(fault.killed).toBe(true);
    expect(store.pid).toBeUndefined(); // it really died in the middle
    expect(await metric('registry_proxy_cache_errors_total', { reason: 'store' })).toBeGreaterThan(failedBefore);
    expect(proxy.logs.join('')).toContain('cache store upload failed');
    expect(proxy.logs.join('')).not.toContain('store-pw');
    expect(readdirSync(spool)).toEqual([]);
    await store.start?.();
    // The upload never reached its final PUT: the restarted store does not have the object.
    expect(await inStore(blob.digest)).toEqual({ status: 404 });
    // The next pull fills it again, and this time the store holds it whole and right.
    expect(await pull(blob.digest)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length });
    await waitFor('object stored', async () => (await inStore(blob.digest)).status === 200, 10_000);
    expect(await inStore(blob.digest)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length });
  });

  it('garbage from the store (a tag record, object bytes) is never served: detected, counted, and the pull answered from the upstream with the right bytes', async () => {
    // A tag resolved through the proxy: its record is in the store, read back on every tag pull.
    const image = sampleImage('amd64', 1000);
    await new Pusher(upstream.url, 'up', 'up-pw').image('team/app', 'v1', image);
    expect(await manifest('v1')).toEqual({ status: 200, digest: image.digest });
    // A blob stored by someone else (another replica), not yet verified by this process.
    const blob = await blobIn('team/app', 3 << 20);
    await new Pusher(store.url, 'store', 'store-pw').blob(STORE_REPO, blob);
    const corruptBefore = await metric('registry_proxy_cache_errors_total', { reason: 'corrupt' });
    const storeBefore = await metric('registry_proxy_cache_errors_total', { reason: 'store' });
    fault.mode = 'garbage';
    try {
      expect(await manifest('v1')).toEqual({ status: 200, digest: image.digest });
      expect(await metric('registry_proxy_cache_errors_total', { reason: 'store' })).toBeGreaterThan(storeBefore); // the unreadable record
      expect(await pull(blob.digest)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length });
      expect(await metric('registry_proxy_cache_errors_total', { reason: 'corrupt' })).toBe(corruptBefore + 1); // hashed before any byte went out
    } finally {
      fault.mode = 'pass';
    }
    expect(proxy.logs.join('')).toContain('corrupt object in the cache');
  });

  it('the store answering 503 to everything: pulls are relayed (right bytes, no hang), warned and counted', async () => {
    const blob = await blobIn('team/app', 2 << 20);
    const before = await metric('registry_proxy_cache_errors_total', { reason: 'store' });
    fault.mode = '503';
    try {
      for (let i = 0; i < 2; i++) expect(await pull(blob.digest)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length });
    } finally {
      fault.mode = 'pass';
    }
    expect(await metric('registry_proxy_cache_errors_total', { reason: 'store' })).toBeGreaterThan(before);
    expect(proxy.logs.join('')).toMatch(/cache store failed \([a-z ]+\); relaying without caching/);
    expect(await inStore(blob.digest)).toEqual({ status: 404 });
  });

  /** Pulls `blob` while the store answers `status` to blob GETs: the pull is relayed whole, and counted as one store error, not as a hit. */
  const relayedWhenStoreGetFails = async (blob: { digest: string; data: Buffer }, status: number): Promise<void> => {
    const before = await metric('registry_proxy_cache_errors_total', { reason: 'store' });
    const hits = await metric('registry_proxy_cache_requests_total', { result: 'hit' });
    fault.blobGet = status;
    try {
      expect(await pull(blob.digest)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length });
    } finally {
      fault.blobGet = undefined;
    }
    expect(await metric('registry_proxy_cache_errors_total', { reason: 'store' })).toBe(before + 1);
    expect(await metric('registry_proxy_cache_requests_total', { result: 'hit' })).toBe(hits);
  };

  it('regression: a stored object whose HEAD answers but whose GET fails (503, or 404: removed in between) while this process checks it: the pull is relayed, not failed', async () => {
    for (const status of [503, 404]) {
      // Stored by someone else: this process hashes it before sending any of it.
      const blob = await blobIn('team/app', 1 << 20);
      await new Pusher(store.url, 'store', 'store-pw').blob(STORE_REPO, blob);
      await relayedWhenStoreGetFails(blob, status);
    }
    expect(proxy.logs.join('')).toContain('cache store failed (read); relaying without caching');
  });

  it('regression: a stored object this process has checked, whose GET then fails before any byte went out (503, or 404: removed in between): the pull is relayed, not cut off', async () => {
    const blob = await blobIn('team/app', 1 << 20);
    await new Pusher(store.url, 'store', 'store-pw').blob(STORE_REPO, blob);
    expect(await pull(blob.digest)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length }); // checked now
    for (const status of [503, 404]) {
      await relayedWhenStoreGetFails(blob, status);
    }
  });

  it('20 requests at once for a stored object this process has not checked yet: it is read from the store to be hashed once, not 20 times', async () => {
    const blob = await blobIn('team/app', 2 << 20);
    await new Pusher(store.url, 'store', 'store-pw').blob(STORE_REPO, blob);
    const got = await Promise.all(Array.from({ length: 20 }, () => pull(blob.digest)));
    expect(got.every((g) => g.status === 200 && g.digest === blob.digest)).toBe(true);
    // 20 sends and one hash; every request hashing for itself would read it 40 times.
    expect(readBytes.get(blob.digest)).toBe(21 * blob.data.length);
    // And each of those reads is one GET of the object (src/cache/registry-reader.ts): one per 1 MiB read would be 42.
    expect(readGets.get(blob.digest)).toBe(21);
  });

  it('the store registry SIGKILLed while a hit streams from it: the client is cut off at once (never handed a short body as whole); with the store down the retry is relayed', async () => {
    // In the store already (fills pause after the 503s above); the first pull checks it, the second streams it.
    const blob = await blobIn('team/app', 64 << 20);
    await new Pusher(store.url, 'store', 'store-pw').blob(STORE_REPO, blob);
    expect(await pull(blob.digest)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length });
    const hits = await metric('registry_proxy_cache_requests_total', { result: 'hit' });
    // A client that stops reading: every buffer between it and the store fills up, the proxy
    // stops reading the store, and the kill lands with most of the object still to come.
    const t0 = Date.now();
    const { outcome, got } = await new Promise<{ outcome: string; got: number }>((resolve) => {
      const req = request(`${proxy.url}/v2/team/app/blobs/${blob.digest}`, { headers: { authorization: `Bearer ${bearer}` }, agent: false }, (res) => {
        let got = 0;
        res.on('data', (c: Buffer) => (got += c.length));
        res.pause();
        setTimeout(() => void store.kill?.().then(() => res.resume()), 1000);
        res.on('end', () => resolve({ outcome: res.complete ? 'complete' : 'cut', got }));
        res.on('error', () => resolve({ outcome: 'cut', got }));
        res.on('aborted', () => resolve({ outcome: 'cut', got }));
      });
      req.on('error', () => resolve({ outcome: 'cut', got: 0 }));
      req.end();
    });
    const took = Date.now() - t0;
    expect([outcome, got < blob.data.length]).toEqual(['cut', true]);
    // Promptly: the store's connection closing is seen at once, not after a timeout.
    expect(took).toBeLessThan(15_000);
    expect(await metric('registry_proxy_cache_requests_total', { result: 'hit' })).toBe(hits + 1); // it was a hit from the store
    expect(proxy.logs.join('')).toContain('reading a cached object failed; connection cut');
    // The store is down: the next pull is relayed from the upstream, whole.
    expect(await pull(blob.digest)).toEqual({ status: 200, digest: blob.digest, length: blob.data.length });
    await store.start?.();
  });

  it('no unhandled rejection in any of it', () => {
    expect(rejections).toEqual([]);
  });
});
