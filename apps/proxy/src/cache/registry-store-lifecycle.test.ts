/**
 * The registry store's lifecycle against a real docker-registry: object records written with
 * each object, indexed by a new instance (a restart, another replica) through the paginated tag
 * list, the quota enforced by least recent use with pinned objects spared, an eviction the store
 * refuses (delete disabled) reported and not fatal, and records that are not ours ignored.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { UpstreamClient } from '@registry-proxy/registry-core';
import { requireCommands, run, startRegistry, type TestRegistry } from '@registry-proxy/testing';
import { startFlightRelay } from '../../test/support/counting-relay.js';
import { RegistryStore, type RegistryStoreOptions } from './registry-store.js';
import { storeClient } from '../../test/support/registry-store-proxy.js';

jest.setTimeout(60_000);
const auth = { authorization: `Basic ${Buffer.from('store:store-pw').toString('base64')}` };
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let reg: TestRegistry;
let spool: string;
let n = 0;
const clients: UpstreamClient[] = [];

function store(repo: string, opts: Partial<RegistryStoreOptions> = {}, registry = reg): RegistryStore {
  const client = storeClient(registry.url);
  clients.push(client);
  return new RegistryStore({ client, repository: repo, spoolDir: spool, onUploadFailed: (d, err) => failures.push(`${d}: ${err.message}`), ...opts });
}
const failures: string[] = [];

/** Fills an object the way the cache does (create, write, commit). */
async function put(s: RegistryStore, size: number): Promise<string> {
  const data = randomBytes(size);
  const d = sha(data);
  const w = await s.create(d, size);
  await w.write(data);
  await w.commit();
  return d;
}
async function status(registry: TestRegistry, repo: string, what: 'blobs' | 'manifests', ref: string): Promise<number> {
  return (await fetch(`${registry.url}/v2/${repo}/${what}/${ref}`, { method: 'HEAD', headers: { ...auth, accept: OCI } })).status;
}
const inStore = (repo: string, d: string, registry = reg) => status(registry, repo, 'blobs', d);
const recordOf = (repo: string, d: string, registry = reg) => status(registry, repo, 'manifests', `rp-o-${d.slice(7)}`);

/**
 * docker-registry 2.8 ignores `n` on the tag list (pagination came with distribution 3): this
 * pass-through in front of it pages the registry's own answer the way distribution 3, Harbor or
 * GHCR do (`n`, `last`, a Link header while more follow). Everything else goes through untouched.
 */
async function pagingRelay(target: string): Promise<{ url: string; pages: string[]; garbage: boolean; close(): Promise<void> }> {
  const t = new URL(target);
  const pages: string[] = [];
  const state = { garbage: false };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: url.pathname.endsWith('/tags/list') ? url.pathname : req.url, headers: req.headers }, async (ur) => {
      if (!url.pathname.endsWith('/tags/list') || ur.statusCode !== 200) {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      for await (const c of ur as AsyncIterable<Buffer>) chunks.push(c);
      if (state.garbage) {
        res.writeHead(200, { 'content-type': 'application/json' }).end('<html>a login page</html>');
        return;
      }
      const doc = JSON.parse(Buffer.concat(chunks).toString()) as { name: string; tags: string[] };
      const n = Number(url.searchParams.get('n') ?? 100);
      const last = url.searchParams.get('last');
      const rest = doc.tags.sort().filter((x) => last === null || x > last);
      const tags = rest.slice(0, n);
      pages.push(url.search);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (rest.length > n) headers['link'] = `<${url.pathname}?n=${n}&last=${tags[tags.length - 1]}>; rel="next"`;
      res.writeHead(200, headers).end(JSON.stringify({ name: doc.name, tags }));
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    pages,
    get garbage() {
      return state.garbage;
    },
    set garbage(v: boolean) {
      state.garbage = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd');
  reg = await startRegistry({ store: 'store-pw' });
  spool = mkdtempSync(join(tmpdir(), 'rp-lifecycle-'));
});
beforeEach(() => {
  failures.length = 0;
  n++;
});
afterAll(async () => {
  for (const c of clients) await c.close();
  await reg?.stop();
  rmSync(spool, { recursive: true, force: true });
});

it('each object gets a record; a new instance indexes them through the paginated tag list (sizes, fill times) and lists them', async () => {
  const repo = `life/index${n}`;
  const a = store(repo);
  const before = Date.now();
  const digests = [];
  for (let i = 0; i < 5; i++) digests.push(await put(a, 1000 + i));
  // Link and tag records live in the same repository and are not objects.
  await a.addLink('hub', 'team/x', 'blob', digests[0] as string);
  expect(a.bytes).toBe(5010);
  for (const d of digests) expect(await recordOf(repo, d)).toBe(200);
  // Straight from docker-registry 2.8: one page with every tag.
  const c = store(repo);
  await c.index();
  expect(c.bytes).toBe(5010);
  // Paged, 2 tags at a time (6 tags: 5 object records, 1 link record): the index follows the Link headers.
  const relay = await pagingRelay(reg.url);
  try {
    const b = store(repo, { tagPage: 2 }, { url: relay.url } as TestRegistry);
    expect(b.bytes).toBe(0);
    const indexed: unknown[] = [];
    await store(repo, { tagPage: 2, onIndexed: (r) => indexed.push(r) }, { url: relay.url } as TestRegistry).index();
    expect(indexed).toEqual([{ objects: 5, bytes: 5010 }]);
    expect(relay.pages.length).toBe(3);
    expect(relay.pages[1]).toMatch(/^\?n=2&last=rp-/);
    await b.index();
    expect(b.bytes).toBe(5010);
  } finally {
    await relay.close();
  }
  const listed = [];
  for await (const o of c.list()) listed.push(o);
  expect(listed.map((o) => o.digest).sort()).toEqual([...digests].sort());
  expect(listed.map((o) => o.size).sort()).toEqual([1000, 1001, 1002, 1003, 1004]);
  for (const o of listed) expect(o.lastUsed).toBeGreaterThanOrEqual(before - 1);
  expect(failures).toEqual([]);
});

it('quota: the least recently used object is evicted (record, then blob) before an upload; a pinned or open one never is', async () => {
  const repo = `life/quota${n}`;
  const evicted: string[] = [];
  const s = store(repo, { maxBytes: 2500, onEvict: (d) => evicted.push(d) });
  const a = await put(s, 1000);
  const b = await put(s, 1000);
  s.touch(a); // b is now the least recently used
  const c = await put(s, 1000);
  expect(evicted).toEqual([b]);
  expect([await inStore(repo, a), await inStore(repo, b), await inStore(repo, c)]).toEqual([200, 404, 200]);
  expect(await recordOf(repo, b)).toBe(404);
  expect(s.bytes).toBe(2000);

  // a is now the least recently used, but being read (open until its handle closes): c goes.
  const open = await s.open(a);
  expect(open?.size).toBe(1000);
  const d = await put(s, 1000);
  expect(evicted).toEqual([b, c]);
  expect([await inStore(repo, a), await inStore(repo, c), await inStore(repo, d)]).toEqual([200, 404, 200]);
  await open?.handle.close();
  // Closed: a is the oldest again and goes next. A pin (a fill being served) spares d.
  const unpin = s.pin(d);
  const e = await put(s, 1000);
  unpin();
  expect(evicted).toEqual([b, c, a]);
  expect([await inStore(repo, a), await inStore(repo, d), await inStore(repo, e)]).toEqual([404, 200, 200]);
  // An object larger than the whole quota is refused before anything is written.
  await expect(s.create(sha(Buffer.alloc(3000)), 3000)).rejects.toThrow(/does not fit a cache of 2500 bytes/);
  expect(failures).toEqual([]);
});

it('a restarted instance evicts by the fill times its index found (oldest first) and counts objects it meets by reading them', async () => {
  const repo = `life/restart${n}`;
  const first = store(repo);
  const old = await put(first, 1000);
  await new Promise((r) => setTimeout(r, 20));
  const newer = await put(first, 1000);
  const evicted: string[] = [];
  const s = store(repo, { maxBytes: 2500, onEvict: (d) => evicted.push(d) });
  await s.index();
  await put(s, 1000);
  expect(evicted).toEqual([old]);
  expect([await inStore(repo, old), await inStore(repo, newer)]).toEqual([404, 200]);
  // Filled by another instance after this one's index: counted once read, and evictable.
  const other = await put(first, 400);
  expect(s.bytes).toBe(2000);
  await (await s.open(other))?.handle.close();
  expect(s.bytes).toBe(2400);
});

it('eviction removes the record under the object tag even when this process did not write it, or it was written again since', async () => {
  const repo = `life/records${n}`;
  const other = store(repo);
  const evicted: string[] = [];
  const s = store(repo, { maxBytes: 1500, onEvict: (d) => evicted.push(d) });
  // Filled by another instance; this one only reads it (knows its size, not its record).
  const x = await put(other, 1000);
  await (await s.open(x))?.handle.close();
  // Filled here, then its record replaced (another replica filled it again: a new fill time).
  await new Promise((r) => setTimeout(r, 5));
  const y = await put(s, 400);
  const rec = await (await fetch(`${reg.url}/v2/${repo}/manifests/rp-o-${y.slice(7)}`, { headers: { ...auth, accept: OCI } })).text();
  const again = rec.replace(/"io.github.registry-proxy.filled-at":"\d+"/, `"io.github.registry-proxy.filled-at":"${Date.now() + 1}"`);
  expect(again).not.toBe(rec);
  expect((await fetch(`${reg.url}/v2/${repo}/manifests/rp-o-${y.slice(7)}`, { method: 'PUT', headers: { ...auth, 'content-type': OCI }, body: again })).status).toBe(201);
  await put(s, 1400); // needs both gone: x (older use), then y
  expect(evicted.sort()).toEqual([x, y].sort()); // removed in parallel
  expect([await inStore(repo, x), await recordOf(repo, x), await inStore(repo, y), await recordOf(repo, y)]).toEqual([404, 404, 404, 404]);
});

it('an index that fails (a tag list that is garbage, a store that is down) is reported, not thrown; the store keeps working', async () => {
  const repo = `life/badindex${n}`;
  await put(store(repo), 100);
  const relay = await pagingRelay(reg.url);
  try {
    relay.garbage = true;
    const results: unknown[] = [];
    const s = store(repo, { onIndexed: (r) => results.push(r instanceof Error ? r.message : r) }, { url: relay.url } as TestRegistry);
    await s.index();
    expect(results).toEqual(['store registry sent a tag list that is not a JSON object']);
    expect(s.bytes).toBe(0);
    // Fills and reads go on without the index.
    const d = await put(s, 200);
    expect((await s.open(d))?.size).toBe(200);
    await s.close();
  } finally {
    await relay.close();
  }
  const downResults: unknown[] = [];
  const down = store(repo, { onIndexed: (r) => downResults.push(r instanceof Error ? r.message : r) }, { url: 'http://127.0.0.1:1' } as TestRegistry);
  await down.index();
  expect(downResults).toEqual([expect.stringContaining('ECONNREFUSED')]);
  await down.close();
});

it('an eviction the store refuses (delete disabled) is reported; the fill is stored all the same', async () => {
  const noDelete = await startRegistry({ store: 'store-pw' }, { deleteEnabled: false });
  try {
    const repo = 'life/nodelete';
    const failed: string[] = [];
    const s = store(repo, { maxBytes: 1500, onEvictFailed: (d, err) => failed.push(`${d} ${err.message}`) }, noDelete);
    const a = await put(s, 1000);
    const b = await put(s, 1000);
    expect(failed).toEqual([`${a} store registry answered 405 to a record DELETE`]);
    expect([await inStore(repo, a, noDelete), await inStore(repo, b, noDelete)]).toEqual([200, 200]);
    // Still counted (it is still there): tried again before the next fill.
    expect(s.bytes).toBe(2000);
    expect(failures).toEqual([]);
  } finally {
    await noDelete.stop();
  }
});

it('manifests under object-record tags that are not ours (wrong digest, a fill time that is not a number) are skipped by the index and the listing', async () => {
  const repo = `life/hostile${n}`;
  const s = store(repo);
  const good = await put(s, 100);
  const other = await put(s, 200);
  const rec = await (await fetch(`${reg.url}/v2/${repo}/manifests/rp-o-${good.slice(7)}`, { headers: { ...auth, accept: OCI } })).text();
  const forge = async (tag: string, body: string) => (await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { ...auth, 'content-type': OCI }, body })).status;
  // The good record copied under another object's tag: names another digest than its layer.
  expect(await forge(`rp-o-${other.slice(7)}`, rec)).toBe(201);
  // A record of the right object whose fill time is not a number.
  const third = await put(s, 300);
  expect(await forge(`rp-o-${third.slice(7)}`, rec.replace(good, third).replace(/"io.github.registry-proxy.filled-at":"\d+"/, '"io.github.registry-proxy.filled-at":"soon"'))).toBe(201);
  const listed = [];
  for await (const o of store(repo).list()) listed.push(o.digest);
  expect(listed).toEqual([good]);
  const fresh = store(repo);
  await fresh.index();
  expect(fresh.bytes).toBe(100);
});

it("distribution's garbage collection (--delete-untagged) keeps the objects that have records and reclaims evicted ones and blobs without a record", async () => {
  const gcReg = await startRegistry({ store: 'store-pw' });
  try {
    const repo = 'life/gc';
    const s = store(repo, { maxBytes: 2500 }, gcReg);
    const evicted = await put(s, 1000);
    const kept = await put(s, 1000);
    const refilled = await put(s, 400);
    await put(s, 1000); // evicts `evicted`
    expect(await inStore(repo, evicted, gcReg)).toBe(404);
    // An object whose record was replaced (filled again elsewhere): the old revision is untagged.
    const rec = await (await fetch(`${gcReg.url}/v2/${repo}/manifests/rp-o-${refilled.slice(7)}`, { headers: { ...auth, accept: OCI } })).text();
    const again = rec.replace(/"io.github.registry-proxy.filled-at":"\d+"/, '"io.github.registry-proxy.filled-at":"1"');
    expect((await fetch(`${gcReg.url}/v2/${repo}/manifests/rp-o-${refilled.slice(7)}`, { method: 'PUT', headers: { ...auth, 'content-type': OCI }, body: again })).status).toBe(201);
    // A blob uploaded without a record (as a build before records did).
    const bare = randomBytes(500);
    const loc = (await fetch(`${gcReg.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth })).headers.get('location') as string;
    const u = new URL(loc, gcReg.url);
    u.searchParams.set('digest', sha(bare));
    expect((await fetch(u, { method: 'PUT', headers: auth, body: bare })).status).toBe(201);
    await gcReg.stop();
    const gc = await run('docker-registry', ['garbage-collect', '--delete-untagged', join(gcReg.dir, 'config.yml')]);
    expect(gc.code).toBe(0);
    const data = (d: string) => existsSync(join(gcReg.dir, 'data/docker/registry/v2/blobs/sha256', d.slice(7, 9), d.slice(7), 'data'));
    expect([data(evicted), data(sha(bare)), data(kept), data(refilled)]).toEqual([false, false, true, true]);
    await gcReg.start?.();
    const fresh = store(repo, {}, gcReg);
    await fresh.index();
    expect(fresh.bytes).toBe(2400); // kept, refilled and the last fill: their records survived
  } finally {
    await gcReg.stop();
  }
});

it('regression: fills that run at the same time each make room for themselves, so together they do not leave the store above its quota', async () => {
  const repo = `life/together${n}`;
  const s = store(repo, { maxBytes: 3000 });
  const old = await put(s, 1500);
  // Sizes announced: both fills start (and look for room) before either is stored.
  const [a, b] = [randomBytes(1000), randomBytes(1000)];
  const [wa, wb] = [await s.create(sha(a), 1000), await s.create(sha(b), 1000)];
  await Promise.all([wa.write(a), wb.write(b)]);
  await Promise.all([wa.commit(), wb.commit()]);
  expect(s.bytes).toBeLessThanOrEqual(3000);
  expect([await inStore(repo, old), await inStore(repo, sha(a)), await inStore(repo, sha(b))]).toEqual([404, 200, 200]);
  // Sizes not announced: room is made as each completes, while the other's upload is under way.
  const [c, d] = [randomBytes(1000), randomBytes(1000)];
  const [wc, wd] = [await s.create(sha(c), undefined), await s.create(sha(d), undefined)];
  await Promise.all([wc.write(c), wd.write(d)]);
  await Promise.all([wc.commit(), wd.commit()]);
  expect(s.bytes).toBeLessThanOrEqual(3000);
  expect([await inStore(repo, sha(c)), await inStore(repo, sha(d))]).toEqual([200, 200]);
  expect(failures).toEqual([]);
});

it('regression: a fill time in the future (a replica whose clock runs ahead) does not keep an object at the recent end after an index', async () => {
  const repo = `life/skew${n}`;
  const first = store(repo);
  const ahead = await put(first, 1000);
  const used = await put(first, 1000);
  // The record of `ahead` as a replica a day ahead of this clock wrote it.
  const rec = await (await fetch(`${reg.url}/v2/${repo}/manifests/rp-o-${ahead.slice(7)}`, { headers: { ...auth, accept: OCI } })).text();
  const skewed = rec.replace(/"io.github.registry-proxy.filled-at":"\d+"/, `"io.github.registry-proxy.filled-at":"${Date.now() + 86_400_000}"`);
  expect((await fetch(`${reg.url}/v2/${repo}/manifests/rp-o-${ahead.slice(7)}`, { method: 'PUT', headers: { ...auth, 'content-type': OCI }, body: skewed })).status).toBe(201);
  const evicted: string[] = [];
  const s = store(repo, { maxBytes: 2500, onEvict: (x) => evicted.push(x) });
  await s.index();
  await new Promise((r) => setTimeout(r, 5));
  // `used` is read after the index; `ahead` is not: `ahead` is the least recently used.
  await (await s.open(used))?.handle.close();
  s.touch(used);
  await put(s, 1000);
  expect(evicted).toEqual([ahead]);
});

it('regression: a record whose size is not the object size is corrected when the object is read', async () => {
  const repo = `life/liar${n}`;
  const first = store(repo);
  const x = await put(first, 1000);
  const rec = await (await fetch(`${reg.url}/v2/${repo}/manifests/rp-o-${x.slice(7)}`, { headers: { ...auth, accept: OCI } })).text();
  const lie = rec.replace('"size":1000', '"size":1');
  expect(lie).not.toBe(rec);
  expect((await fetch(`${reg.url}/v2/${repo}/manifests/rp-o-${x.slice(7)}`, { method: 'PUT', headers: { ...auth, 'content-type': OCI }, body: lie })).status).toBe(201);
  const s = store(repo, { maxBytes: 2500 });
  await s.index();
  expect(s.bytes).toBe(1);
  await (await s.open(x))?.handle.close();
  expect(s.bytes).toBe(1000);
});

it('regression: an object filled again while its eviction is still under way is stored after that eviction, never deleted under its new record', async () => {
  const repo = `life/refill${n}`;
  // In front of the store: the blob DELETE of one object waits until the test lets it go.
  let held: string | undefined;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const t = new URL(reg.url);
  const relay = createServer((req, res) => {
    const go = async () => {
      if (req.method === 'DELETE' && held !== undefined && (req.url ?? '').endsWith(`/blobs/${held}`)) await gate;
      const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    void go();
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  try {
    const s = store(repo, { maxBytes: 1500 }, { url: `http://127.0.0.1:${(relay.address() as AddressInfo).port}` } as TestRegistry);
    const xData = randomBytes(1000);
    const x = sha(xData);
    const wx = await s.create(x, 1000);
    await wx.write(xData);
    await wx.commit();
    held = x;
    // A fill that needs room evicts x; x's blob DELETE is held.
    const other = put(s, 1000);
    await waitUntil(async () => (await recordOf(repo, x)) === 404);
    // x is asked for meanwhile: it is not offered (being evicted), so it is filled again.
    expect(await s.open(x)).toBeUndefined();
    const again = await s.create(x, 1000);
    await again.write(xData);
    const refilled = again.commit();
    await Promise.race([refilled, new Promise((r) => setTimeout(r, 500))]);
    release();
    await Promise.all([refilled, other]);
    // The refill's blob and record are both there (the eviction finished before its upload).
    expect([await inStore(repo, x), await recordOf(repo, x)]).toEqual([200, 200]);
    expect(failures).toEqual([]);
  } finally {
    release();
    relay.closeAllConnections();
    await new Promise((resolve) => relay.close(resolve));
  }
});

async function waitUntil(cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 10));
}

it('regression: an object evicted while the index runs is not counted again by the index (whose record GET was answered before the eviction)', async () => {
  const repo = `life/indexrace${n}`;
  const x = await put(store(repo), 1000); // filled by another instance: this one learns of it by its index or by reading it
  // In front of the store: the answer to the first GET of x's record (the index's) is held back.
  let heldOnce = false;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  let seen: () => void = () => undefined;
  const asked = new Promise<void>((r) => (seen = r));
  const t = new URL(reg.url);
  const relay = createServer((req, res) => {
    const hold = req.method === 'GET' && (req.url ?? '').endsWith(`/manifests/rp-o-${x.slice(7)}`) && !heldOnce;
    if (hold) heldOnce = true;
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      void (async () => {
        const chunks: Buffer[] = [];
        for await (const c of ur as AsyncIterable<Buffer>) chunks.push(c);
        if (hold) {
          seen();
          await gate;
        }
        res.writeHead(ur.statusCode ?? 502, ur.headers).end(Buffer.concat(chunks));
      })();
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  try {
    const evicted: string[] = [];
    const s = store(repo, { maxBytes: 1500, onEvict: (d) => evicted.push(d) }, { url: `http://127.0.0.1:${(relay.address() as AddressInfo).port}` } as TestRegistry);
    const indexed = s.index();
    await asked; // the index has x's record in hand
    await (await s.open(x))?.handle.close(); // counted by reading it
    const y = await put(s, 1000); // evicts x (record, then blob)
    expect(evicted).toEqual([x]);
    release();
    await indexed;
    expect([await inStore(repo, x), await inStore(repo, y)]).toEqual([404, 200]);
    expect(s.bytes).toBe(1000);
  } finally {
    release();
    relay.closeAllConnections();
    await new Promise((resolve) => relay.close(resolve));
  }
});

it('regression: a large fill that needs many small objects evicted removes them a few at a time, not all at once', async () => {
  const repo = `life/many${n}`;
  const relay = await startFlightRelay(reg.url);
  const flight = relay.flight;
  try {
    const evicted: string[] = [];
    const s = store(repo, { maxBytes: 40_000, onEvict: (d) => evicted.push(d) }, { url: relay.url } as TestRegistry);
    const small: string[] = [];
    for (let i = 0; i < 80; i++) small.push(await put(s, 500));
    flight.max = 0;
    const big = await put(s, 39_000);
    expect(evicted.length).toBe(78);
    expect(flight.max).toBeLessThanOrEqual(16);
    expect(s.bytes).toBe(40_000);
    expect([await inStore(repo, small[0] as string), await inStore(repo, small[79] as string), await inStore(repo, big)]).toEqual([404, 200, 200]);
  } finally {
    await relay.close();
  }
});

it('regression: spool files a crashed process left behind (older than an hour) are removed at start; younger ones and files not named as fills stay', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rp-spool-stale-'));
  try {
    const hex = 'a'.repeat(64);
    const stale = join(dir, `${hex}.4242.0123456789ab`);
    const young = join(dir, `${'b'.repeat(64)}.4242.0123456789ab`);
    const other = join(dir, 'notes.txt');
    for (const f of [stale, young, other]) writeFileSync(f, 'x'.repeat(1000));
    const twoHoursAgo = (Date.now() - 2 * 3_600_000) / 1000;
    utimesSync(stale, twoHoursAgo, twoHoursAgo);
    utimesSync(other, twoHoursAgo, twoHoursAgo);
    const s = store(`life/spool${n}`, { spoolDir: dir });
    await s.index();
    expect([existsSync(stale), existsSync(young), existsSync(other)]).toEqual([false, true, true]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
