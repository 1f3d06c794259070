/** The LDAP strategy against a real OpenLDAP slapd (users, groups, StartTLS), started by the test. */
import { AuthBackendError } from '@registry-proxy/registry-core';
import { BASE, PASSWORDS, startSlapd, type TestSlapd } from '@registry-proxy/testing';
import { LdapStrategy, type LdapStrategyOptions } from './strategy.js';

jest.setTimeout(30_000);
let ldap: TestSlapd;
const strategies: LdapStrategy[] = [];

beforeAll(async () => {
  ldap = await startSlapd();
});
afterAll(async () => {
  await Promise.all(strategies.map((s) => s.close()));
  await ldap?.stop();
});

function strategy(over: Partial<LdapStrategyOptions> = {}): LdapStrategy {
  const s = new LdapStrategy({
    url: ldap.url,
    bindDN: ldap.adminDN,
    bindCredentials: ldap.adminPassword,
    searchBase: `ou=people,${BASE}`,
    searchFilter: '(uid={{username}})',
    groupSearchBase: `ou=groups,${BASE}`,
    groupSearchFilter: '(member={{dn}})',
    timeout: 1000,
    ...over,
  });
  strategies.push(s);
  return s;
}

describe('LdapStrategy against slapd', () => {
  it('allows a good password, with the directory groups and the DN as a label', async () => {
    const r = await strategy().verify('alice', PASSWORDS.alice);
    expect(r).toEqual({
      result: 'allow',
      identity: { subject: 'alice', method: 'ldap', groups: ['devs', 'registry-admins'], labels: { 'ldap.dn': `uid=alice,ou=people,${BASE}` } },
    });
    expect(await strategy().verify('bob', PASSWORDS.bob)).toMatchObject({ result: 'allow', identity: { groups: ['devs'] } });
  });

  it('denies a wrong password and an empty one; an unknown user is not its business', async () => {
    const s = strategy();
    expect(await s.verify('alice', 'wrong')).toEqual({ result: 'deny', reason: 'wrong password' });
    expect(await s.verify('alice', '')).toEqual({ result: 'deny', reason: 'empty password' });
    expect(await s.verify('mallory', 'whatever')).toEqual({ result: 'skip' });
  });

  it('escapes usernames: filter injection finds nobody, and a user with special characters still works', async () => {
    const s = strategy();
    for (const evil of ['*', 'a*', '*)(uid=*', 'alice)(|(uid=*', 'alice)(objectClass=*', '\\2a', 'alice\0']) {
      // With the filter left intact each of these matches no entry; injected, they would match alice.
      expect([evil, await s.verify(evil, PASSWORDS.alice)]).toEqual([evil, { result: 'skip' }]);
    }
    expect(await s.verify('o*(weird)', PASSWORDS['o*(weird)'])).toMatchObject({ result: 'allow', identity: { subject: 'o*(weird)' } });
    // Direct bind with a DN template: the username is escaped as a DN value.
    const direct = strategy({ searchBase: undefined, bindDnTemplate: `uid={{username}},ou=people,${BASE}`, groupSearchBase: undefined });
    expect(await direct.verify('alice', PASSWORDS.alice)).toMatchObject({ result: 'allow', identity: { subject: 'alice', groups: [] } });
    expect(await direct.verify('o*(weird)', PASSWORDS['o*(weird)'])).toMatchObject({ result: 'allow' });
    expect(await direct.verify(`alice,ou=people,${BASE}`, PASSWORDS.alice)).toEqual({ result: 'deny', reason: 'wrong password' });
  });

  it('talks StartTLS, verifying the server against the CA', async () => {
    const tls = strategy({ starttls: true, tlsOptions: { ca: ldap.caPem, servername: 'localhost' } });
    expect(await tls.verify('alice', PASSWORDS.alice)).toMatchObject({ result: 'allow' });
    const untrusted = strategy({ starttls: true, tlsOptions: {} });
    await expect(untrusted.verify('alice', PASSWORDS.alice)).rejects.toBeInstanceOf(AuthBackendError);
  });

  it('reports a stopped or frozen directory as a backend error, recovers, and never needs it for an empty password', async () => {
    const s = strategy();
    expect((await s.verify('alice', PASSWORDS.alice)).result).toBe('allow');
    await ldap.stop();
    try {
      const err = await s.verify('alice', PASSWORDS.alice).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuthBackendError);
      expect((err as Error).message).not.toContain(PASSWORDS.alice);
      expect(await s.verify('alice', '')).toEqual({ result: 'deny', reason: 'empty password' });
    } finally {
      await ldap.start();
    }
    expect((await s.verify('alice', PASSWORDS.alice)).result).toBe('allow'); // reconnected

    ldap.freeze();
    try {
      const t0 = Date.now();
      await expect(s.verify('bob', PASSWORDS.bob)).rejects.toBeInstanceOf(AuthBackendError);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      ldap.thaw();
    }
    expect((await s.verify('bob', PASSWORDS.bob)).result).toBe('allow');
  });

  it('caches successful verifications when asked, keyed so that a wrong password never hits the cache', async () => {
    const s = strategy({ cacheSeconds: 60 });
    expect((await s.verify('alice', PASSWORDS.alice)).result).toBe('allow');
    await ldap.stop();
    try {
      expect((await s.verify('alice', PASSWORDS.alice)).result).toBe('allow'); // from the cache
      await expect(s.verify('alice', 'wrong')).rejects.toBeInstanceOf(AuthBackendError); // not cached: asks the directory
    } finally {
      await ldap.start();
    }
  });

  it('refuses unusable options at construction', () => {
    expect(() => new LdapStrategy({ url: 'http://x' })).toThrow(/ldap:\/\/ or ldaps:\/\//);
    expect(() => new LdapStrategy({ url: 'ldap://x' })).toThrow(/searchBase .* or bindDnTemplate/);
    expect(() => new LdapStrategy({ url: 'ldap://x', searchBase: 'o=x', bindDN: 'cn=a' })).toThrow(/bindDN and bindCredentials go together/);
    expect(() => new LdapStrategy({ url: 'ldap://x', searchBase: 'o=x', searchFilter: '(uid={{user}})' })).toThrow(/searchFilter: unknown placeholder \{\{user\}\}/);
  });
});

describe('LdapStrategy.lookup (refresh re-checks, issue 11 defect 7)', () => {
  it('re-reads a user and their groups without the password; a DN that is not found is a deny; other methods are not its business', async () => {
    const s = strategy();
    const dn = `uid=alice,ou=people,${BASE}`;
    expect(await s.lookup({ subject: 'alice', method: 'ldap', groups: [], labels: { 'ldap.dn': dn } })).toEqual({
      result: 'allow',
      identity: { subject: 'alice', method: 'ldap', groups: ['devs', 'registry-admins'], labels: { 'ldap.dn': dn } },
    });
    expect((await s.lookup({ subject: 'ghost', method: 'ldap', groups: [], labels: { 'ldap.dn': `uid=ghost,ou=people,${BASE}` } })).result).toBe('deny');
    expect((await s.lookup({ subject: 'alice', method: 'htpasswd', groups: [], labels: {} })).result).toBe('skip');
    const direct = strategy({ bindDnTemplate: `uid={{username}},ou=people,${BASE}`, searchBase: undefined });
    expect((await direct.lookup({ subject: 'bob', method: 'ldap', groups: [], labels: { 'ldap.dn': `uid=bob,ou=people,${BASE}` } })).result).toBe('allow');
  });
});
