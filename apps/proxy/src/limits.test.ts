/**
 * FailureGate against a limiter that answers late, as Redis does: the window between taking
 * a point and settling it is where copies of one credential share the point.
 */
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { FailureGate } from './limits.js';

/** A memory limiter whose calls take `ms`, like a round trip to Redis. */
function slowLimiter(points: number, ms = 20): RateLimiterMemory {
  const l = new RateLimiterMemory({ points, duration: 300 });
  const delay = <T>(p: Promise<T>) =>
    new Promise<T>((resolve, reject) =>
      p.then(
        (v) => setTimeout(() => resolve(v), ms),
        (e: unknown) => setTimeout(() => reject(e), ms),
      ),
    );
  for (const m of ['consume', 'reward', 'delete', 'get'] as const) {
    const f = (l[m] as (...a: unknown[]) => Promise<unknown>).bind(l);
    (l as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => delay(f(...a));
  }
  return l;
}

describe('FailureGate', () => {
  it('a copy turned away before its check cannot give back the point a refused copy beside it spent (3 points: 3 guesses)', async () => {
    const gate = new FailureGate(slowLimiter(3));
    const key = FailureGate.accountKey('bob', '10.0.0.1');
    const checked: string[] = [];
    for (let i = 0; i < 10; i++) {
      const guess = `wrong-${i}`;
      // A: an invalid request (settled before any check); B: the same credential, checked and refused.
      const [a, b] = await Promise.all([gate.enter(key, guess), gate.enter(key, guess)]);
      if (a.wait !== undefined || b.wait !== undefined) {
        await Promise.all([a.done('other'), b.done('other')]);
        continue;
      }
      await a.done('other');
      checked.push(guess);
      await b.done('denied');
    }
    expect(checked).toEqual(['wrong-0', 'wrong-1', 'wrong-2']);
  });

  it('a group with no refused copy gives its point back once; a success clears the count', async () => {
    const limiter = slowLimiter(2);
    const gate = new FailureGate(limiter);
    const key = FailureGate.accountKey('alice', '10.0.0.2');
    for (let i = 0; i < 5; i++) {
      const copies = await Promise.all([gate.enter(key, 'pw'), gate.enter(key, 'pw'), gate.enter(key, 'pw')]);
      expect(copies.map((c) => c.wait)).toEqual([undefined, undefined, undefined]);
      await Promise.all(copies.map((c) => c.done('other')));
    }
    expect((await limiter.get(key))?.consumedPoints ?? 0).toBe(0);
    const wrong = await gate.enter(key, 'nope');
    await wrong.done('denied');
    expect((await limiter.get(key))?.consumedPoints).toBe(1);
    const right = await gate.enter(key, 'pw');
    await right.done('issued');
    expect(await limiter.get(key)).toBeNull();
  });

  it('names that a directory matches as one account share one budget', () => {
    const keys = ['alice', 'ALICE', ' alice', 'alice  ', 'AlIcE', 'ａｌｉｃｅ'].map((u) => FailureGate.accountKey(u, '10.0.0.3'));
    expect(new Set(keys).size).toBe(1);
    expect(FailureGate.accountKey('al ice', 'x')).toBe(FailureGate.accountKey('al   ice', 'x'));
    expect(FailureGate.accountKey('alice', '10.0.0.3')).not.toBe(FailureGate.accountKey('alice', '10.0.0.4'));
  });
});
