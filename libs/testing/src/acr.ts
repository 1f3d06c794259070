import { execFileSync } from 'node:child_process';
import { createPublicKey, randomUUID, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestAzureAd } from './azure.js';
import { startRegistryWithAuth, type TestRegistry } from './registry.js';

/**
 * Azure Container Registry, as far as a client sees it: a REAL docker-registry in token mode,
 * and in front of it a stand-in for ACR's own endpoints (Azure/acr docs/AAD-OAuth.md):
 * - `POST /oauth2/exchange` (form: grant_type=access_token, service, tenant, access_token):
 *   checks the Entra ID access token (signature, issuer, audience ARM or
 *   containerregistry.azure.net, tenant) and that its principal has a role on the registry,
 *   then answers `{"refresh_token": <ACR refresh JWT>}`;
 * - `/oauth2/token`: an ACR access token (ES256, x5c the registry trusts) for the scopes asked,
 *   for a refresh token given as `POST grant_type=refresh_token` or as the password of the null
 *   GUID user over Basic on GET (what docker does after `az acr login`).
 */
export interface TestAcr extends TestRegistry {
  /** The registry's service name (on Azure, its login server, `<name>.azurecr.io`). */
  readonly service: string;
  /** Where the stand-in's `/oauth2/exchange` and `/oauth2/token` live. */
  readonly authUrl: string;
  readonly exchanges: Array<{ principal: string | null; status: number }>;
  readonly tokenRequests: Array<{ via: 'basic' | 'refresh_token'; principal: string | null; scopes: string[]; status: number }>;
  /** An access token for `scope` without the exchange, to seed the registry. */
  accessToken(scope: string): Promise<string>;
}

const NULL_GUID = '00000000-0000-0000-0000-000000000000';
const AUDIENCES = ['https://management.azure.com/', 'https://management.azure.com', 'https://containerregistry.azure.net'];

export async function startAcr(ad: TestAzureAd, opts: { principals: string[]; refreshTtlSeconds?: number; service?: string }): Promise<TestAcr> {
  const { SignJWT, importPKCS8, importSPKI, jwtVerify } = await import('jose');
  const service = opts.service ?? 'registryproxytest.azurecr.io';
  const dir = mkdtempSync(join(tmpdir(), 'rp-acr-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'acr.key', '-out', 'acr.crt', '-days', '2', '-subj', '/CN=test acr'], {
    cwd: dir,
    stdio: 'ignore',
  });
  const certDer = new X509Certificate(readFileSync(join(dir, 'acr.crt'))).raw.toString('base64');
  const key = await importPKCS8(readFileSync(join(dir, 'acr.key'), 'utf8'), 'ES256');
  const verifyKey = createPublicKey(readFileSync(join(dir, 'acr.key'), 'utf8'));
  const adKey = await importSPKI(ad.publicKeyPem, 'RS256');
  const exchanges: TestAcr['exchanges'] = [];
  const tokenRequests: TestAcr['tokenRequests'] = [];
  const now = () => Math.floor(Date.now() / 1000);

  const accessToken = (subject: string, scopes: string[]) =>
    new SignJWT({
      version: '1.0',
      grant_type: 'refresh_token',
      access: scopes.map((s) => {
        const [type, name, actions] = s.split(':');
        return { type, name, actions: (actions ?? '').split(',') };
      }),
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: [certDer] })
      .setIssuer('Azure Container Registry')
      .setSubject(subject)
      .setAudience(service)
      .setIssuedAt(now())
      .setNotBefore(now() - 5)
      .setExpirationTime(now() + 300)
      .setJti(randomUUID())
      .sign(key);

  /** The principal of a valid ACR refresh token, or null. */
  const refreshPrincipal = async (token: string): Promise<string | null> => {
    try {
      const { payload } = await jwtVerify(token, verifyKey, { issuer: 'Azure Container Registry', audience: service });
      return payload['grant_type'] === 'refresh_token' && typeof payload.sub === 'string' ? payload.sub : null;
    } catch {
      return null;
    }
  };

  const realm = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', async () => {
      const json = (status: number, b: unknown) => void res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(b));
      const denied = (message: string) => json(401, { errors: [{ code: 'UNAUTHORIZED', message }] });
      const url = new URL(req.url ?? '/', 'http://x');
      const form = new URLSearchParams(body);
      if (url.pathname === '/oauth2/exchange' && req.method === 'POST') {
        if (form.get('grant_type') !== 'access_token') return json(400, { errors: [{ code: 'UNSUPPORTED', message: 'grant_type must be access_token' }] });
        if (form.get('service') !== service) return json(400, { errors: [{ code: 'INVALID', message: `service must be ${service}` }] });
        let principal: string | null = null;
        try {
          const { payload } = await jwtVerify(form.get('access_token') ?? '', adKey, { issuer: `https://sts.windows.net/${ad.tenant}/`, audience: AUDIENCES });
          const tenant = form.get('tenant');
          if (payload['tid'] !== ad.tenant || (tenant !== null && tenant !== ad.tenant)) throw new Error('tenant');
          principal = typeof payload['oid'] === 'string' ? payload['oid'] : null;
        } catch {
          exchanges.push({ principal: null, status: 401 });
          return denied('invalid AAD access token');
        }
        if (principal === null || !opts.principals.includes(principal)) {
          exchanges.push({ principal, status: 401 });
          return denied('the principal has no role on this registry');
        }
        exchanges.push({ principal, status: 200 });
        const refresh_token = await new SignJWT({ version: '1.0', grant_type: 'refresh_token', tenant: ad.tenant, permissions: { actions: ['*'], notActions: [] }, roles: [] })
          .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
          .setIssuer('Azure Container Registry')
          .setSubject(principal)
          .setAudience(service)
          .setIssuedAt(now())
          .setNotBefore(now())
          .setExpirationTime(now() + (opts.refreshTtlSeconds ?? 3 * 3600))
          .setJti(randomUUID())
          .sign(key);
        return json(200, { refresh_token });
      }
      if (url.pathname === '/oauth2/token') {
        let refresh: string | undefined;
        let via: 'basic' | 'refresh_token';
        let scopes: string[];
        if (req.method === 'POST') {
          via = 'refresh_token';
          scopes = form
            .getAll('scope')
            .flatMap((s) => s.split(' '))
            .filter(Boolean);
          if (form.get('grant_type') !== 'refresh_token' || form.get('service') !== service)
            return json(400, { errors: [{ code: 'UNSUPPORTED', message: 'grant_type refresh_token and this service' }] });
          refresh = form.get('refresh_token') ?? undefined;
        } else {
          via = 'basic';
          scopes = url.searchParams.getAll('scope');
          const auth = req.headers.authorization;
          if (auth?.startsWith('Basic ')) {
            const text = Buffer.from(auth.slice(6), 'base64').toString();
            const colon = text.indexOf(':');
            if (text.slice(0, colon) === NULL_GUID) refresh = text.slice(colon + 1);
          }
        }
        const principal = refresh ? await refreshPrincipal(refresh) : null;
        tokenRequests.push({ via, principal, scopes, status: principal ? 200 : 401 });
        if (!principal) return denied('a valid ACR refresh token is required');
        const token = await accessToken(principal, scopes);
        return json(200, { access_token: token, ...(via === 'basic' ? { token } : {}) });
      }
      json(404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });
    });
  });
  await new Promise<void>((r) => realm.listen(0, '127.0.0.1', r));
  const authUrl = `http://127.0.0.1:${(realm.address() as AddressInfo).port}`;
  const r = await startRegistryWithAuth(dir, `{token: {realm: "${authUrl}/oauth2/token", service: "${service}", issuer: "Azure Container Registry", rootcertbundle: ${join(dir, 'acr.crt')}}}`, 401);
  return {
    url: r.url,
    host: r.host,
    dir,
    service,
    authUrl,
    exchanges,
    tokenRequests,
    accessToken: (scope) => accessToken('seed', [scope]),
    async stop() {
      realm.closeAllConnections();
      await new Promise((res) => realm.close(res));
      await r.daemon.stop();
    },
  };
}
