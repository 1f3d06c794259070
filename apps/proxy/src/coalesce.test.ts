import { Flights } from './coalesce.js';

/** A fetch whose answers the test releases by hand, counting how often it ran. */
function manual() {
  const pending: Array<{ resolve: (v: string) => void; reject: (e: Error) => void }> = [];
  let calls = 0;
  const fetch = () => {
    calls++;
    return new Promise<string>((resolve, reject) => pending.push({ resolve, reject }));
  };
  return { fetch, pending, calls: () => calls };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('Flights', () => {
  it('sends the first request at once and answers later arrivals from the next flight, never the one already in the air', async () => {
    const f = new Flights<string>();
    const m = manual();
    const first = f.run('k', m.fetch);
    expect(m.calls()).toBe(1);
    const second = f.run('k', m.fetch);
    const third = f.run('k', m.fetch);
    expect(m.calls()).toBe(1); // the next flight waits for the current one to land
    m.pending[0]?.resolve('before');
    await expect(first).resolves.toBe('before');
    await tick();
    expect(m.calls()).toBe(2);
    m.pending[1]?.resolve('after');
    await expect(second).resolves.toBe('after');
    await expect(third).resolves.toBe('after');
    await tick();
    expect(f.size).toBe(0);
  });

  it('keeps keys apart', async () => {
    const f = new Flights<string>();
    const m = manual();
    const a = f.run('a', m.fetch);
    const b = f.run('b', m.fetch);
    expect(m.calls()).toBe(2);
    m.pending[0]?.resolve('A');
    m.pending[1]?.resolve('B');
    await expect(Promise.all([a, b])).resolves.toEqual(['A', 'B']);
  });

  it('gives a failure to everyone on that flight only, and the next flight still leaves', async () => {
    const f = new Flights<string>();
    const m = manual();
    const first = f.run('k', m.fetch);
    const second = f.run('k', m.fetch);
    const third = f.run('k', m.fetch);
    m.pending[0]?.reject(new Error('upstream down'));
    await expect(first).rejects.toThrow('upstream down');
    await tick();
    m.pending[1]?.reject(new Error('still down'));
    await expect(second).rejects.toThrow('still down');
    await expect(third).rejects.toThrow('still down');
    const fourth = f.run('k', m.fetch);
    await tick();
    m.pending[2]?.resolve('up again');
    await expect(fourth).resolves.toBe('up again');
    await tick();
    expect(f.size).toBe(0);
  });

  it('turns a fetch that throws synchronously into a rejection and frees the key', async () => {
    const f = new Flights<string>();
    await expect(
      f.run('k', () => {
        throw new Error('bad');
      }),
    ).rejects.toThrow('bad');
    await tick();
    expect(f.size).toBe(0);
  });
});
