/**
 * Issue 11, defect 4 at a running proxy: 40 wrong passwords for one user pushed another user's
 * login from 0.06 s to 4.3 s (an unbounded bcrypt queue). Now failures per (account, address)
 * are limited before any hashing, the queue is bounded (503 UNAVAILABLE + Retry-After beyond it,
 * counted), and a user's login waits at most behind the bound.
 */
import bcrypt from 'bcryptjs';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(120_000);
const proxies: TestProxy[] = [];
afterAll(() => Promise.all(proxies.map((p) => p.close())));

// Cost 10, as `htpasswd -B` writes by default: tens of milliseconds per compare.
const ALICE = 'alice-pw-77aa';
const BOB = 'bob-pw-88bb';
const hashes = { alice: bcrypt.hashSync(ALICE, 10), bob: bcrypt.hashSync(BOB, 10) };

async function proxy(extra: Record<string, unknown>): Promise<TestProxy> {
  const p = await startTestProxy({
    trustedProxies: ['127.0.0.1'],
    auth: [
      {
        type: 'static',
        cacheSeconds: 0,
        users: [
          { username: 'alice', passwordHash: hashes.alice },
          { username: 'bob', passwordHash: hashes.bob },
        ],
      },
    ],
    rules: [{ repository: '**', actions: ['pull'] }],
    upstreams: [{ name: 'up', url: 'http://127.0.0.1:9' }],
    passwordChecks: { workers: 1 },
    ...extra,
  });
  proxies.push(p);
  return p;
}
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const ask = (p: TestProxy, from: string, user: string, pw: string) =>
  fetch(`${p.url}/token?service=registry-proxy&scope=repository:team/app:pull`, { headers: { 'x-forwarded-for': from, authorization: basic(user, pw) } });
const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const t = performance.now();
  const r = await f();
  return [r, performance.now() - t];
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

describe('defect 4: a burst of wrong passwords does not hold up other logins', () => {
  it("40 wrong passwords for alice at once delay bob's login by at most the failure budget", async () => {
    const p = await proxy({ rateLimits: { failures: { points: 5, durationSeconds: 300 } } });
    const alone: number[] = [];
    for (let i = 0; i < 5; i++) {
      const [res, ms] = await timed(() => ask(p, '10.9.0.2', 'bob', BOB));
      expect(res.status).toBe(200);
      alone.push(ms);
    }
    const single = median(alone);
    const flood = Array.from({ length: 40 }, (_, i) => ask(p, '10.9.0.1', 'alice', `wrong${i}`));
    const [bob, during] = await timed(() => ask(p, '10.9.0.2', 'bob', BOB));
    const statuses = (await Promise.all(flood)).map((r) => r.status);
    expect(bob.status).toBe(200);
    // Only the failure budget (5) reached bcrypt; the other 35 were refused before hashing.
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(35);
    // Bob waits behind at most 5 compares plus his own (1 worker). Before the fix: behind 40.
    process.stdout.write(`defect 4: bob's login alone ${single.toFixed(0)} ms (median of 5), during 40 wrong passwords for alice ${during.toFixed(0)} ms\n`);
    expect(during).toBeLessThan(single * 6 + 1000);
  });

  it("with no failure limit, 40 wrong passwords for alice still hold bob's login up by about one comparison (accounts take turns)", async () => {
    const p = await proxy({ rateLimits: { failures: { points: 1000 } }, passwordChecks: { workers: 1, maxQueue: 64 } });
    const alone: number[] = [];
    for (let i = 0; i < 5; i++) alone.push((await timed(() => ask(p, '10.7.0.2', 'bob', BOB)))[1]);
    const single = median(alone);
    const flood = Array.from({ length: 40 }, (_, i) => ask(p, '10.7.0.1', 'alice', `wrong${i}`));
    await new Promise((r) => setTimeout(r, 50)); // the flood is queued first
    const [bob, during] = await timed(() => ask(p, '10.7.0.2', 'bob', BOB));
    const [flooded, floodMs] = await timed(() => Promise.all(flood));
    expect(bob.status).toBe(200);
    expect(flooded.map((r) => r.status)).toEqual(Array(40).fill(401));
    process.stdout.write(`defect 4 (turns): bob alone ${single.toFixed(0)} ms, during 40 queued wrong passwords for alice ${during.toFixed(0)} ms; the flood took ${floodMs.toFixed(0)} ms more\n`);
    // First come, first served, bob would wait for all 40 (about 40 x single).
    expect(during).toBeLessThan(single * 4 + 500);
  });

  it('beyond the queue bound answers 503 UNAVAILABLE with Retry-After, and counts it', async () => {
    const p = await proxy({ passwordChecks: { workers: 1, maxQueue: 4 } });
    // From 30 addresses, so the per-address failure limit does not step in first.
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => timed(() => ask(p, `10.8.0.${i + 1}`, 'alice', `wrong${i}`))));
    const overloaded = results.filter(([r]) => r.status === 503);
    expect(overloaded.length).toBeGreaterThanOrEqual(20);
    expect(results.filter(([r]) => r.status === 401).length).toBeGreaterThanOrEqual(4);
    const [res] = overloaded[0] as [Response, number];
    expect(res.headers.get('retry-after')).toBe('1');
    expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('UNAVAILABLE');
    const counted = (await p.metrics.tokens.get()).values.find((v) => v.labels['outcome'] === 'overloaded')?.value;
    expect(counted).toBe(overloaded.length);
    // Once the queue drains, logins work again.
    expect((await ask(p, '10.8.1.1', 'bob', BOB)).status).toBe(200);
  });
});
