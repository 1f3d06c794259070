import { ANONYMOUS_CREDENTIALS, CredentialError, anonymousProvider, chainProvider, credentialKey, staticProvider, type UpstreamCredentialProvider } from './credentials.js';

const req = { registry: 'registry.example.com' };
const failing = (msg: string): UpstreamCredentialProvider => ({ credentials: async () => Promise.reject(new CredentialError('p', msg)) });

describe('upstream credential providers', () => {
  it('static and anonymous answer as configured', async () => {
    expect(await anonymousProvider.credentials(req)).toEqual({ kind: 'anonymous' });
    expect(await staticProvider({ kind: 'basic', username: 'u', password: 'p' }).credentials(req)).toEqual({ kind: 'basic', username: 'u', password: 'p' });
  });

  it('a chain takes the first non-anonymous answer', async () => {
    const chain = chainProvider([anonymousProvider, staticProvider({ kind: 'bearer', token: 't1' }), staticProvider({ kind: 'bearer', token: 't2' })]);
    expect(await chain.credentials(req)).toEqual({ kind: 'bearer', token: 't1' });
  });

  it('a failure does not stop the chain, but is not silently turned into anonymity', async () => {
    const later = chainProvider([failing('metadata server down'), staticProvider({ kind: 'bearer', token: 't' })]);
    expect(await later.credentials(req)).toEqual({ kind: 'bearer', token: 't' });
    const none = chainProvider([failing('metadata server down'), anonymousProvider]);
    await expect(none.credentials(req)).rejects.toThrow('RP_ERR_UPSTREAM_CREDENTIALS: p: metadata server down');
    expect(await chainProvider([anonymousProvider]).credentials(req)).toBe(ANONYMOUS_CREDENTIALS);
  });

  it('keys credentials without revealing them', () => {
    const a = credentialKey({ kind: 'basic', username: 'u', password: 'secret' });
    expect(a).toMatch(/^basic:[A-Za-z0-9_-]{22}$/);
    expect(a).not.toContain('secret');
    expect(credentialKey({ kind: 'basic', username: 'u', password: 'secret' })).toBe(a);
    expect(credentialKey({ kind: 'basic', username: 'u', password: 'other' })).not.toBe(a);
    expect(credentialKey({ kind: 'anonymous' })).toBe('anonymous');
  });
});
