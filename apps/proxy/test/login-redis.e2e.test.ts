/**
 * CLI secrets (browser sign-in) on a real redis-server shared by two replicas: a secret made on
 * one is accepted by the other, a revocation on either is seen by both, and a Redis that is
 * down refuses (AuthBackendError: the token endpoint's 503) instead of guessing.
 */
import { AuthBackendError } from '@registry-proxy/registry-core';
import { requireCommands, startRedis, type TestRedis } from '@registry-proxy/testing';
import pino from 'pino';
import type { Redis } from 'ioredis';
import { RedisCliSecretStore } from '../src/login/redis-store.js';
import { CliSecrets } from '../src/login/secrets.js';
import { createRedisClient } from '../src/state/redis.js';

jest.setTimeout(60_000);
const alice = { subject: 'alice', method: 'oidc-login', groups: ['devs'], labels: {} };
let redis: TestRedis;
const clients: Redis[] = [];

const replica = async () => {
  const client = createRedisClient({ url: redis.url, keyPrefix: 'rp-test:', commandTimeoutMs: 300, connectTimeoutMs: 1000 }, pino({ level: 'silent' }));
  await client.connect();
  clients.push(client);
  return new CliSecrets({ store: new RedisCliSecretStore(client), ttlSeconds: 3600, revalidateAfterSeconds: 600, maxPerSubject: 3, revalidate: async (r) => ({ identity: r.identity }) });
};

beforeAll(async () => {
  await requireCommands('redis-server');
  redis = await startRedis();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await redis?.destroy();
});

describe('CLI secrets shared through redis', () => {
  it('a secret made on one replica works on the other; a revocation on either holds on both', async () => {
    const a = await replica();
    const b = await replica();
    const { secret, record } = await a.create(alice);
    expect(await b.verify('alice', secret)).toMatchObject({ result: 'allow', identity: { subject: 'alice' } });
    expect((await b.list('alice')).map((r) => r.id)).toEqual([record.id]);
    expect((await b.list()).map((r) => r.id)).toContain(record.id); // operators see everyone's
    expect(await b.revoke(record.id, 'alice')).toBe(true);
    expect(await a.verify('alice', secret)).toMatchObject({ result: 'deny' });
    expect(await a.list('alice')).toEqual([]);
  });

  it("keeps only the hash, with the secret's own expiry", async () => {
    const a = await replica();
    const { secret, record } = await a.create(alice);
    const raw = await clients[0]?.get(`cli:rec:${record.hash}`);
    expect(raw).toBeDefined();
    expect(raw).not.toContain(secret);
    const ttl = (await clients[0]?.pttl(`cli:rec:${record.hash}`)) ?? 0;
    expect(ttl).toBeGreaterThan(3590_000);
    expect(ttl).toBeLessThanOrEqual(3600_000);
  });

  it('refuses (AuthBackendError) while redis is down, and works again when it is back', async () => {
    const a = await replica();
    const { secret } = await a.create(alice);
    await redis.stop();
    try {
      await expect(a.verify('alice', secret)).rejects.toBeInstanceOf(AuthBackendError);
    } finally {
      await redis.start();
    }
    // A restarted redis-server here is empty (no persistence): the secret is gone, and says so.
    for (let i = 0; i < 50 && clients.at(-1)?.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await a.verify('alice', secret)).toMatchObject({ result: 'deny' });
  });
});
