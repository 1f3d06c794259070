/**
 * Two proxy processes (the built CLI, as a Deployment runs it) sharing one signing key, one real
 * redis-server and one `registry` cache store: a real docker-registry (htpasswd) holding the
 * objects, the repository links and the tag records, in front of a real docker-registry
 * upstream. Between the proxies and the upstream sits a counting relay (a plain HTTP
 * pass-through written here, not a stand-in: every byte comes from docker-registry) that counts
 * upstream blob fetches where they happen (200 answers only: the 401 that starts the upstream's
 * auth is not a fetch), paces blob bodies (64 KiB per 15 ms) so that pulls started together
 * overlap, and can play an upstream outage (503 to everything).
 */
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MT, Pusher, freePort, requireCommands, sampleImage, startDaemon, startRedis, startRegistry, waitFor, type Daemon, type TestRedis, type TestRegistry } from '@registry-proxy/testing';
import { stringify } from 'yaml';
import { startCountingRelay, type CountingRelay } from './support/counting-relay.js';

jest.setTimeout(180_000);
const MAIN = join(__dirname, '../dist/main.js');
const dir = mkdtempSync(join(tmpdir(), 'rp-cache-replicas-reg-'));
let redis: TestRedis;
let reg: TestRegistry;
let store: TestRegistry;
let relay: CountingRelay | undefined;
const counts = (): Map<string, number> => relay?.counts ?? new Map<string, number>();
const replicas: Array<{ url: string; daemon: Daemon }> = [];
let bearer = '';
let otherBearer = '';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const fetches = (digest: string) => counts().get(`GET /v2/team/app/blobs/${digest}`) ?? 0;
/** Every request that reached the upstream (any method, any path, any answer but the 401 of its auth dance). */
const upstreamTotal = () => [...counts().values()].reduce((a, b) => a + b, 0);

async function freshBlob(size = 4 << 20): Promise<{ digest: string; data: Buffer }> {
  const data = randomBytes(size);
  const digest = sha(data);
  await new Pusher(reg.url, 'up', 'up-pw').blob('team/app', { digest, data });
  return { digest, data };
}

async function pull(url: string, digest: string, repo = 'team/app'): Promise<{ status: number; digest: string }> {
  const r = await fetch(`${url}/v2/${repo}/blobs/${digest}`, { headers: { authorization: `Bearer ${repo === 'team/app' ? bearer : otherBearer}` }, signal: AbortSignal.timeout(120_000) });
  return { status: r.status, digest: sha(Buffer.from(await r.arrayBuffer())) };
}

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error('apps/proxy is not built: run `npm run build` (npm test does it first)');
  await requireCommands('redis-server', 'docker-registry', 'htpasswd');
  redis = await startRedis();
  reg = await startRegistry({ up: 'up-pw' });
  store = await startRegistry({ store: 'store-pw' });
  relay = await startCountingRelay(reg.url, (status) => status !== 401);
  const upstream = relay.url;
  const key = join(dir, 'signing.pem');
  writeFileSync(key, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, execFileSync('htpasswd', ['-nbB', 'alice', 'alice-pw']).toString().trim() + '\n');
  writeFileSync(join(dir, 'store-password'), 'store-pw');
  for (const i of [0, 1]) {
    const port = await freePort();
    const file = join(dir, `proxy${i}.yaml`);
    writeFileSync(
      file,
      stringify({
        listen: { host: '127.0.0.1', port },
        tokens: { signingKey: { file: key } },
        state: { redis: { url: redis.url, commandTimeoutMs: 3000 } },
        auth: [{ type: 'static', htpasswd }],
        rules: [{ account: 'alice', repository: 'team/**', actions: ['pull'] }],
        upstreams: [
          {
            name: 'local',
            url: upstream,
            attempts: 1,
            credentials: { type: 'static', username: 'up', password: 'up-pw' },
            cache: {
              // The shared store; each replica spools its own fills locally.
              store: {
                type: 'registry',
                url: store.url,
                repository: 'cache/objects',
                credentials: { type: 'static', username: 'store', password: { file: join(dir, 'store-password') } },
                spoolDir: join(dir, `spool${i}`),
              },
              maxBytes: '1GiB',
            },
          },
        ],
        log: { level: 'info' },
      }),
    );
    const daemon = startDaemon(process.execPath, [MAIN, '--config', file], join(dir, `proxy${i}.log`));
    const url = `http://127.0.0.1:${port}`;
    replicas.push({ url, daemon });
    await waitFor(`replica ${i}`, async () => (await fetch(`${url}/v2/`)).status === 401);
  }
  const basic = { authorization: `Basic ${Buffer.from('alice:alice-pw').toString('base64')}` };
  bearer = ((await (await fetch(`${replicas[0]?.url}/token?service=registry-proxy&scope=repository:team/app:pull`, { headers: basic })).json()) as { token: string }).token;
  otherBearer = ((await (await fetch(`${replicas[0]?.url}/token?service=registry-proxy&scope=repository:team/other:pull`, { headers: basic })).json()) as { token: string }).token;
});
afterAll(async () => {
  for (const r of replicas) await r.daemon.stop();
  await reg?.stop();
  await store?.stop();
  await redis?.destroy();
  await relay?.close();
  // RP_KEEP=1 keeps the replicas' logs for a look after a failure.
  if (!process.env.RP_KEEP) rmSync(dir, { recursive: true, force: true });
});

function pair(): [{ url: string }, { url: string }] {
  const [a, b] = replicas;
  if (!a || !b) throw new Error('the replicas did not start');
  return [a, b];
}

describe('two replicas, one redis, one registry store (docker-registry)', () => {
  it('a blob filled through one replica is served by the other with no upstream request at all: the object and its repository link are in the store', async () => {
    const [a, b] = pair();
    const blob = await freshBlob(1 << 20);
    expect(await pull(a.url, blob.digest)).toEqual({ status: 200, digest: blob.digest });
    expect(fetches(blob.digest)).toBe(1);
    const before = upstreamTotal();
    // B has never seen this digest: without the link in the store it would ask the upstream (a HEAD) first.
    expect(await pull(b.url, blob.digest)).toEqual({ status: 200, digest: blob.digest });
    expect(upstreamTotal() - before).toBe(0);
    // The link is per repository: through team/other B asks the upstream, which does not have it there.
    expect((await pull(b.url, blob.digest, 'team/other')).status).toBe(404);
    expect(counts().get(`HEAD /v2/team/other/blobs/${blob.digest}`)).toBe(1);
  });

  it('100 concurrent cold pulls of one blob, spread over both replicas: exactly 1 upstream fetch, every client gets every byte', async () => {
    const [a, b] = pair();
    const blob = await freshBlob(4 << 20);
    const got = await Promise.all(Array.from({ length: 100 }, (_, i) => pull(i % 2 ? b.url : a.url, blob.digest)));
    expect(got.filter((g) => g.status === 200 && g.digest === blob.digest).length).toBe(100);
    expect(fetches(blob.digest)).toBe(1);
  });

  it('a tag resolved through one replica is served by the other while the upstream is down: the tag record is in the store', async () => {
    const [a, b] = pair();
    const image = sampleImage('amd64', 2000);
    await new Pusher(reg.url, 'up', 'up-pw').image('team/app', 'shared', image);
    const tag = async (url: string) => {
      const r = await fetch(`${url}/v2/team/app/manifests/shared`, { headers: { authorization: `Bearer ${bearer}`, accept: MT.manifest } });
      return { status: r.status, digest: sha(Buffer.from(await r.arrayBuffer())) };
    };
    expect(await tag(a.url)).toEqual({ status: 200, digest: image.digest });
    if (relay) relay.down = true;
    try {
      expect(await tag(b.url)).toEqual({ status: 200, digest: image.digest });
    } finally {
      if (relay) relay.down = false;
    }
  });
});
