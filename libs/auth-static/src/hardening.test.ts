/**
 * Issue 11, defect 4: the bcrypt queue was unbounded, unknown usernames answered in a few
 * milliseconds (known ones in 150-200 ms), and every login paid a full bcrypt compare.
 */
import bcrypt from 'bcryptjs';
import { AuthOverloadedError, VerifierChain } from '@registry-proxy/registry-core';
import { BcryptWorkers } from './bcrypt-worker.js';
import { StaticStrategy } from './strategy.js';

jest.setTimeout(60_000);
const pools: BcryptWorkers[] = [];
afterAll(() => Promise.all(pools.map((p) => p.close())));
const pool = (size: number, maxQueue: number) => {
  const p = new BcryptWorkers({ size, maxQueue });
  pools.push(p);
  return p;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

describe('defect 4: unknown usernames cost what known ones cost', () => {
  const workers = pool(1, 64);
  const strategy = new StaticStrategy({ users: [{ username: 'alice', passwordHash: bcrypt.hashSync('pw', 9) }], workers, cacheSeconds: 0 });
  const chain = new VerifierChain([strategy]);

  it('runs a bcrypt compare for an unknown user (counted on the workers)', async () => {
    const before = workers.stats.compares;
    expect(await chain.verify('nobody', 'guess')).toEqual({ result: 'deny', reason: 'no strategy knows this user' });
    expect(workers.stats.compares).toBe(before + 1);
  });

  it('answers unknown and known users in about the same time (medians of 7)', async () => {
    const time = async (user: string) => {
      const t = performance.now();
      await chain.verify(user, 'wrong');
      return performance.now() - t;
    };
    await time('alice'); // warm the worker
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 7; i++) {
      known.push(await time('alice'));
      unknown.push(await time(`nobody${i}`));
    }
    const [k, u] = [median(known), median(unknown)];
    // Cost 9 is ~40 ms of hashing; without the decoy an unknown name takes well under 1 ms.
    // Coarse on purpose: the machine is shared, so only the order of magnitude is asserted.
    expect(k).toBeGreaterThan(10);
    // Without the decoy the ratio is about 0.001 (measured); with it, about 1.
    expect(u / k).toBeGreaterThan(0.25);
    expect(u / k).toBeLessThan(4);
  });
});

describe('defect 4: the verification queue is bounded', () => {
  it('refuses comparisons beyond the bound at once, with AuthOverloadedError', async () => {
    const workers = pool(1, 2);
    const slow = bcrypt.hashSync('pw', 11);
    const first = [workers.compare('pw', slow), workers.compare('x', slow)];
    const t = performance.now();
    await expect(workers.compare('y', slow)).rejects.toBeInstanceOf(AuthOverloadedError);
    expect(performance.now() - t).toBeLessThan(50);
    expect(workers.stats.overloaded).toBe(1);
    expect(await Promise.all(first)).toEqual([true, false]);
    await expect(workers.compare('pw', slow)).resolves.toBe(true); // room again
  });
});

describe('defect 4: successful verifications are cached, failures never', () => {
  it('checks a right password once per TTL, a wrong one every time, and shares checks in flight', async () => {
    const workers = pool(1, 64);
    const s = new StaticStrategy({ users: [{ username: 'bob', passwordHash: bcrypt.hashSync('bpw', 6) }], workers, cacheSeconds: 60 });
    const at = workers.stats.compares;
    // Ten nodes logging in at once with the same credential: one compare.
    const herd = await Promise.all(Array.from({ length: 10 }, () => s.verify('bob', 'bpw')));
    expect(herd.every((o) => o.result === 'allow')).toBe(true);
    expect(workers.stats.compares).toBe(at + 1);
    expect((await s.verify('bob', 'bpw')).result).toBe('allow');
    expect(workers.stats.compares).toBe(at + 1);
    expect((await s.verify('bob', 'nope')).result).toBe('deny');
    expect((await s.verify('bob', 'nope')).result).toBe('deny');
    expect(workers.stats.compares).toBe(at + 3);
  });
  it('with cacheSeconds 0 checks every time', async () => {
    const workers = pool(1, 64);
    const s = new StaticStrategy({ users: [{ username: 'bob', passwordHash: bcrypt.hashSync('bpw', 4) }], workers, cacheSeconds: 0 });
    await s.verify('bob', 'bpw');
    await s.verify('bob', 'bpw');
    expect(workers.stats.compares).toBe(2);
  });
});

describe('StaticStrategy.lookup (refresh re-checks, issue 11 defect 7)', () => {
  it('allows a listed user with their groups now, denies one no longer listed, skips other methods', async () => {
    const s = new StaticStrategy({ users: [{ username: 'bob', passwordHash: bcrypt.hashSync('x', 4), groups: ['dev'] }] });
    expect(await s.lookup({ subject: 'bob', method: 'htpasswd', groups: [], labels: {} })).toEqual({ result: 'allow', identity: { subject: 'bob', method: 'htpasswd', groups: ['dev'], labels: {} } });
    expect((await s.lookup({ subject: 'carol', method: 'htpasswd', groups: [], labels: {} })).result).toBe('deny');
    expect((await s.lookup({ subject: 'bob', method: 'ldap', groups: [], labels: {} })).result).toBe('skip');
  });
});

describe('defect 4: accounts take turns in the queue', () => {
  it("forty waiting checks for one account hold another account's check up by one comparison, not forty", async () => {
    const workers = pool(1, 64);
    const h = bcrypt.hashSync('pw', 6);
    const order: string[] = [];
    const alice = Array.from({ length: 40 }, (_, i) => workers.compare(`wrong${i}`, h, 'alice').then(() => order.push('alice')));
    const bob = workers.compare('pw', h, 'bob').then((ok) => order.push(ok ? 'bob' : 'bob-wrong'));
    await Promise.all([...alice, bob]);
    // Alice's first check was already running and her second queued before bob's: bob's is
    // then next, whatever else alice has waiting (first come, first served: 41st).
    expect(order.indexOf('bob')).toBeLessThanOrEqual(2);
    expect(order).toHaveLength(41);
  });
});
