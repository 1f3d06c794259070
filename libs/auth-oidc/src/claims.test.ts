import { claimList, claimText, readClaim } from './claims.js';

describe('claims', () => {
  const c = { sub: 's', 'kubernetes.io': { namespace: 'ns', serviceaccount: { name: 'sa' } }, 'a.b': 1, a: { b: 2, c: true }, groups: ['x', 3, 'y'] };
  it('reads dotted paths greedily, so claim names with dots work', () => {
    expect(readClaim(c, 'kubernetes.io.namespace')).toBe('ns');
    expect(readClaim(c, 'kubernetes.io.serviceaccount.name')).toBe('sa');
    expect(readClaim(c, 'a.b')).toBe(1); // the literal key wins
    expect(readClaim(c, 'a.c')).toBe(true);
    expect(readClaim(c, 'missing.x')).toBeUndefined();
    expect(readClaim(c, 'sub.length')).toBeUndefined(); // only objects are walked
  });
  it('turns claims into label text and group lists', () => {
    expect([claimText('x'), claimText(5), claimText(false), claimText({}), claimText(null)]).toEqual(['x', '5', 'false', undefined, undefined]);
    expect(claimList(c.groups)).toEqual(['x', 'y']);
    expect(claimList('one')).toEqual(['one']);
    expect(claimList(undefined)).toEqual([]);
  });
});
