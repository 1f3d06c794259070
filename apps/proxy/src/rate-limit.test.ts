import { RateLimiter } from './rate-limit.js';

describe('RateLimiter', () => {
  it('allows a burst, then refills at the rate, per key', () => {
    let now = 0;
    const r = new RateLimiter(3, 2, 100, () => now);
    expect([r.take('a'), r.take('a'), r.take('a')].every((x) => x.ok)).toBe(true);
    expect(r.take('a')).toEqual({ ok: false, retryAfter: 1 });
    expect(r.take('b').ok).toBe(true); // another key has its own bucket
    now = 500; // one token back
    expect(r.take('a').ok).toBe(true);
    expect(r.take('a').ok).toBe(false);
    now = 10_000;
    expect([r.take('a'), r.take('a'), r.take('a'), r.take('a')].map((x) => x.ok)).toEqual([true, true, true, false]);
  });
  it('says how long to wait, and forgets the oldest keys beyond its bound', () => {
    const now = 0;
    const slow = new RateLimiter(1, 0.1, 2, () => now);
    slow.take('x');
    expect(slow.take('x')).toEqual({ ok: false, retryAfter: 10 });
    slow.take('y');
    slow.take('z'); // x is evicted
    expect(slow.take('x').ok).toBe(true);
  });
});
