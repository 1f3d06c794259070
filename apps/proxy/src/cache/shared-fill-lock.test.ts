/**
 * The cross-replica fill lock against a real redis-server (libs/testing): two lock instances
 * with a Redis client each play two replicas.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { startRedis, type TestRedis } from '@registry-proxy/testing';
import { pino } from 'pino';
import { RedisStateStore, createRedisClient } from '../state/redis.js';
import { FilesystemStore } from './filesystem-store.js';
import { awaitReplicaFill } from './replica-wait.js';
import { SharedFillLock } from './shared-fill-lock.js';

jest.setTimeout(30_000);
// Valid digests (the store refuses anything else) of objects nobody stores.
const DEAD = `sha256:${'d'.repeat(64)}`;
const STUCK = `sha256:${'5'.repeat(64)}`;
let redis: TestRedis;
const stores: RedisStateStore[] = [];
const lines: string[] = [];
const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function replica(leaseMs = 300): Promise<{ lock: SharedFillLock; fallbacks: () => number; state: RedisStateStore }> {
  const state = new RedisStateStore(createRedisClient({ url: redis.url, keyPrefix: 'test:', commandTimeoutMs: 300, connectTimeoutMs: 500 }, logger));
  await state.connect();
  stores.push(state);
  let n = 0;
  return { lock: new SharedFillLock(state, logger, { scope: 'filesystem:/cache', leaseMs, onFallback: () => void n++ }), fallbacks: () => n, state };
}

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const s of stores) await s.close();
  await redis?.destroy();
});

describe('SharedFillLock on a real redis-server', () => {
  it('one filler across replicas; the lease is renewed while it runs (held 4 leases long); released, the other replica gets it', async () => {
    const [a, b] = [await replica(), await replica()];
    const lease = await a.lock.tryAcquire('sha256:one', 60_000);
    expect(lease).toBeDefined();
    expect(await b.lock.tryAcquire('sha256:one', 60_000)).toBeUndefined();
    await sleep(1200); // four 300 ms leases: without renewal the key would have expired
    expect(await b.lock.tryAcquire('sha256:one', 60_000)).toBeUndefined();
    await lease?.release();
    const next = await b.lock.tryAcquire('sha256:one', 60_000);
    expect(next).toBeDefined();
    await next?.release();
    expect([a.fallbacks(), b.fallbacks()]).toEqual([0, 0]);
  });

  it('a filler that died (no renewals) frees the key within one lease: the waiter takes over the fill', async () => {
    const [b] = [await replica()];
    const dead = await replica();
    // A replica that took the lock and then vanished: the raw lock, never extended.
    expect(await dead.state.lock(`fill:filesystem:/cache:${DEAD}`, 300)).toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), 'rp-lockwait-'));
    try {
      const store = await FilesystemStore.open(dir, 1 << 20);
      const t0 = Date.now();
      const w = await awaitReplicaFill(store, b.lock, DEAD, 60_000, 5000, 50);
      expect(w && 'lease' in w).toBe(true);
      expect(Date.now() - t0).toBeLessThan(2000);
      if (w && 'lease' in w) await w.lease.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a waiter sees the object the other replica published in the shared store, and never takes the lock', async () => {
    const [a, b] = [await replica(), await replica()];
    const dir = mkdtempSync(join(tmpdir(), 'rp-lockwait-'));
    try {
      const data = randomBytes(4096);
      const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      const [sa, sb] = [await FilesystemStore.open(dir, 1 << 20), await FilesystemStore.open(dir, 1 << 20)];
      const lease = await a.lock.tryAcquire(digest, 60_000);
      expect(lease).toBeDefined();
      const waiting = awaitReplicaFill(sb, b.lock, digest, 60_000, 5000, 50);
      await sleep(200);
      const w = await sa.create(digest, data.length);
      await w.write(data);
      await w.commit();
      expect(await waiting).toEqual({ stored: true });
      await lease?.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a bounded wait: a live filler that never publishes sends the waiter to the upstream after maxWaitMs', async () => {
    const [a, b] = [await replica(), await replica()];
    const dir = mkdtempSync(join(tmpdir(), 'rp-lockwait-'));
    try {
      const lease = await a.lock.tryAcquire(STUCK, 60_000);
      const t0 = Date.now();
      expect(await awaitReplicaFill(await FilesystemStore.open(dir, 1 << 20), b.lock, STUCK, 60_000, 600, 50)).toBeUndefined();
      expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
      await lease?.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('redis stopped: fails open to the local lock at once, with a warning and a counted fallback; shared again once redis is back', async () => {
    const a = await replica();
    await redis.stop();
    try {
      lines.length = 0;
      const t0 = Date.now();
      const lease = await a.lock.tryAcquire('sha256:down', 60_000);
      expect(lease).toBeDefined();
      expect(Date.now() - t0).toBeLessThan(1000);
      // Still one filler per process.
      expect(await a.lock.tryAcquire('sha256:down', 60_000)).toBeUndefined();
      expect(a.fallbacks()).toBe(1);
      expect(lines.join('')).toContain('cache fill lock on this replica only');
      await lease?.release();
    } finally {
      await redis.start();
    }
    const b = await replica();
    await waitShared(a, b); // a's client reconnects on its own (retry strategy: 100 ms and up)
  });
});

/** After reconnecting, a lock taken on `a` refuses `b`: it is in Redis again. */
async function waitShared(a: Awaited<ReturnType<typeof replica>>, b: Awaited<ReturnType<typeof replica>>): Promise<void> {
  for (let i = 0; i < 40; i++) {
    const before = a.fallbacks();
    const l = await a.lock.tryAcquire(`sha256:again${i}`, 60_000);
    const other = await b.lock.tryAcquire(`sha256:again${i}`, 60_000);
    await l?.release();
    await other?.release();
    if (a.fallbacks() === before && l && !other) return;
    await sleep(100);
  }
  throw new Error('the lock did not become shared again after redis came back');
}
