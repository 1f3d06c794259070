import bcrypt from 'bcryptjs';
import { BcryptWorkers } from './bcrypt-worker.js';

describe('BcryptWorkers', () => {
  const pool = new BcryptWorkers(2);
  afterAll(() => pool.close());

  it('compares right and wrong passwords, and survives garbage hashes', async () => {
    const h = bcrypt.hashSync('s3cret', 4);
    await expect(pool.compare('s3cret', h)).resolves.toBe(true);
    await expect(pool.compare('wrong', h)).resolves.toBe(false);
    await expect(pool.compare('x', 'not a hash')).resolves.toBe(false);
    const many = await Promise.all(Array.from({ length: 8 }, (_, i) => pool.compare(i % 2 ? 's3cret' : 'no', h)));
    expect(many).toEqual([false, true, false, true, false, true, false, true]);
  });

  it('keeps the event loop running while a slow hash is checked', async () => {
    const slow = bcrypt.hashSync('pw', 12); // hundreds of milliseconds of hashing
    let longest = 0;
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 2);
    const started = performance.now();
    await expect(pool.compare('pw', slow)).resolves.toBe(true);
    const took = performance.now() - started;
    clearInterval(tick);
    // On the main thread the loop would have stalled for the whole comparison.
    expect(took).toBeGreaterThan(100);
    expect(longest).toBeLessThan(took / 2);
  });
});
