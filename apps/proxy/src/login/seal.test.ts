import { Sealer, readCookies } from './seal.js';

describe('sealed cookie values', () => {
  const s = new Sealer('a key for tests');
  it('round-trips until it expires', () => {
    const v = s.seal('session', { sid: 'x', n: 1 }, 2000);
    expect(s.open('session', v, 1000)).toEqual({ sid: 'x', n: 1 });
    expect(s.open('session', v, 2000)).toBeUndefined();
  });
  it('refuses a value sealed for another purpose, by another key, or changed in any byte', () => {
    const v = s.seal('pending', { state: 'a' }, Date.now() + 60_000);
    expect(s.open('session', v)).toBeUndefined();
    expect(new Sealer('another key').open('pending', v)).toBeUndefined();
    const raw = Buffer.from(v, 'base64url');
    for (const i of [0, 13, raw.length - 1]) {
      const t = Buffer.from(raw);
      t[i] = (t[i] ?? 0) ^ 1;
      expect(s.open('pending', t.toString('base64url'))).toBeUndefined();
    }
    expect(s.open('pending', 'not base64!')).toBeUndefined();
    expect(s.open('pending', undefined)).toBeUndefined();
  });
  it('CSRF tokens are bound to the session id', () => {
    expect(s.checkCsrf('sid-1', s.csrf('sid-1'))).toBe(true);
    expect(s.checkCsrf('sid-2', s.csrf('sid-1'))).toBe(false);
    expect(s.checkCsrf('sid-1', undefined)).toBe(false);
    expect(s.checkCsrf('sid-1', ['x'])).toBe(false);
  });
  it('reads cookies; the first of a name wins', () => {
    expect([...readCookies('a=1; b=2; a=3; junk; =x')]).toEqual([
      ['a', '1'],
      ['b', '2'],
    ]);
  });
});
