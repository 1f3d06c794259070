import { VerifierChain, parseBasicAuthorization, type AuthOutcome, type CredentialVerifier } from './identity.js';

const v = (name: string, answer: (u: string) => AuthOutcome): CredentialVerifier & { calls: number } => {
  const o = {
    name,
    calls: 0,
    async verify(u: string) {
      o.calls++;
      return answer(u);
    },
  };
  return o;
};
const allow = (subject: string): AuthOutcome => ({ result: 'allow', identity: { subject, method: 'm', groups: [], labels: {} } });

describe('VerifierChain', () => {
  it('the first strategy that claims the user decides; "not mine" passes on', async () => {
    const first = v('first', (u) => (u === 'ann' ? allow('ann') : u === 'bob' ? { result: 'deny', reason: 'bad' } : { result: 'skip' }));
    const second = v('second', (u) => (u === 'bob' ? allow('bob') : u === 'cid' ? allow('cid') : { result: 'skip' }));
    const chain = new VerifierChain([first, second]);
    expect(await chain.verify('ann', 'x')).toMatchObject({ result: 'allow', identity: { subject: 'ann' } });
    expect(second.calls).toBe(0);
    // A deny stops the chain: a later strategy must not let a wrong password through.
    expect(await chain.verify('bob', 'x')).toEqual({ result: 'deny', reason: 'bad' });
    expect(second.calls).toBe(0);
    expect(await chain.verify('cid', 'x')).toMatchObject({ result: 'allow', identity: { subject: 'cid' } });
    expect(await chain.verify('dan', 'x')).toEqual({ result: 'deny', reason: 'no strategy knows this user' });
  });
  it('passes a backend failure on to the caller', async () => {
    const chain = new VerifierChain([{ name: 'down', verify: async () => Promise.reject(new Error('ldap down')) }]);
    await expect(chain.verify('a', 'b')).rejects.toThrow('ldap down');
  });
});

describe('parseBasicAuthorization', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  it('decodes, keeping colons in the password', () => {
    expect(parseBasicAuthorization(`Basic ${b64('u:p:w')}`)).toEqual({ username: 'u', password: 'p:w' });
    expect(parseBasicAuthorization(`basic   ${b64('u:')}`)).toEqual({ username: 'u', password: '' });
  });
  it('tells absent (undefined) from malformed (null)', () => {
    expect(parseBasicAuthorization(undefined)).toBeUndefined();
    expect(parseBasicAuthorization('Bearer x')).toBeUndefined();
    expect(parseBasicAuthorization('Basic !!')).toBeNull();
    expect(parseBasicAuthorization(`Basic ${b64('nocolon')}`)).toBeNull();
  });
});
