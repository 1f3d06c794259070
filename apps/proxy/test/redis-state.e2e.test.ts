/**
 * The state engines against a real redis-server (Debian's, on a temporary unix socket): the
 * same contract for memory and Redis, and what each kind of check does when Redis is stopped
 * or frozen with SIGSTOP (accepts connections, never answers).
 */
import { Writable } from 'node:stream';
import { MemoryStateStore, StateUnavailableError, type StateStore } from '@registry-proxy/registry-core';
import { requireCommands, startRedis, waitFor, type TestRedis } from '@registry-proxy/testing';
import type { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createLogger } from '../src/logging.js';
import { redisLimiters, takeOne } from '../src/state/limiter.js';
import { RedisStateStore, createRedisClient, redisConnection } from '../src/state/redis.js';

jest.setTimeout(60_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let redis: TestRedis;
const logs: string[] = [];
const logger = createLogger('debug', new Writable({ write: (c: Buffer, _e, cb) => (logs.push(c.toString()), cb()) }));
const opened: Array<{ client: Redis; store: RedisStateStore }> = [];

async function redisStore(keyPrefix = 'rp-test:', commandTimeoutMs = 200, url = redis.url) {
  const client = createRedisClient({ url, keyPrefix, commandTimeoutMs, connectTimeoutMs: 1000 }, logger);
  const store = new RedisStateStore(client);
  expect(await store.connect()).toBe(true);
  opened.push({ client, store });
  return { client, store };
}

beforeAll(async () => {
  await requireCommands('redis-server');
  redis = await startRedis();
});
afterAll(async () => {
  for (const o of opened) await o.store.close();
  await redis?.destroy();
});

describe.each([
  ['memory', async (): Promise<StateStore> => new MemoryStateStore()],
  ['redis', async (): Promise<StateStore> => (await redisStore(`c${Math.random()}:`)).store],
])('the %s engine', (_name, make) => {
  it('claims on first use, renews the same value, refuses another, and forgets after the ttl', async () => {
    const s = await make();
    expect(await s.claim('i-1', 'a', 300)).toEqual({ claimed: true });
    await sleep(200);
    expect(await s.claim('i-1', 'a', 300)).toEqual({ claimed: true }); // renewed
    await sleep(200);
    expect(await s.claim('i-1', 'b', 300)).toEqual({ claimed: false, current: 'a' });
    await sleep(350);
    expect(await s.claim('i-1', 'b', 300)).toEqual({ claimed: true });
  });

  it('puts and gets with a ttl', async () => {
    const s = await make();
    await s.put('k', 'v', 150);
    expect(await s.get('k')).toBe('v');
    expect(await s.get('missing')).toBeUndefined();
    await sleep(250);
    expect(await s.get('k')).toBeUndefined();
  });

  it('hands a lock to one holder at a time, with increasing fences; an expired holder cannot release its successor', async () => {
    const s = await make();
    const [a, b] = await Promise.all([s.lock('blob', 200), s.lock('blob', 200)]);
    expect([a, b].filter(Boolean)).toHaveLength(1);
    const held = (a ?? b)!;
    expect(await held.extend(200)).toBe(true);
    await sleep(300);
    const next = await s.lock('blob', 1000);
    expect(next?.fence).toBeGreaterThan(held.fence);
    expect(await held.release()).toBe(false);
    expect(await held.extend(1000)).toBe(false);
    expect(await s.lock('blob', 1000)).toBeUndefined();
    expect(await next?.release()).toBe(true);
    expect(await s.lock('blob', 1000)).toBeDefined();
  });
});

describe('redis', () => {
  it('keeps deployments with different key prefixes apart, and sees one deployment from two clients', async () => {
    const [a, a2, b] = [await redisStore('dep-a:'), await redisStore('dep-a:', 200, redis.tcpUrl), await redisStore('dep-b:')];
    await a.store.put('k', 'from-a', 10_000);
    expect(await a2.store.get('k')).toBe('from-a'); // the same Redis over TCP
    expect(await b.store.get('k')).toBeUndefined();
  });

  it('rejects URLs it cannot use, naming the key', () => {
    expect(() => redisConnection('http://127.0.0.1:6379')).toThrow(/state\.redis\.url: must start with redis:\/\/, rediss:\/\/ or unix:\/\//);
    expect(redisConnection('unix:///run/redis/r%20s.sock')).toEqual({ path: '/run/redis/r s.sock' });
  });

  it('shares rate-limit counters between clients (replicas)', async () => {
    const [one, two] = [await redisStore('rl-share:'), await redisStore('rl-share:')];
    const spec = { keyPrefix: 'shared', points: 3, durationSeconds: 60 };
    const l1 = redisLimiters(one.client, logger)(spec);
    const l2 = redisLimiters(two.client, logger)(spec);
    expect(l1).toBeInstanceOf(RateLimiterRedis);
    const results = [await takeOne(l1, 'k', logger), await takeOne(l2, 'k', logger), await takeOne(l1, 'k', logger), await takeOne(l2, 'k', logger)];
    expect(results.map((r) => r.ok)).toEqual([true, true, true, false]);
    expect(results[3]).toMatchObject({ ok: false, retryAfter: expect.any(Number) });
  });
});

describe('a Redis with a password', () => {
  it('authenticates with the password in the URL, refuses a wrong one, and never logs it', async () => {
    const locked = await startRedis({ password: 'pw-7f3a9c' });
    logs.length = 0;
    try {
      const port = new URL(locked.tcpUrl).port;
      const ok = createRedisClient({ url: `redis://:pw-7f3a9c@127.0.0.1:${port}`, keyPrefix: 'auth:', commandTimeoutMs: 500, connectTimeoutMs: 1000 }, logger);
      const good = new RedisStateStore(ok);
      expect(await good.connect()).toBe(true);
      await good.put('k', 'v', 1000);
      expect(await good.get('k')).toBe('v');
      await good.close();
      const wrong = new RedisStateStore(createRedisClient({ url: `redis://:wrong-9d2e1b@127.0.0.1:${port}`, keyPrefix: 'auth:', commandTimeoutMs: 500, connectTimeoutMs: 1000 }, logger));
      await wrong.connect();
      await expect(wrong.get('k')).rejects.toBeInstanceOf(StateUnavailableError);
      await wrong.close();
      expect(logs.join('')).toContain('redis unreachable');
      expect(logs.join('')).not.toMatch(/pw-7f3a9c|wrong-9d2e1b/);
    } finally {
      await locked.destroy();
    }
  });
});

describe('when redis is down', () => {
  afterEach(async () => {
    redis.thaw();
    if (redis.pid === undefined) await redis.start();
  });

  /** Every record operation rejects with StateUnavailableError within `ms`. */
  async function allRefuse(store: StateStore, ms: number) {
    for (const op of [() => store.claim('i', 'n', 1000), () => store.get('r'), () => store.put('r', 'x', 1000), () => store.lock('l', 1000)]) {
      const t0 = performance.now();
      await expect(op()).rejects.toBeInstanceOf(StateUnavailableError);
      expect(performance.now() - t0).toBeLessThan(ms);
    }
  }

  it('stopped: record operations fail at once (closed), rate limits count on this replica (open, logged), and it recovers', async () => {
    const { client, store } = await redisStore('down:');
    const limiter = redisLimiters(client, logger)({ keyPrefix: 'down', points: 2, durationSeconds: 60 });
    await redis.stop();
    await sleep(100);
    await allRefuse(store, 100);
    const takes = [await takeOne(limiter, 'k', logger), await takeOne(limiter, 'k', logger), await takeOne(limiter, 'k', logger)];
    expect(takes.map((t) => t.ok)).toEqual([true, true, false]); // the replica's own counters still hold
    expect(logs.some((l) => l.includes('rate limit counted on this replica only'))).toBe(true);
    await redis.start();
    const until = Date.now() + 10_000;
    while (Date.now() < until && client.status !== 'ready') await sleep(50);
    expect(await store.claim('i', 'n', 1000)).toEqual({ claimed: true });
  });

  it('frozen (SIGSTOP): the first command waits out the command timeout, later ones fail at once; thawed, it recovers', async () => {
    const { client, store } = await redisStore('frozen:', 200);
    const limiter = redisLimiters(client, logger)({ keyPrefix: 'frozen', points: 5, durationSeconds: 60 });
    redis.freeze();
    const t0 = performance.now();
    await expect(store.get('x')).rejects.toBeInstanceOf(StateUnavailableError);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    expect(performance.now() - t0).toBeLessThan(200 + 300);
    // The unanswered command dropped the connection: a frozen Redis now counts as down.
    await allRefuse(store, 50);
    const t1 = performance.now();
    expect(await takeOne(limiter, 'k', logger)).toEqual({ ok: true });
    expect(performance.now() - t1).toBeLessThan(50);
    redis.thaw();
    await waitFor('recovery after thaw', async () => (await store.claim('after', 'thaw', 1000)).claimed);
  });
});
