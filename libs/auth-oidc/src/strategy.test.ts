/**
 * The OIDC strategy against a real OpenID Provider (oidc-provider, in its own process) and, for
 * Kubernetes service-account tokens, a small issuer that serves the same discovery and JWKS
 * documents a kube-apiserver does (no API server can run here).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, UnsecuredJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import { AuthBackendError } from '@registry-proxy/registry-core';
import { OIDC_CLIENT, newSigningJwk, startOidcProvider, type TestOidcProvider } from '@registry-proxy/testing';
import { OidcStrategy, type OidcIssuerOptions } from './strategy.js';

jest.setTimeout(60_000);
const AUD = 'https://registry.example.com';
let op: TestOidcProvider;
let other: TestOidcProvider;
const k1 = newSigningJwk('k1');

beforeAll(async () => {
  op = await startOidcProvider({ keys: [k1], extraClaims: { groups: ['ci', 'release'], repository_owner: 'acme' } });
  other = await startOidcProvider();
});
afterAll(async () => {
  await op?.stop();
  await other?.stop();
});

const strategy = (over: Partial<OidcIssuerOptions> = {}, extra: { jwksCooldownMs?: number } = {}) =>
  new OidcStrategy({ issuers: [{ issuer: op.issuer, audiences: [AUD], allowInsecure: true, groupsClaim: 'groups', labelClaims: { owner: 'repository_owner' }, ...over }], ...extra });

describe('OidcStrategy with oidc-provider', () => {
  it('accepts a JWT access token for its audience, mapping claims to subject, groups and labels', async () => {
    const r = await strategy().verify('anything', await op.token(AUD));
    expect(r).toEqual({
      result: 'allow',
      identity: { subject: OIDC_CLIENT.id, method: 'oidc', groups: ['ci', 'release'], labels: { 'oidc.issuer': op.issuer, owner: 'acme' }, expiresAt: expect.any(Number) },
    });
    // The identity lasts as long as the token: refresh tokens issued for it do not outlive it.
    expect((r as { identity: { expiresAt: number } }).identity.expiresAt).toBeGreaterThan(Date.now() / 1000);
  });

  it('refuses another audience, another (unconfigured) issuer, and a tampered token', async () => {
    const s = strategy();
    expect(await s.verify('x', await op.token('https://elsewhere.example.com'))).toEqual({ result: 'deny', reason: 'token rejected: ERR_JWT_CLAIM_VALIDATION_FAILED (aud)' });
    // A token from an issuer nobody configured is not this strategy's business.
    expect(await s.verify('x', await other.token(AUD))).toEqual({ result: 'skip' });
    const t = await op.token(AUD);
    const [h, p, sig] = t.split('.') as [string, string, string];
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'admin' })).toString('base64url');
    expect(await s.verify('x', `${h}.${forged}.${sig}`)).toMatchObject({ result: 'deny', reason: expect.stringContaining('ERR_JWS_SIGNATURE_VERIFICATION_FAILED') });
  });

  it('refuses an expired token', async () => {
    const short = await startOidcProvider({ ttl: 1 });
    try {
      const t = await short.token(AUD);
      await new Promise((r) => setTimeout(r, 2100));
      const s = new OidcStrategy({ issuers: [{ issuer: short.issuer, audiences: [AUD], allowInsecure: true, clockToleranceSeconds: 0 }] });
      expect(await s.verify('x', t)).toEqual({ result: 'deny', reason: 'token rejected: ERR_JWT_EXPIRED' });
    } finally {
      await short.stop();
    }
  });

  it('refuses alg none and HS256 made with the public key (algorithm confusion)', async () => {
    const s = strategy();
    const claims = { sub: 'admin', aud: AUD, iss: op.issuer };
    const none = new UnsecuredJWT(claims).setExpirationTime('5m').encode();
    expect(await s.verify('x', none)).toMatchObject({ result: 'deny' });
    const pub = { ...k1 } as Record<string, unknown>;
    for (const k of ['d', 'p', 'q', 'dp', 'dq', 'qi']) delete pub[k];
    const hmacKey = Buffer.from(JSON.stringify(pub));
    const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).setExpirationTime('5m').sign(hmacKey);
    expect(await s.verify('x', hs)).toEqual({ result: 'deny', reason: 'token rejected: ERR_JOSE_ALG_NOT_ALLOWED' });
    expect(() => strategy({ algorithms: ['HS256'] })).toThrow(/HS256 is not allowed/);
  });

  it('follows key rotation: a token signed with a new key is verified after the JWKS is fetched again', async () => {
    const s = strategy({}, { jwksCooldownMs: 0 });
    expect((await s.verify('x', await op.token(AUD))).result).toBe('allow');
    const k2 = newSigningJwk('k2');
    await op.restart([k2, k1]); // k2 signs now; k1 is still published
    const t2 = await op.token(AUD);
    expect(JSON.parse(Buffer.from(t2.split('.')[0] as string, 'base64url').toString()).kid).toBe('k2');
    expect((await s.verify('x', t2)).result).toBe('allow');
  });

  it('introspects opaque tokens for its usernames only, and accepts them only when meant for this registry', async () => {
    const s = strategy({ usernames: ['oauth2'], introspection: { clientId: OIDC_CLIENT.id, clientSecret: OIDC_CLIENT.secret, allowedClients: [OIDC_CLIENT.id] } });
    const opaque = await op.token();
    expect(opaque).not.toMatch(/\./);
    expect(await s.verify('oauth2', opaque)).toMatchObject({ result: 'allow', identity: { subject: OIDC_CLIENT.id } });
    expect(await s.verify('someone-else', opaque)).toEqual({ result: 'skip' });
    expect(await s.verify('oauth2', 'not-a-real-token')).toEqual({ result: 'deny', reason: 'token not active' });
    const strict = strategy({ usernames: ['oauth2'], introspection: { clientId: OIDC_CLIENT.id, clientSecret: OIDC_CLIENT.secret } });
    expect(await strict.verify('oauth2', opaque)).toMatchObject({ result: 'deny', reason: expect.stringContaining('not meant for this registry') });
  });

  it('reports an unreachable issuer as a backend error', async () => {
    const gone = await startOidcProvider();
    const t = await gone.token(AUD);
    await gone.stop();
    const s = new OidcStrategy({ issuers: [{ issuer: gone.issuer, audiences: [AUD], allowInsecure: true }], timeoutMs: 1000 });
    await expect(s.verify('x', t)).rejects.toBeInstanceOf(AuthBackendError);
  });
});

describe('Kubernetes service-account tokens', () => {
  let server: Server;
  let issuer: string;
  let key: { privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey']; jwk: JWK };
  beforeAll(async () => {
    const kp = await generateKeyPair('RS256', { extractable: true });
    key = { privateKey: kp.privateKey, jwk: { ...(await exportJWK(kp.publicKey)), kid: 'sa-key', alg: 'RS256', use: 'sig' } };
    // What kube-apiserver serves with --service-account-issuer: discovery and the JWKS.
    server = createServer((req, res) => {
      if (req.url === '/.well-known/openid-configuration') {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            issuer,
            jwks_uri: `${issuer}/openid/v1/jwks`,
            response_types_supported: ['id_token'],
            subject_types_supported: ['public'],
            id_token_signing_alg_values_supported: ['RS256'],
          }),
        );
      } else if (req.url === '/openid/v1/jwks') {
        res.setHeader('content-type', 'application/jwk-set+json');
        res.end(JSON.stringify({ keys: [key.jwk] }));
      } else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  it('maps the namespace and service account of a projected token to labels', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({
      'kubernetes.io': { namespace: 'payments', serviceaccount: { name: 'deployer', uid: 'f1e2' }, pod: { name: 'deployer-7c9', uid: 'a1b2' } },
    })
      .setProtectedHeader({ alg: 'RS256', kid: 'sa-key' })
      .setIssuer(issuer)
      .setSubject('system:serviceaccount:payments:deployer')
      .setAudience('registry-proxy')
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 600)
      .sign(key.privateKey);
    const s = new OidcStrategy({
      issuers: [
        {
          issuer,
          audiences: ['registry-proxy'],
          allowInsecure: true,
          labelClaims: { 'kubernetes.io.namespace': 'kubernetes.io.namespace', 'kubernetes.io.serviceaccount': 'kubernetes.io.serviceaccount.name' },
        },
      ],
    });
    expect(await s.verify('kubernetes', token)).toEqual({
      result: 'allow',
      identity: {
        subject: 'system:serviceaccount:payments:deployer',
        method: 'oidc',
        groups: [],
        labels: { 'oidc.issuer': issuer, 'kubernetes.io.namespace': 'payments', 'kubernetes.io.serviceaccount': 'deployer' },
        expiresAt: now + 600,
      },
    });
    // A token signed by another key with the same kid is refused.
    const imposter = await generateKeyPair('RS256');
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'sa-key' })
      .setIssuer(issuer)
      .setSubject('system:serviceaccount:kube-system:admin')
      .setAudience('registry-proxy')
      .setExpirationTime('5m')
      .sign(imposter.privateKey);
    expect(await s.verify('kubernetes', forged)).toMatchObject({ result: 'deny' });
  });
});
