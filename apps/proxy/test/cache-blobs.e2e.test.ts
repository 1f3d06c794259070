/**
 * The pull-through cache's blob path against a stand-in upstream (support/blob-upstream.ts: a
 * real HTTP server speaking the registry's blob wire format, which can be held mid-body, lie,
 * or break off, and counts requests): fills, shared fills, ranges, authorization by repository,
 * bad bytes, clients and upstreams that go away, and the store on disk afterwards.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { freePort, waitFor } from '@registry-proxy/testing';
import { getGlobalDispatcher } from 'undici';
import { digestOf, startBlobUpstream, type BlobUpstream } from './support/blob-upstream.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { metric as metricOf } from './support/metrics.js';

jest.setTimeout(60_000);
const PW = 'cache-pw-5e1f';
let up: BlobUpstream;
let proxy: TestProxy;
let store: string;

beforeAll(async () => {
  up = await startBlobUpstream();
  store = mkdtempSync(join(tmpdir(), 'rp-cache-'));
  const hash = bcrypt.hashSync(PW, 4);
  proxy = await startTestProxy({
    auth: [
      {
        type: 'static',
        users: [
          { username: 'alice', passwordHash: hash },
          { username: 'bob', passwordHash: hash },
        ],
      },
    ],
    rules: [
      { account: 'alice', repository: ['a/**', 'b/**'], actions: ['pull'] },
      { account: 'bob', repository: ['b/**'], actions: ['pull'] },
    ],
    upstreams: [{ name: 'up', url: up.url, attempts: 1, cache: { store: { type: 'filesystem', path: store }, maxBytes: '64MiB' } }],
  });
});
afterAll(async () => {
  await proxy?.close();
  await up?.stop();
  if (store) rmSync(store, { recursive: true, force: true });
  await getGlobalDispatcher().close();
});

const tokens = new Map<string, string>();
async function token(user: string, repo: string): Promise<string> {
  const key = `${user} ${repo}`;
  const known = tokens.get(key);
  if (known) return known;
  const q = new URLSearchParams({ service: 'registry-proxy', scope: `repository:${repo}:pull` });
  const res = await fetch(`${proxy.url}/token?${q}`, { headers: { authorization: `Basic ${Buffer.from(`${user}:${PW}`).toString('base64')}` } });
  const t = ((await res.json()) as { token: string }).token;
  tokens.set(key, t);
  return t;
}

/** A GET with node:http (fetch pools and retries): status, headers, body, and whether the body arrived whole. */
function get(path: string, bearer: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    const req = request(`${proxy.url}${path}`, { method, headers: { authorization: `Bearer ${bearer}`, ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const done = () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete });
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
    // A connection cut before the status line: no status, nothing complete.
    req.on('error', () => resolve({ status: 0, headers: {}, body: Buffer.alloc(0), complete: false }));
    req.end();
  });
}

const objectFile = (d: string) => join(store, 'blobs', 'sha256', d.slice(7, 9), d.slice(7));
const tmpFiles = () => readdirSync(join(store, 'tmp'));
/** Files of the store this process (the proxy runs in it) has open. */
const openStoreFiles = () =>
  readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((p) => p.startsWith(store));
const metric = (name: string, labels: Record<string, string> = {}) => metricOf(proxy, name, labels);

describe('blobs through the cache', () => {
  it('fills on the first pull and serves the next from the store, without asking the upstream again', async () => {
    const data = randomBytes(3 << 20);
    const d = up.add(data, ['a/one']);
    const t = await token('alice', 'a/one');
    const first = await get(`/v2/a/one/blobs/${d}`, t);
    expect([first.status, first.complete, first.body.equals(data)]).toEqual([200, true, true]);
    expect(existsSync(objectFile(d))).toBe(true);
    const second = await get(`/v2/a/one/blobs/${d}`, t);
    expect([second.status, second.body.equals(data), second.headers['docker-content-digest']]).toEqual([200, true, d]);
    const head = await get(`/v2/a/one/blobs/${d}`, t, {}, 'HEAD');
    expect([head.status, head.headers['content-length']]).toEqual([200, String(data.length)]);
    expect(up.count('GET', 'a/one', d)).toBe(1);
    expect(up.count('HEAD', 'a/one', d)).toBe(0);
    expect(tmpFiles()).toEqual([]);
    expect(await metric('registry_proxy_cache_requests_total', { kind: 'blob', result: 'hit' })).toBeGreaterThanOrEqual(2);
  });

  it('100 clients pulling one uncached blob at once cause one upstream request, and all get every byte', async () => {
    const data = randomBytes(1 << 20);
    const d = up.add(data, ['a/herd']);
    const t = await token('alice', 'a/herd');
    up.hold(); // the fill stops half-way until every client has asked
    const pulls = Array.from({ length: 100 }, () => get(`/v2/a/herd/blobs/${d}`, t));
    await new Promise((r) => setTimeout(r, 500));
    up.release();
    const got = await Promise.all(pulls);
    expect(got.filter((g) => g.status === 200 && g.complete && g.body.equals(data)).length).toBe(100);
    expect(up.count('GET', 'a/herd', d)).toBe(1);
    // Regression: requests that came while the fill was still waiting for the upstream's answer
    // each sent a HEAD to check the repository, although the fill was for that same repository.
    expect(up.count('HEAD', 'a/herd', d)).toBe(0);
  });

  it('serves ranges (206) from the store and from a fill in progress', async () => {
    const data = randomBytes(2 << 20);
    const d = up.add(data, ['a/range']);
    const t = await token('alice', 'a/range');
    up.hold();
    const during = get(`/v2/a/range/blobs/${d}`, t, { range: 'bytes=100-199' });
    await new Promise((r) => setTimeout(r, 200));
    up.release();
    const r1 = await during;
    expect([r1.status, r1.headers['content-range'], r1.body.equals(data.subarray(100, 200))]).toEqual([206, `bytes 100-199/${data.length}`, true]);
    const r2 = await get(`/v2/a/range/blobs/${d}`, t, { range: 'bytes=-10' });
    expect([r2.status, r2.body.equals(data.subarray(data.length - 10))]).toEqual([206, true]);
    const r3 = await get(`/v2/a/range/blobs/${d}`, t, { range: `bytes=${data.length - 5}-` });
    expect([r3.status, r3.body.equals(data.subarray(data.length - 5))]).toEqual([206, true]);
    expect(up.count('GET', 'a/range', d)).toBe(1);
  });

  it('does not serve a blob cached for one repository through another the upstream does not have it in', async () => {
    const data = randomBytes(256 << 10);
    const d = up.add(data, ['a/private']);
    expect((await get(`/v2/a/private/blobs/${d}`, await token('alice', 'a/private'))).status).toBe(200);
    // alice may pull b/public, and names a digest she learnt elsewhere: the upstream says it is not there.
    const other = await get(`/v2/b/public/blobs/${d}`, await token('alice', 'b/public'));
    expect(other.status).toBe(404);
    expect(JSON.parse(other.body.toString()).errors[0].code).toBe('BLOB_UNKNOWN');
    expect(other.body.includes(data.subarray(0, 64))).toBe(false);
    // bob cannot pull a/private at all: the cache is never asked.
    const bob = await get(`/v2/a/private/blobs/${d}`, await token('bob', 'b/public'));
    expect(bob.status).toBe(401);
  });

  it('serves a cached blob through another repository once the upstream confirms it there (one HEAD, no second GET)', async () => {
    const data = randomBytes(256 << 10);
    const d = up.add(data, ['a/base', 'b/derived']);
    expect((await get(`/v2/a/base/blobs/${d}`, await token('alice', 'a/base'))).status).toBe(200);
    const t = await token('bob', 'b/derived');
    const r = await get(`/v2/b/derived/blobs/${d}`, t);
    expect([r.status, r.body.equals(data)]).toEqual([200, true]);
    await get(`/v2/b/derived/blobs/${d}`, t);
    expect([up.count('GET', 'a/base', d), up.count('GET', 'b/derived', d), up.count('HEAD', 'b/derived', d)]).toEqual([1, 0, 1]);
  });

  it('never stores bytes that do not match the digest, and never hands them over whole', async () => {
    const data = randomBytes(1 << 20);
    const lie = Buffer.from(data);
    lie.writeUInt8(lie.readUInt8(lie.length - 1) ^ 0xff, lie.length - 1);
    const d = up.add(data, ['a/liar'], { lie });
    const t = await token('alice', 'a/liar');
    const r = await get(`/v2/a/liar/blobs/${d}`, t);
    expect(r.complete).toBe(false);
    expect(r.body.length).toBeLessThan(data.length);
    expect(existsSync(objectFile(d))).toBe(false);
    expect(tmpFiles()).toEqual([]);
    expect(await metric('registry_proxy_cache_errors_total', { reason: 'digest' })).toBe(1);
    // The upstream mends its ways: the next pull fills again.
    up.blobs.set(d, { data, repositories: ['a/liar'] });
    const again = await get(`/v2/a/liar/blobs/${d}`, t);
    expect([again.status, again.complete, again.body.equals(data)]).toEqual([200, true, true]);
  });

  it('a client leaving mid-fill does not stop the fill for the others', async () => {
    const data = randomBytes(4 << 20);
    const d = up.add(data, ['a/leave']);
    const t = await token('alice', 'a/leave');
    up.hold();
    const leaver = request(`${proxy.url}/v2/a/leave/blobs/${d}`, { headers: { authorization: `Bearer ${t}` }, agent: false }, (res) => res.once('data', () => req.destroy()));
    const req = leaver;
    req.on('error', () => undefined);
    req.end();
    await new Promise((r) => setTimeout(r, 200));
    const stayer = get(`/v2/a/leave/blobs/${d}`, t);
    await new Promise((r) => setTimeout(r, 200));
    up.release();
    const s = await stayer;
    expect([s.status, s.complete, s.body.equals(data)]).toEqual([200, true, true]);
    expect(existsSync(objectFile(d))).toBe(true);
    expect(up.count('GET', 'a/leave', d)).toBe(1);
  });

  it('(regression) clients leaving at every point of fills and hits leave no file of the store open', async () => {
    // A client that left while a store read was in flight left its request waiting for ever
    // (src/cache/serve.test.ts), with the object's file open until garbage collection closed it.
    const t = await token('alice', 'a/leavers');
    const hit = up.add(randomBytes(8 << 20), ['a/leavers']);
    expect((await get(`/v2/a/leavers/blobs/${hit}`, t)).status).toBe(200);
    for (let round = 0; round < 6; round++) {
      const cold = up.add(randomBytes(8 << 20), ['a/leavers']);
      await Promise.all(
        Array.from(
          { length: 20 },
          (_, i) =>
            new Promise<void>((resolve) => {
              const req = request(`${proxy.url}/v2/a/leavers/blobs/${i % 2 ? hit : cold}`, { headers: { authorization: `Bearer ${t}` }, agent: false }, (res) => {
                let n = 0;
                res.on('data', (c: Buffer) => {
                  n += c.length;
                  if (n > (i + 1) * 150_000) req.destroy();
                });
                res.on('close', () => resolve());
              });
              req.on('error', () => resolve());
              req.end();
            }),
        ),
      );
    }
    await waitFor('no store file open', async () => openStoreFiles().length === 0, 5000).catch(() => undefined);
    expect(openStoreFiles()).toEqual([]);
  });

  it('an upstream that breaks off mid-body leaves nothing behind, and the next pull fills cleanly', async () => {
    const data = randomBytes(1 << 20);
    const d = up.add(data, ['a/broken'], { breakAfter: 300_000 });
    const t = await token('alice', 'a/broken');
    const r = await get(`/v2/a/broken/blobs/${d}`, t);
    // A registry error if it broke before the proxy sent anything, a cut connection after.
    expect(r.status === 502 || !r.complete).toBe(true);
    expect(r.body.equals(data)).toBe(false);
    expect(existsSync(objectFile(d))).toBe(false);
    await new Promise((r) => setTimeout(r, 100));
    expect(tmpFiles()).toEqual([]);
    up.blobs.set(d, { data, repositories: ['a/broken'] });
    const again = await get(`/v2/a/broken/blobs/${d}`, t);
    expect([again.status, again.body.equals(data)]).toEqual([200, true]);
  });

  it('finds a corrupted stored object before sending any of it: removed, fetched again, the client gets the right bytes', async () => {
    const data = randomBytes(3 << 20);
    const d = up.add(data, ['a/rot']);
    const t = await token('alice', 'a/rot');
    expect((await get(`/v2/a/rot/blobs/${d}`, t)).body.equals(data)).toBe(true);
    expect((await get(`/v2/a/rot/blobs/${d}`, t)).body.equals(data)).toBe(true); // served, known good
    const bad = Buffer.from(data);
    bad.writeUInt8(bad.readUInt8(12345) ^ 0x01, 12345);
    writeFileSync(objectFile(d), bad); // same size, one bit flipped
    const r = await get(`/v2/a/rot/blobs/${d}`, t);
    expect([r.status, r.complete, r.body.equals(data)]).toEqual([200, true, true]);
    expect(await metric('registry_proxy_cache_errors_total', { reason: 'corrupt' })).toBe(1);
    expect(up.count('GET', 'a/rot', d)).toBe(2);
    // Stored again, good this time: the next pull is a hit.
    expect(readFileSync(objectFile(d)).equals(data)).toBe(true);
    expect((await get(`/v2/a/rot/blobs/${d}`, t)).body.equals(data)).toBe(true);
    expect(up.count('GET', 'a/rot', d)).toBe(2);
  });

  it('finds a corrupted object asked for by range, and answers the range from a new fill', async () => {
    const data = randomBytes(512 << 10);
    const d = up.add(data, ['a/rot2']);
    const t = await token('alice', 'a/rot2');
    await get(`/v2/a/rot2/blobs/${d}`, t);
    writeFileSync(objectFile(d), randomBytes(data.length));
    const r = await get(`/v2/a/rot2/blobs/${d}`, t, { range: 'bytes=0-99' });
    expect([r.status, r.body.equals(data.subarray(0, 100))]).toEqual([206, true]);
    expect(await metric('registry_proxy_cache_errors_total', { reason: 'corrupt' })).toBe(2);
  });

  it('answers for unknown blobs with the upstream registry error', async () => {
    const d = digestOf(randomBytes(10));
    const r = await get(`/v2/a/one/blobs/${d}`, await token('alice', 'a/one'));
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body.toString()).errors[0].code).toBe('BLOB_UNKNOWN');
  });
});

describe('the size quota', () => {
  it('evicts the least recently used blob through the proxy, and counts it', async () => {
    const small = mkdtempSync(join(tmpdir(), 'rp-cache-quota-'));
    const q = await startTestProxy({
      auth: [{ type: 'static', users: [{ username: 'alice', passwordHash: bcrypt.hashSync(PW, 4) }] }],
      rules: [{ account: 'alice', repository: ['a/**'], actions: ['pull'] }],
      upstreams: [{ name: 'up', url: up.url, attempts: 1, cache: { store: { type: 'filesystem', path: small }, maxBytes: 2621440 } }],
    });
    try {
      const tq = (
        (await (
          await fetch(`${q.url}/token?service=registry-proxy&scope=repository:a/quota:pull`, { headers: { authorization: `Basic ${Buffer.from(`alice:${PW}`).toString('base64')}` } })
        ).json()) as { token: string }
      ).token;
      const pullQ = async (d: string) => {
        const r = await fetch(`${q.url}/v2/a/quota/blobs/${d}`, { headers: { authorization: `Bearer ${tq}` } });
        return Buffer.from(await r.arrayBuffer());
      };
      const blobs = [randomBytes(1 << 20), randomBytes(1 << 20), randomBytes(1 << 20)];
      const [a, b, c] = blobs.map((x) => up.add(x, ['a/quota'])) as [string, string, string];
      await pullQ(a);
      await pullQ(b);
      await pullQ(a); // a is now more recent than b
      await pullQ(c);
      const file = (d: string) => join(small, 'blobs', 'sha256', d.slice(7, 9), d.slice(7));
      expect([existsSync(file(a)), existsSync(file(b)), existsSync(file(c))]).toEqual([true, false, true]);
      expect(await q.metrics.registry.getSingleMetricAsString('registry_proxy_cache_evictions_total')).toMatch(/registry_proxy_cache_evictions_total\{store="[^"]+"\} 1/);
      expect((await pullQ(b)).equals(blobs[1] as Buffer)).toBe(true); // refilled
    } finally {
      await q.close();
      rmSync(small, { recursive: true, force: true });
    }
  });
});

describe('an upstream that cannot be reached', () => {
  it('fails the blob with a registry error, and (regression) does not keep failing once it is back', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'rp-cache-down-'));
    const p = await startTestProxy({
      auth: [{ type: 'static', users: [{ username: 'alice', passwordHash: bcrypt.hashSync(PW, 4) }] }],
      rules: [{ account: 'alice', repository: ['a/**'], actions: ['pull'] }],
      upstreams: [{ name: 'down', url: `http://127.0.0.1:${port}`, attempts: 1, cache: { store: { type: 'filesystem', path: dir }, maxBytes: '1GiB' } }],
    });
    const data = randomBytes(1000);
    const d = digestOf(data);
    const late = createServer((req, res) => {
      if (req.url === `/v2/a/x/blobs/${d}`) res.writeHead(200, { 'content-length': data.length }).end(data);
      else res.writeHead(404).end();
    });
    try {
      const tq = (
        (await (await fetch(`${p.url}/token?service=registry-proxy&scope=repository:a/x:pull`, { headers: { authorization: `Basic ${Buffer.from(`alice:${PW}`).toString('base64')}` } })).json()) as {
          token: string;
        }
      ).token;
      const first = await fetch(`${p.url}/v2/a/x/blobs/${d}`, { headers: { authorization: `Bearer ${tq}` } });
      expect(first.status).toBe(502);
      expect(((await first.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('BAD_GATEWAY');
      await new Promise<void>((r) => late.listen(port, '127.0.0.1', r));
      const second = await fetch(`${p.url}/v2/a/x/blobs/${d}`, { headers: { authorization: `Bearer ${tq}` } });
      expect(second.status).toBe(200);
      expect(Buffer.from(await second.arrayBuffer()).equals(data)).toBe(true);
    } finally {
      late.closeAllConnections();
      late.close();
      await p.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
