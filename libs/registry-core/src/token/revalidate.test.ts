import type { AuthOutcome, Identity } from '../identity.js';
import { RefreshCheck } from './revalidate.js';
import { MemoryRevocations } from './revocations.js';

const alice: Identity = { subject: 'alice', method: 'ldap', groups: ['admins'], labels: {} };

describe('RefreshCheck (issue 11, defect 7)', () => {
  let now = 1000;
  const calls: Identity[] = [];
  let answer: AuthOutcome = { result: 'allow', identity: { ...alice, groups: ['devs'] } };
  const lookup = async (i: Identity) => {
    calls.push(i);
    return answer;
  };
  beforeEach(() => {
    calls.length = 0;
    answer = { result: 'allow', identity: { ...alice, groups: ['devs'] } };
  });

  it('leaves a recent login alone, re-checks an older one and uses the groups as they are now', async () => {
    const c = new RefreshCheck({ lookup, revalidateAfter: 600, now: () => now });
    expect(await c.check({ identity: alice, issuedAt: now - 599, id: 'a' })).toEqual({ identity: alice });
    expect(calls).toHaveLength(0);
    expect(await c.check({ identity: alice, issuedAt: now - 600, id: 'a' })).toEqual({ identity: { ...alice, groups: ['devs'] } });
    expect(calls).toHaveLength(1);
  });

  it('remembers a re-check for revalidateAfter per token, then asks again', async () => {
    const c = new RefreshCheck({ lookup, revalidateAfter: 60, now: () => now });
    const t = { identity: alice, issuedAt: now - 1000, id: 'b' };
    await c.check(t);
    await c.check(t);
    expect(calls).toHaveLength(1);
    answer = { result: 'deny', reason: 'alice is no longer in the directory' };
    now += 61;
    expect(await c.check(t)).toEqual({ refused: 're-check failed: alice is no longer in the directory' });
  });

  it('refuses revoked subjects before any lookup, by cut-off time', async () => {
    const revocations = new MemoryRevocations();
    const c = new RefreshCheck({ lookup, revalidateAfter: 600, revocations, now: () => now });
    await revocations.revoke('alice', now - 10);
    expect(await c.check({ identity: alice, issuedAt: now - 11, id: 'c' })).toEqual({ refused: 'refresh token revoked' });
    expect(await c.check({ identity: alice, issuedAt: now - 10, id: 'd' })).toEqual({ identity: alice });
    await revocations.revoke('alice', Number.POSITIVE_INFINITY);
    expect(await c.check({ identity: alice, issuedAt: now, id: 'e' })).toEqual({ refused: 'refresh token revoked' });
    await revocations.unrevoke('alice');
    expect(await c.check({ identity: alice, issuedAt: now, id: 'e' })).toEqual({ identity: alice });
    expect(calls).toHaveLength(0);
  });

  it('keeps the bound of the source credential (an OIDC token exp)', async () => {
    const c = new RefreshCheck({ lookup, revalidateAfter: 0, now: () => now });
    const r = await c.check({ identity: { ...alice, expiresAt: now + 30 }, issuedAt: now, id: 'f' });
    expect(r).toEqual({ identity: { ...alice, groups: ['devs'], expiresAt: now + 30 } });
  });
});
