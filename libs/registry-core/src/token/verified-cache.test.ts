import { VerifiedCache } from './verified-cache.js';

describe('VerifiedCache', () => {
  it('keeps an entry until exp plus the clock tolerance, then drops it', () => {
    let now = 1000;
    const c = new VerifiedCache<string>(30, 10, () => now);
    c.set('k', 'v', 1100);
    expect(c.get('k')).toBe('v');
    now = 1129;
    expect(c.get('k')).toBe('v');
    now = 1130;
    expect(c.get('k')).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it('is bounded: the oldest insertion goes first', () => {
    const c = new VerifiedCache<number>(0, 3, () => 0);
    for (let i = 0; i < 5; i++) c.set(`k${i}`, i, 100);
    expect(c.size).toBe(3);
    expect([c.get('k0'), c.get('k1'), c.get('k2'), c.get('k4')]).toEqual([undefined, undefined, 2, 4]);
  });
});
