import { formatChallenge, parseChallenges } from './challenge.js';

describe('WWW-Authenticate', () => {
  it('parses a Bearer challenge', () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
    ]);
  });
  it('parses several challenges, tokens and escapes', () => {
    const got = parseChallenges('Basic realm="a b", Bearer realm="x\\"y",error=insufficient_scope ,  Negotiate');
    expect(got).toEqual([
      { scheme: 'basic', params: { realm: 'a b' } },
      { scheme: 'bearer', params: { realm: 'x"y', error: 'insufficient_scope' } },
      { scheme: 'negotiate', params: {} },
    ]);
  });
  it('does not throw on garbage', () => {
    expect(() => parseChallenges('Bearer realm="unterminated')).not.toThrow();
    expect(parseChallenges('')).toEqual([]);
    expect(parseChallenges('=,=')).toEqual([]);
  });
  it('formats and round-trips with quoting', () => {
    const h = formatChallenge('Bearer', { realm: 'http://h/token', service: 's"1', scope: undefined, error: 'invalid_token' });
    expect(h).toBe('Bearer realm="http://h/token",service="s\\"1",error="invalid_token"');
    expect(parseChallenges(h)[0]?.params).toEqual({ realm: 'http://h/token', service: 's"1', error: 'invalid_token' });
  });
});
