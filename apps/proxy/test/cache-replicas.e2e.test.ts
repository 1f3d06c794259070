/**
 * Two proxy processes (the built CLI, as a Deployment runs it) sharing one signing key, one real
 * redis-server and one cache directory (a shared volume), in front of a real docker-registry.
 * Between the proxies and the registry sits a counting relay (a plain HTTP pass-through written
 * here, not a stand-in: every byte comes from docker-registry) so the test can count upstream
 * blob fetches where they happen (answers 200 only: the 401 that starts the upstream's auth is
 * not a fetch); it also slows blob bodies down (64 KiB per 15 ms), so that
 * two pulls started together really overlap.
 *
 * The same with the `registry` store (a docker-registry as the shared store) is
 * cache-replicas-registry.e2e.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pusher, freePort, requireCommands, startDaemon, startRedis, startRegistry, waitFor, type Daemon, type TestRedis, type TestRegistry } from '@registry-proxy/testing';
import { stringify } from 'yaml';
import { startCountingRelay, type CountingRelay } from './support/counting-relay.js';

jest.setTimeout(120_000);
const MAIN = join(__dirname, '../dist/main.js');
const dir = mkdtempSync(join(tmpdir(), 'rp-cache-replicas-'));
let redis: TestRedis;
let reg: TestRegistry;
let relay: CountingRelay | undefined;
const counts = (): Map<string, number> => relay?.counts ?? new Map<string, number>();
const replicas: Array<{ url: string; daemon: Daemon }> = [];
let bearer = '';
let otherBearer = '';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const fetches = (digest: string) => counts().get(`GET /v2/team/app/blobs/${digest}`) ?? 0;
const heads = (digest: string) => counts().get(`HEAD /v2/team/app/blobs/${digest}`) ?? 0;

/** Pushes a fresh random blob of `size` bytes to team/app; returns its digest and bytes. */
async function freshBlob(size = 4 << 20): Promise<{ digest: string; data: Buffer }> {
  const data = randomBytes(size);
  const digest = sha(data);
  await new Pusher(reg.url, 'up', 'up-pw').blob('team/app', { digest, data });
  return { digest, data };
}

async function pull(url: string, digest: string, repo = 'team/app'): Promise<{ status: number; digest: string }> {
  const r = await fetch(`${url}/v2/${repo}/blobs/${digest}`, { headers: { authorization: `Bearer ${repo === 'team/app' ? bearer : otherBearer}` } });
  return { status: r.status, digest: sha(Buffer.from(await r.arrayBuffer())) };
}

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error('apps/proxy is not built: run `npm run build` (npm test does it first)');
  await requireCommands('redis-server', 'docker-registry', 'htpasswd');
  redis = await startRedis();
  reg = await startRegistry({ up: 'up-pw' });
  relay = await startCountingRelay(reg.url, (status) => status === 200);
  const upstream = relay.url;
  const key = join(dir, 'signing.pem');
  writeFileSync(key, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, execFileSync('htpasswd', ['-nbB', 'alice', 'alice-pw']).toString().trim() + '\n');
  const cache = join(dir, 'cache'); // the shared volume
  for (const i of [0, 1]) {
    const port = await freePort();
    const file = join(dir, `proxy${i}.yaml`);
    writeFileSync(
      file,
      stringify({
        listen: { host: '127.0.0.1', port },
        tokens: { signingKey: { file: key } },
        state: { redis: { url: redis.url, commandTimeoutMs: 300 } },
        auth: [{ type: 'static', htpasswd }],
        rules: [{ account: 'alice', repository: 'team/**', actions: ['pull'] }],
        upstreams: [
          { name: 'local', url: upstream, attempts: 1, credentials: { type: 'static', username: 'up', password: 'up-pw' }, cache: { store: { type: 'filesystem', path: cache }, maxBytes: '1GiB' } },
        ],
        log: { level: 'info' },
      }),
    );
    const daemon = startDaemon(process.execPath, [MAIN, '--config', file], join(dir, `proxy${i}.log`));
    const url = `http://127.0.0.1:${port}`;
    replicas.push({ url, daemon });
    await waitFor(`replica ${i}`, async () => (await fetch(`${url}/v2/`)).status === 401);
  }
  const t = await fetch(`${replicas[0]?.url}/token?service=registry-proxy&scope=repository:team/app:pull`, { headers: { authorization: `Basic ${Buffer.from('alice:alice-pw').toString('base64')}` } });
  bearer = ((await t.json()) as { token: string }).token;
  const o = await fetch(`${replicas[0]?.url}/token?service=registry-proxy&scope=repository:team/other:pull`, {
    headers: { authorization: `Basic ${Buffer.from('alice:alice-pw').toString('base64')}` },
  });
  otherBearer = ((await o.json()) as { token: string }).token;
});
afterAll(async () => {
  for (const r of replicas) await r.daemon.stop();
  await reg?.stop();
  await redis?.destroy();
  await relay?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The two replicas started above. */
function pair(): [{ url: string }, { url: string }] {
  const [a, b] = replicas;
  if (!a || !b) throw new Error('the replicas did not start');
  return [a, b];
}

describe('two replicas, one redis, one cache volume', () => {
  it('a blob filled through one replica is served from the cache by the other, without an upstream request', async () => {
    const [a, b] = pair();
    const blob = await freshBlob(1 << 20);
    expect(await pull(a.url, blob.digest)).toEqual({ status: 200, digest: blob.digest });
    expect([fetches(blob.digest), heads(blob.digest)]).toEqual([1, 0]);
    expect(await pull(b.url, blob.digest)).toEqual({ status: 200, digest: blob.digest });
    expect([fetches(blob.digest), heads(blob.digest)]).toEqual([1, 0]);
  });

  it('cold pulls of one blob through both replicas at once: exactly 1 upstream fetch', async () => {
    const [a, b] = pair();
    const blob = await freshBlob();
    const both = await Promise.all([pull(a.url, blob.digest), pull(b.url, blob.digest)]);
    expect(both).toEqual([
      { status: 200, digest: blob.digest },
      { status: 200, digest: blob.digest },
    ]);
    // With in-process locks only, the second replica relays the blob itself: 2.
    expect(fetches(blob.digest)).toBe(1);
  });

  it("a replica that waited for another replica's fill still checks its own repository: a digest filled through team/app is not served through team/other", async () => {
    const [a, b] = pair();
    const blob = await freshBlob(8 << 20);
    const first = pull(a.url, blob.digest);
    // The upstream has started sending to A, so A holds the fill lock; its paced body takes about 2 s more, and B waits for it.
    await waitFor('A filling', async () => fetches(blob.digest) === 1, 10_000);
    const [viaApp, viaOther] = await Promise.all([first, pull(b.url, blob.digest, 'team/other')]);
    expect(viaApp).toEqual({ status: 200, digest: blob.digest });
    expect(viaOther.status).toBe(404);
    expect(fetches(blob.digest)).toBe(1);
  });

  it('redis stopped: pulls through both replicas still work (locks fall back to each replica: at most one fetch each), counted in metrics', async () => {
    const [a, b] = pair();
    const blob = await freshBlob();
    await redis.stop();
    try {
      const both = await Promise.all([pull(a.url, blob.digest), pull(b.url, blob.digest)]);
      expect(both).toEqual([
        { status: 200, digest: blob.digest },
        { status: 200, digest: blob.digest },
      ]);
      expect(fetches(blob.digest)).toBeGreaterThanOrEqual(1);
      expect(fetches(blob.digest)).toBeLessThanOrEqual(2);
      const metrics = (await Promise.all([a.url, b.url].map(async (u) => (await fetch(`${u}/metrics`)).text()))).join('\n');
      expect(metrics).toMatch(/registry_proxy_cache_lock_fallbacks_total\{store="[^"]+"\} [1-9]/);
    } finally {
      await redis.start();
    }
  });
});
