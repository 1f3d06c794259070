/**
 * FailureGate against a limiter that answers late, as Redis does: the window between taking
 * a point and settling it is where copies of one credential share the point.
 */
import { BlockList, isIPv6 } from 'node:net';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { clientKey, FailureGate } from './limits.js';

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

describe('clientKey', () => {
  it('keys IPv4 by the address and IPv4-mapped IPv6 by the IPv4 address', () => {
    expect(clientKey('10.1.2.3')).toBe('10.1.2.3');
    expect(clientKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(clientKey('::FFFF:0a01:0203')).toBe('10.1.2.3');
    expect(clientKey('unknown')).toBe('unknown');
    expect(clientKey('')).toBe('');
  });

  it('keys IPv6 by its /64, in every spelling of the address', () => {
    const k = clientKey('2001:db8:1:2::1');
    expect(k).toBe('2001:db8:1:2::/64');
    for (const a of ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0DB8:0001:0002:0:0:0:1', '2001:db8:1:2::1%eth0', '2001:db8:1:2:0:0:1.2.3.4']) expect(clientKey(a)).toBe(k);
    expect(clientKey('2001:db8:1:3::1')).not.toBe(k);
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
    expect(clientKey('::')).toBe('0:0:0:0::/64');
    expect(clientKey('fe80::1')).toBe('fe80:0:0:0::/64');
    expect(clientKey('1::')).toBe('1:0:0:0::/64');
  });

  it("agrees with Node's BlockList on which IPv6 addresses share a /64 (2,000 random pairs, written in random spellings)", () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed >> 8); // the high bits: an LCG's low bits cycle
    const group = () => (rnd() % 3 === 0 ? 0 : rnd() & 0xffff);
    const spell = (g: number[]): string => {
      const hex = g.map((x) => (rnd() % 2 ? x.toString(16) : x.toString(16).padStart(4, '0').toUpperCase()));
      // Compress the longest run of zero groups, as any writer may.
      let best = -1;
      let len = 0;
      for (let i = 0; i < 8; i++) {
        let j = i;
        while (j < 8 && g[j] === 0) j++;
        if (j - i > len) [best, len] = [i, j - i];
      }
      return len > 1 && rnd() % 2 ? `${hex.slice(0, best).join(':')}::${hex.slice(best + len).join(':')}` : hex.join(':');
    };
    let same = 0;
    for (let i = 0; i < 2000; i++) {
      const a = Array.from({ length: 8 }, group);
      if (a.slice(0, 6).join() === '0,0,0,0,0,65535') a[5] = 1; // mapped IPv4: keyed as IPv4, checked above
      const b = rnd() % 2 ? [...a.slice(0, 4), ...Array.from({ length: 4 }, group)] : Array.from({ length: 8 }, group);
      const [sa, sb] = [spell(a), spell(b)];
      expect([isIPv6(sa), isIPv6(sb)]).toEqual([true, true]);
      const list = new BlockList();
      list.addSubnet(sa, 64, 'ipv6');
      const inSame = list.check(sb, 'ipv6');
      if (inSame) same++;
      expect([sa, sb, clientKey(sa) === clientKey(sb)]).toEqual([sa, sb, inSame]);
    }
    expect(same).toBeGreaterThan(500);
  });
});
