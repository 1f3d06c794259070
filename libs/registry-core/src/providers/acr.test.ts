/**
 * The ACR provider against small local servers that speak Azure's formats (facts from
 * Azure/acr docs/AAD-OAuth.md and Microsoft's IMDS managed-identity reference): IMDS's
 * `/metadata/identity/oauth2/token` (header Metadata: true, numbers as strings), Entra ID's v2
 * client-credentials endpoint, and ACR's `POST /oauth2/exchange` (form grant_type=access_token,
 * service, tenant, access_token -> {"refresh_token"}). The end-to-end test with a real
 * docker-registry behind an ACR stand-in is apps/proxy/test/azure.e2e.test.ts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, SignJWT } from 'jose';
import { AcrProvider, ACR_REFRESH_TOKEN_USER } from './acr.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const key = new TextEncoder().encode('test-only-hmac-key-for-jwts-0123456789');
let server: Server;
let base: string;
let refreshTtl = 3 * 3600;
const exchanges: Array<Record<string, string>> = [];
const seen: string[] = [];

const jwt = (claims: Record<string, unknown>, ttl: number) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
    .sign(key);

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', async (): Promise<void> => {
      const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      const u = new URL(req.url ?? '/', base);
      seen.push(`${req.method} ${u.pathname}`);
      if (u.pathname === '/metadata/identity/oauth2/token' && req.method === 'GET') {
        if (req.headers['metadata'] !== 'true') return json(400, { error: 'invalid_request', error_description: 'Required metadata header not specified' });
        if (u.searchParams.get('api-version') !== '2018-02-01' || !u.searchParams.get('resource')) return json(400, { error: 'invalid_request' });
        const oid = u.searchParams.get('client_id') ?? 'system-assigned';
        const access_token = await jwt({ tid: TENANT, oid, aud: u.searchParams.get('resource') }, 3600);
        return json(200, { access_token, refresh_token: '', expires_in: '3599', expires_on: '1506484173', resource: u.searchParams.get('resource'), token_type: 'Bearer' });
      }
      if (u.pathname === `/${TENANT}/oauth2/v2.0/token` && req.method === 'POST') {
        const f = new URLSearchParams(text);
        if (f.get('grant_type') !== 'client_credentials' || f.get('client_id') !== 'sp-app' || f.get('client_secret') !== 'sp-secret')
          return json(401, { error: 'invalid_client', error_description: `bad secret ${f.get('client_secret')}` });
        return json(200, { token_type: 'Bearer', expires_in: 3599, access_token: await jwt({ tid: TENANT, oid: 'sp-app', scp: f.get('scope') }, 3600) });
      }
      if (u.pathname === '/oauth2/exchange' && req.method === 'POST') {
        const f = Object.fromEntries(new URLSearchParams(text));
        exchanges.push(f);
        if (f['grant_type'] !== 'access_token' || !f['access_token']) return json(400, { errors: [{ code: 'UNSUPPORTED' }] });
        const aad = decodeJwt(f['access_token']);
        if (aad['oid'] === 'no-role') return json(401, { errors: [{ code: 'UNAUTHORIZED', message: `token ${f['access_token']} has no role` }] });
        return json(200, { refresh_token: await jwt({ sub: aad['oid'], grant_type: 'refresh_token', aud: f['service'], tenant: f['tenant'] }, refreshTtl) });
      }
      json(404, {});
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  exchanges.length = 0;
  seen.length = 0;
  refreshTtl = 3 * 3600;
});

const REG = { registry: 'contoso.azurecr.io' };

describe('ACR credentials', () => {
  it('managed identity: IMDS token, exchanged for an ACR refresh token, the password of the null-GUID user', async () => {
    const p = new AcrProvider({ identity: { type: 'managed-identity', imdsUrl: base }, exchangeUrl: `${base}/oauth2/exchange` });
    const c = await p.credentials(REG);
    expect(seen).toEqual(['GET /metadata/identity/oauth2/token', 'POST /oauth2/exchange']);
    expect(exchanges).toEqual([{ grant_type: 'access_token', service: 'contoso.azurecr.io', tenant: TENANT, access_token: expect.any(String) }]);
    expect(decodeJwt(exchanges[0]?.['access_token'] ?? '')).toMatchObject({ aud: 'https://management.azure.com/', oid: 'system-assigned' });
    expect(c).toEqual({ kind: 'basic', username: ACR_REFRESH_TOKEN_USER, password: expect.any(String) });
    expect(decodeJwt((c as { password: string }).password)).toMatchObject({ sub: 'system-assigned', aud: 'contoso.azurecr.io', grant_type: 'refresh_token' });
    // Kept: a second ask does not exchange again.
    await p.credentials(REG);
    expect(exchanges).toHaveLength(1);
  });

  it('a user-assigned identity, another service name and resource', async () => {
    const p = new AcrProvider({
      identity: { type: 'managed-identity', imdsUrl: base, clientId: 'uami-1' },
      exchangeUrl: `${base}/oauth2/exchange`,
      service: 'other.azurecr.io',
      resource: 'https://containerregistry.azure.net',
    });
    await p.credentials(REG);
    expect(exchanges[0]).toMatchObject({ service: 'other.azurecr.io' });
    expect(decodeJwt(exchanges[0]?.['access_token'] ?? '')).toMatchObject({ oid: 'uami-1', aud: 'https://containerregistry.azure.net' });
  });

  it('service principal: client credentials at the configured token URL, the tenant from the configuration', async () => {
    const p = new AcrProvider({
      identity: { type: 'service-principal', tenantId: TENANT, clientId: 'sp-app', clientSecret: 'sp-secret', tokenUrl: `${base}/${TENANT}/oauth2/v2.0/token` },
      exchangeUrl: `${base}/oauth2/exchange`,
    });
    const c = await p.credentials(REG);
    expect(seen).toEqual([`POST /${TENANT}/oauth2/v2.0/token`, 'POST /oauth2/exchange']);
    expect(decodeJwt(exchanges[0]?.['access_token'] ?? '')).toMatchObject({ oid: 'sp-app', scp: 'https://management.azure.com/.default' });
    expect(decodeJwt((c as { password: string }).password)).toMatchObject({ sub: 'sp-app', tenant: TENANT });
  });

  it('renews the refresh token before it expires (its JWT exp)', async () => {
    refreshTtl = 13; // renewed at the latest 10 s before the end: after 3 s
    const p = new AcrProvider({ identity: { type: 'managed-identity', imdsUrl: base }, exchangeUrl: `${base}/oauth2/exchange` });
    const first = await p.credentials(REG);
    expect(await p.credentials(REG)).toBe(first);
    await new Promise((r) => setTimeout(r, 3200));
    const second = await p.credentials(REG);
    expect(exchanges).toHaveLength(2);
    expect(second).not.toEqual(first);
  });

  it('fetches again when the upstream refused the credentials', async () => {
    const p = new AcrProvider({ identity: { type: 'managed-identity', imdsUrl: base }, exchangeUrl: `${base}/oauth2/exchange`, minRefetchMs: 0 });
    await p.credentials(REG);
    p.invalidate(REG);
    await p.credentials(REG);
    expect(exchanges).toHaveLength(2);
  });

  it('says which step failed, never with a secret', async () => {
    const sp = new AcrProvider({
      identity: { type: 'service-principal', tenantId: TENANT, clientId: 'sp-app', clientSecret: 'wrong-secret', tokenUrl: `${base}/${TENANT}/oauth2/v2.0/token` },
      exchangeUrl: `${base}/oauth2/exchange`,
    });
    const err = (await sp.credentials(REG).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe('RP_ERR_UPSTREAM_CREDENTIALS: acr: the Entra ID token endpoint answered HTTP 401');
    expect(err.message).not.toContain('wrong-secret');
    const noRole = new AcrProvider({ identity: { type: 'managed-identity', imdsUrl: base, clientId: 'no-role' }, exchangeUrl: `${base}/oauth2/exchange` });
    await expect(noRole.credentials(REG)).rejects.toThrow(/: acr: the registry's \/oauth2\/exchange answered HTTP 401$/);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const gone = new AcrProvider({ identity: { type: 'managed-identity', imdsUrl: `http://127.0.0.1:${port}` } });
    await expect(gone.credentials(REG)).rejects.toThrow(/: acr: IMDS managed identity unreachable: ECONNREFUSED$/);
  });
});
