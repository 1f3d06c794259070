import { MemoryStateStore } from './memory.js';

describe('MemoryStateStore', () => {
  let now = 1_000_000;
  const store = () => new MemoryStateStore(1_000_000, () => now);

  it('claims on first use, renews the same value, refuses another, and forgets after the ttl', async () => {
    const s = store();
    expect(await s.claim('i-1', 'a', 1000)).toEqual({ claimed: true });
    now += 900;
    expect(await s.claim('i-1', 'a', 1000)).toEqual({ claimed: true }); // renewed: lives until +1900
    now += 900;
    expect(await s.claim('i-1', 'b', 1000)).toEqual({ claimed: false, current: 'a' });
    now += 200;
    expect(await s.claim('i-1', 'b', 1000)).toEqual({ claimed: true });
  });

  it('puts and gets with a ttl', async () => {
    const s = store();
    await s.put('k', 'v', 50);
    expect(await s.get('k')).toBe('v');
    now += 50;
    expect(await s.get('k')).toBeUndefined();
  });

  it('hands a lock to one holder at a time, with increasing fences, and never releases a successor', async () => {
    const s = store();
    const a = await s.lock('blob', 100);
    expect(a).toBeDefined();
    expect(await s.lock('blob', 100)).toBeUndefined();
    expect(await a?.extend(100)).toBe(true);
    now += 150;
    const b = await s.lock('blob', 100);
    expect(b?.fence).toBeGreaterThan(a?.fence ?? Infinity);
    expect(await a?.release()).toBe(false); // expired: b holds it now
    expect(await a?.extend(100)).toBe(false);
    expect(await s.lock('blob', 100)).toBeUndefined();
    expect(await b?.release()).toBe(true);
    expect(await s.lock('blob', 100)).toBeDefined();
  });

  it('stays within maxEntries, dropping the oldest writes', async () => {
    const s = new MemoryStateStore(2, () => now);
    await s.put('a', '1', 1000);
    await s.put('b', '2', 1000);
    await s.put('c', '3', 1000);
    expect([await s.get('a'), await s.get('b'), await s.get('c')]).toEqual([undefined, '2', '3']);
  });

  it('sweeps expired entries as writes come in', async () => {
    const s = new MemoryStateStore(1_000_000, () => now);
    for (let i = 0; i < 1000; i++) await s.put(`old${i}`, 'x', 10);
    now += 20;
    for (let i = 0; i < 100; i++) await s.put(`new${i}`, 'x', 10);
    expect((s as unknown as { entries: Map<string, unknown> }).entries.size).toBeLessThan(1000);
    await s.close();
  });
});
