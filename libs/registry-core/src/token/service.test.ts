import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, UnsecuredJWT, createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { KeySet } from './keys.js';
import { InvalidTokenError, TokenService, type TokenServiceOptions } from './service.js';

const pem = (alg: 'ec' | 'rsa') =>
  (alg === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 })).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();

async function service(over: Partial<TokenServiceOptions> = {}, keys?: KeySet) {
  return new TokenService({
    issuer: 'iss',
    service: 'svc',
    keys: keys ?? (await KeySet.ephemeral()),
    accessTokenTtl: 300,
    refreshTokenTtl: 3600,
    algorithms: ['ES256', 'RS256'],
    clockTolerance: 0,
    ...over,
  });
}
const access = [{ type: 'repository', name: 'a/b', actions: ['pull'] }];

describe('KeySet', () => {
  it('uses the RFC 7638 thumbprint as kid and publishes a JWKS', async () => {
    const keys = await KeySet.fromPem(pem('ec'));
    expect(keys.signer.alg).toBe('ES256');
    expect(keys.signer.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const jwks = keys.jwks();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kid: keys.signer.kid, alg: 'ES256', kty: 'EC', crv: 'P-256', use: 'sig' });
    expect(jwks.keys[0]).not.toHaveProperty('d');
  });
  it('supports RS256 and refuses weak or odd keys', async () => {
    expect((await KeySet.fromPem(pem('rsa'))).signer.alg).toBe('RS256');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    await expect(KeySet.fromPem(small)).rejects.toThrow(/RP_ERR_KEY_INVALID/);
    const ed = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    await expect(KeySet.fromPem(ed)).rejects.toThrow(/RP_ERR_KEY_INVALID/);
    await expect(KeySet.fromPem('not a key')).rejects.toThrow(/RP_ERR_KEY_INVALID/);
  });
});

describe('TokenService', () => {
  it('issues access tokens that carry the distribution claims and verify', async () => {
    const s = await service();
    const t = await s.issueAccessToken('alice', access);
    expect(t.expiresIn).toBe(300);
    const header = decodeProtectedHeader(t.token);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'JWT' });
    // A third party verifies it with nothing but the JWKS.
    const { payload } = await jwtVerify(t.token, createLocalJWKSet(s['opts'].keys.jwks()), { issuer: 'iss', audience: 'svc' });
    expect(payload).toMatchObject({ sub: 'alice', access });
    for (const c of ['exp', 'nbf', 'iat', 'jti']) expect(payload).toHaveProperty(c);
    expect(await s.verifyAccessToken(t.token)).toEqual({ subject: 'alice', access });
  });

  it('rejects alg none, other keys, other algorithms, audiences, issuers, expired tokens and refresh tokens', async () => {
    const s = await service();
    const unsigned = new UnsecuredJWT({ access }).setIssuer('iss').setAudience('svc').setSubject('x').setExpirationTime('1h').encode();
    const other = await KeySet.ephemeral();
    const foreign = (await service({}, other)).issueAccessToken('x', access);
    const wrongAud = (await service({ service: 'other' }, s['opts'].keys)).issueAccessToken('x', access);
    const wrongIss = (await service({ issuer: 'evil' }, s['opts'].keys)).issueAccessToken('x', access);
    const expired = s.issueAccessToken('x', access, new Date(Date.now() - 3600_000));
    const future = s.issueAccessToken('x', access, new Date(Date.now() + 3600_000));
    const refresh = s.issueRefreshToken({ subject: 'x', method: 'm', groups: [], labels: {} });
    // Same kid, but claims to be HS256 signed with the public key as a secret: the classic confusion.
    const signer = s['opts'].keys.signer;
    const hs = new SignJWT({ access }).setProtectedHeader({ alg: 'HS256', kid: signer.kid }).setIssuer('iss').setAudience('svc').setSubject('x').setExpirationTime('1h');
    const confused = hs.sign(Buffer.from(JSON.stringify(signer.jwk)));
    for (const [label, tok] of Object.entries({
      unsigned,
      foreign: (await foreign).token,
      wrongAud: (await wrongAud).token,
      wrongIss: (await wrongIss).token,
      expired: (await expired).token,
      future: (await future).token,
      refresh: (await refresh) as string,
      confused: await confused,
      garbage: 'a.b.c',
    })) {
      await expect(s.verifyAccessToken(tok)).rejects.toBeInstanceOf(InvalidTokenError);
      void label;
    }
  });

  it('remembers verified tokens only until they expire', async () => {
    const s = await service({ accessTokenTtl: 60 });
    const t = await s.issueAccessToken('x', access, new Date(Date.now() - 59_000));
    await expect(s.verifyAccessToken(t.token)).resolves.toMatchObject({ subject: 'x' });
    await expect(s.verifyAccessToken(t.token)).resolves.toMatchObject({ subject: 'x' });
    await new Promise((r) => setTimeout(r, 1100));
    await expect(s.verifyAccessToken(t.token)).rejects.toBeInstanceOf(InvalidTokenError);
    // A token that failed once fails again: failures are not cached as successes.
    const bad = `${t.token.slice(0, -4)}AAAA`;
    await expect(s.verifyAccessToken(bad)).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(s.verifyAccessToken(bad)).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it('verifies a refresh token once, reuses the result until it expires, and never caches a failure', async () => {
    class Counting extends TokenService {
      calls = 0;
      protected override async verify(token: string) {
        this.calls++;
        return super.verify(token);
      }
    }
    const s = new Counting({ issuer: 'iss', service: 'svc', keys: await KeySet.ephemeral(), accessTokenTtl: 60, refreshTokenTtl: 60, algorithms: ['ES256'], clockTolerance: 0 });
    const id = { subject: 'alice', method: 'htpasswd', groups: ['dev'], labels: { team: 'a' } };
    const r = (await s.issueRefreshToken(id, new Date(Date.now() - 59_000))) as string;
    const first = await s.verifyRefresh(r);
    const second = await s.verifyRefresh(r);
    expect(second).toEqual(first);
    expect(first.identity).toEqual(id);
    expect(s.calls).toBe(1);
    // Shared between uses, so it cannot be changed by one of them.
    expect(() => (first.identity.groups as string[]).push('admin')).toThrow(TypeError);
    await new Promise((res) => setTimeout(res, 1100));
    await expect(s.verifyRefresh(r)).rejects.toThrow('token expired');
    expect(s.calls).toBe(2);
    const live = (await s.issueRefreshToken(id)) as string;
    const bad = `${live.slice(0, -4)}AAAA`;
    await expect(s.verifyRefresh(bad)).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(s.verifyRefresh(bad)).rejects.toBeInstanceOf(InvalidTokenError);
    expect(s.calls).toBe(4);
    // An access token is not a refresh token, however often it is tried.
    const a = await s.issueAccessToken('alice', access);
    for (let i = 0; i < 2; i++) await expect(s.verifyRefresh(a.token)).rejects.toThrow(new InvalidTokenError('not a refresh token'));
  });

  it('only accepts the configured algorithms', async () => {
    const keys = await KeySet.fromPem(pem('rsa'));
    const rsOnly = await service({}, keys);
    const esOnly = await service({ algorithms: ['ES256'] }, keys);
    const t = await rsOnly.issueAccessToken('x', access);
    await expect(rsOnly.verifyAccessToken(t.token)).resolves.toBeDefined();
    await expect(esOnly.verifyAccessToken(t.token)).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it('rotates keys without downtime', async () => {
    const oldPem = pem('ec');
    const newPem = pem('ec');
    const before = await service({}, await KeySet.fromPem(oldPem));
    const oldToken = (await before.issueAccessToken('x', access)).token;
    // Step 1: publish the new key for verification; step 2: sign with it, keep the old for verification.
    const during = await service({}, await KeySet.fromPem(newPem, [oldPem]));
    await expect(during.verifyAccessToken(oldToken)).resolves.toBeDefined();
    const newToken = (await during.issueAccessToken('x', access)).token;
    expect(decodeProtectedHeader(newToken).kid).not.toBe(decodeProtectedHeader(oldToken).kid);
    expect(during['opts'].keys.jwks().keys).toHaveLength(2);
    // Step 3: drop the old key; its tokens stop working.
    const after = await service({}, await KeySet.fromPem(newPem));
    await expect(after.verifyAccessToken(newToken)).resolves.toBeDefined();
    await expect(after.verifyAccessToken(oldToken)).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it('refresh tokens carry the identity and are not access tokens', async () => {
    const s = await service();
    const id = { subject: 'bob', method: 'htpasswd', groups: ['g'], labels: { k: 'v' } };
    const r = (await s.issueRefreshToken(id)) as string;
    expect(await s.verifyRefreshToken(r)).toEqual(id);
    const a = await s.issueAccessToken('bob', access);
    await expect(s.verifyRefreshToken(a.token)).rejects.toBeInstanceOf(InvalidTokenError);
  });

  // Defect (token endpoint bench, 2026-12-02): every token was signed through jose's WebCrypto
  // path, a promise and a thread-pool job per signature, about twice the CPU of the signature.
  it('signs without WebCrypto, in the JWS form any verifier accepts (ES256 raw r||s, RS256)', async () => {
    const subtle = jest.spyOn(globalThis.crypto.subtle, 'sign');
    try {
      for (const kind of ['ec', 'rsa'] as const) {
        const s = await service({}, await KeySet.fromPem(pem(kind)));
        const id = { subject: 'carol', method: 'htpasswd', groups: ['g'], labels: {} };
        const t = (await s.issueAccessToken('carol', access, new Date(), id, 'reg.example')).token;
        const r = (await s.issueRefreshToken(id)) as string;
        const header = decodeProtectedHeader(t);
        expect(header).toEqual({ alg: kind === 'ec' ? 'ES256' : 'RS256', typ: 'JWT', kid: s['opts'].keys.signer.kid });
        // JWS ES256 is the 64-byte r||s pair (RFC 7518 §3.4), not node's default DER encoding.
        expect(Buffer.from(t.split('.')[2] as string, 'base64url')).toHaveLength(kind === 'ec' ? 64 : 256);
        const { payload } = await jwtVerify(t, createLocalJWKSet(s['opts'].keys.jwks()), { issuer: 'iss', audience: 'svc', requiredClaims: ['exp', 'nbf', 'iat', 'jti'] });
        expect(payload).toMatchObject({ sub: 'carol', access, host: 'reg.example', identity: { method: 'htpasswd', groups: ['g'] } });
        expect((payload.exp as number) - (payload.iat as number)).toBe(300);
        await expect(s.verifyAccessToken(t)).resolves.toMatchObject({ subject: 'carol', host: 'reg.example' });
        await expect(s.verifyRefreshToken(r)).resolves.toEqual(id);
      }
      expect(subtle).not.toHaveBeenCalled();
    } finally {
      subtle.mockRestore();
    }
  });

  // The encoded header is made once per signing key, and the registered claims are added to the
  // caller's fresh claims object: a new signer gets its own header, and no token's claims reach another.
  it('names the current signing key in every header, and gives each token its own claims', async () => {
    const first = await KeySet.ephemeral();
    const second = await KeySet.ephemeral('RS256');
    const s = await service({}, first);
    const id = { subject: 'dave', method: 'htpasswd', groups: [], labels: {} };
    const refresh = (await s.issueRefreshToken(id)) as string;
    const a = (await s.issueAccessToken('dave', access)).token;
    const b = (await s.issueAccessToken('dave', access)).token;
    expect(decodeProtectedHeader(a)).toEqual({ alg: 'ES256', typ: 'JWT', kid: first.signer.kid });
    const pa = (await jwtVerify(a, createLocalJWKSet(first.jwks()), { issuer: 'iss', audience: 'svc' })).payload;
    const pb = (await jwtVerify(b, createLocalJWKSet(first.jwks()), { issuer: 'iss', audience: 'svc' })).payload;
    expect(pa).not.toHaveProperty('token_use');
    expect(pa).not.toHaveProperty('method');
    expect(pa.jti).not.toBe(pb.jti);
    expect((await jwtVerify(refresh, createLocalJWKSet(first.jwks()))).payload).toMatchObject({ token_use: 'refresh', sub: 'dave' });
    (s as unknown as { opts: TokenServiceOptions }).opts = { ...s['opts'], keys: second };
    const c = (await s.issueAccessToken('dave', access)).token;
    expect(decodeProtectedHeader(c)).toEqual({ alg: 'RS256', typ: 'JWT', kid: second.signer.kid });
    await expect(jwtVerify(c, createLocalJWKSet(second.jwks()), { issuer: 'iss', audience: 'svc' })).resolves.toBeDefined();
  });

  it('refuses a ttl under the spec minimum of 60 s', async () => {
    await expect(service({ accessTokenTtl: 30 })).rejects.toThrow(RangeError);
  });
});
