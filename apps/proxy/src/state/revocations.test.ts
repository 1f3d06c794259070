import { AccessRules, AuthBackendError, InvalidTokenError, KeySet, MemoryStateStore, StateUnavailableError, TokenEndpoint, parseTokenRequest, type StateStore } from '@registry-proxy/registry-core';
import { RevocableTokenService, revokeSubject } from './revocations.js';

const identity = { subject: 'alice', method: 'test', groups: [], labels: {} };
const options = async () => ({ issuer: 'i', service: 'svc', keys: await KeySet.ephemeral(), accessTokenTtl: 60, refreshTokenTtl: 600, algorithms: ['ES256' as const], clockTolerance: 0 });

describe('refresh-token revocation', () => {
  it('refuses refresh tokens issued up to the revocation, for that subject only, on every service sharing the store', async () => {
    const store = new MemoryStateStore();
    const opts = await options();
    const [a, b] = [new RevocableTokenService(opts, store), new RevocableTokenService(opts, store)];
    const before = (await a.issueRefreshToken(identity, new Date(Date.now() - 5000))) as string;
    const bob = (await a.issueRefreshToken({ ...identity, subject: 'bob' })) as string;
    expect((await b.verifyRefreshToken(before)).subject).toBe('alice');
    await revokeSubject(store, 'alice', 600, Date.now() - 3000); // revoked 3 s ago: `before` (5 s old) is caught
    for (const s of [a, b]) await expect(s.verifyRefreshToken(before)).rejects.toThrow(new InvalidTokenError('refresh token revoked'));
    expect((await b.verifyRefreshToken(bob)).subject).toBe('bob');
    const after = (await a.issueRefreshToken(identity)) as string;
    expect((await b.verifyRefreshToken(after)).subject).toBe('alice');
  });

  it('fails closed: a store that cannot answer makes the refresh grant a 503, never a token', async () => {
    const down: StateStore = {
      kind: 'down',
      claim: () => Promise.reject(new StateUnavailableError('down')),
      put: () => Promise.reject(new StateUnavailableError('down')),
      get: () => Promise.reject(new StateUnavailableError('redis get: Command timed out')),
      lock: () => Promise.reject(new StateUnavailableError('down')),
      close: async () => undefined,
    };
    const tokens = new RevocableTokenService(await options(), down);
    const refresh = (await tokens.issueRefreshToken(identity)) as string;
    await expect(tokens.verifyRefreshToken(refresh)).rejects.toBeInstanceOf(AuthBackendError);
    const ep = new TokenEndpoint({ tokens, verifier: { name: 'none', verify: async () => ({ result: 'skip' }) }, rules: new AccessRules([]), basicRealm: 'svc' });
    const req = parseTokenRequest({
      method: 'POST',
      query: new URLSearchParams(),
      form: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refresh, service: 'svc', client_id: 't' }),
      authorization: undefined,
    });
    const d = await ep.handle(req);
    expect([d.status, d.outcome, d.headers['Retry-After']]).toEqual([503, 'unavailable', '5']);
    expect(d.body).not.toContain(refresh);
  });
});
