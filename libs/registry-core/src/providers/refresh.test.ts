import { Refreshing } from './refresh.js';

describe('Refreshing', () => {
  let now = 0;
  const clock = () => now;
  it('fetches once, shares a fetch between concurrent callers, renews after refreshAt', async () => {
    now = 1000;
    let n = 0;
    const r = new Refreshing(async () => ({ value: ++n, refreshAt: now + 100, expiresAt: now + 200 }), {}, clock);
    expect(await Promise.all([r.get(), r.get(), r.get()])).toEqual([1, 1, 1]);
    now += 99;
    expect(await r.get()).toBe(1);
    now += 1;
    expect(await r.get()).toBe(2);
  });
  it('keeps a still-valid value when renewal fails, and retries later; fails once it has expired', async () => {
    now = 0;
    let fail = false;
    let calls = 0;
    const r = new Refreshing(
      async () => {
        calls++;
        if (fail) throw new Error('down');
        return { value: 'v', refreshAt: now + 100, expiresAt: now + 200 };
      },
      { retryMs: 30 },
      clock,
    );
    await r.get();
    fail = true;
    now = 150;
    expect(await r.get()).toBe('v');
    expect(await r.get()).toBe('v'); // within retryMs: no new attempt
    expect(calls).toBe(2);
    now = 181;
    expect(await r.get()).toBe('v');
    expect(calls).toBe(3);
    now = 200;
    await expect(r.get()).rejects.toThrow('down');
  });
  it('invalidate drops a value only once it is older than minAgeMs', async () => {
    now = 0;
    let n = 0;
    const r = new Refreshing(async () => ({ value: ++n, refreshAt: now + 10_000, expiresAt: now + 20_000 }), { minAgeMs: 50 }, clock);
    await r.get();
    now = 49;
    r.invalidate();
    expect(await r.get()).toBe(1);
    now = 50;
    r.invalidate();
    expect(await r.get()).toBe(2);
  });
});
