import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import forge from 'node-forge';

/**
 * Stand-ins for Azure (none can run here), speaking its wire formats:
 * - IMDS `/metadata/attested/document` (Microsoft's "Attested data" reference): JSON
 *   `{encoding: "pkcs7", signature}`, the signature a base64 PKCS#7 SignedData that carries
 *   the JSON document inside and only the signing certificate, issued for
 *   `<region>.metadata.azure.com` by an intermediate under a root; here a test CA.
 * - IMDS `/metadata/identity/oauth2/token` (managed identity) and an Entra ID (AAD) v2 token
 *   endpoint for client credentials, both issuing RS256 JWTs from one test key.
 */

function keyPair(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } {
  // Node's generator: forge's pure-JS one takes seconds per key.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  return { privateKey: key, publicKey: forge.pki.rsa.setPublicKey(key.n, key.e) };
}

interface Issued {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
}

function issue(subjectCn: string, issuer: Issued | undefined, opts: { ca: boolean; dnsNames?: string[]; notBefore?: Date; notAfter?: Date }): Issued {
  const keys = keyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`;
  cert.validity.notBefore = opts.notBefore ?? new Date(Date.now() - 86_400_000);
  cert.validity.notAfter = opts.notAfter ?? new Date(Date.now() + 30 * 86_400_000);
  cert.setSubject([{ name: 'commonName', value: subjectCn }]);
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : [{ name: 'commonName', value: subjectCn }]);
  const ext: unknown[] = [
    { name: 'basicConstraints', cA: opts.ca, critical: true },
    { name: 'keyUsage', critical: true, ...(opts.ca ? { keyCertSign: true, cRLSign: true } : { digitalSignature: true, keyEncipherment: true }) },
  ];
  if (opts.dnsNames) ext.push({ name: 'subjectAltName', altNames: opts.dnsNames.map((value) => ({ type: 2, value })) });
  cert.setExtensions(ext as never);
  cert.sign(issuer?.key ?? keys.privateKey, forge.md.sha256.create());
  return { cert, key: keys.privateKey };
}

/** Signs attested documents as IMDS does: attached content, SHA-256, the signing certificate embedded. */
export interface AzureAttestationSigner {
  readonly certPem: string;
  sign(document: string): string;
}

/** A test root and intermediate, like Azure's (DigiCert/Microsoft root, "Microsoft Azure ... TLS Issuing CA"). */
export interface AzureTestCa {
  readonly rootPem: string;
  readonly intermediatePem: string;
  /** A signing certificate under the intermediate; default SAN `eastus.metadata.azure.com, metadata.azure.com`. */
  signer(opts?: { dnsNames?: string[]; notBefore?: Date; notAfter?: Date }): AzureAttestationSigner;
}

export function createAzureTestCa(name = 'Test Azure'): AzureTestCa {
  const root = issue(`${name} Root`, undefined, { ca: true });
  const intermediate = issue(`${name} TLS Issuing CA 01`, root, { ca: true });
  return {
    rootPem: forge.pki.certificateToPem(root.cert),
    intermediatePem: forge.pki.certificateToPem(intermediate.cert),
    signer(opts = {}) {
      const leaf = issue(opts.dnsNames?.[0] ?? 'eastus.metadata.azure.com', intermediate, {
        ca: false,
        dnsNames: opts.dnsNames ?? ['eastus.metadata.azure.com', 'metadata.azure.com'],
        ...(opts.notBefore ? { notBefore: opts.notBefore } : {}),
        ...(opts.notAfter ? { notAfter: opts.notAfter } : {}),
      });
      return {
        certPem: forge.pki.certificateToPem(leaf.cert),
        sign(document) {
          const p7 = forge.pkcs7.createSignedData();
          p7.content = forge.util.createBuffer(document, 'utf8');
          p7.addCertificate(leaf.cert); // only the signer: the intermediate comes from its AIA URL on Azure
          p7.addSigner({
            key: leaf.key,
            certificate: leaf.cert,
            digestAlgorithm: forge.pki.oids['sha256'] as string,
            authenticatedAttributes: [
              { type: forge.pki.oids['contentType'] as string, value: forge.pki.oids['data'] as string },
              { type: forge.pki.oids['messageDigest'] as string },
              { type: forge.pki.oids['signingTime'] as string, value: new Date() as unknown as string },
            ],
          });
          p7.sign();
          return forge.util.encode64(forge.asn1.toDer(p7.toAsn1()).getBytes());
        },
      };
    },
  };
}

/** IMDS's time stamp format: `MM/DD/YY HH:MM:SS -0000`, UTC. */
export function azureTimestamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCMonth() + 1)}/${p(d.getUTCDate())}/${p(d.getUTCFullYear() % 100)} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} -0000`;
}

/** The facts of a test VM, as the attested document names them. */
export interface AzureVm {
  readonly vmId: string;
  readonly subscriptionId: string;
  readonly sku?: string;
  readonly licenseType?: string;
  readonly plan?: { name: string; product: string; publisher: string };
}

/** The attested document IMDS signs (field set and order from Microsoft's reference). */
export function azureAttestedDocument(vm: AzureVm, nonce: string | undefined, ttlSeconds = 6 * 3600, now = Date.now()): string {
  const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15); // IMDS's default nonce: 20201130-211924
  return JSON.stringify({
    nonce: nonce ?? stamp,
    plan: vm.plan ?? { name: '', product: '', publisher: '' },
    timeStamp: { createdOn: azureTimestamp(now), expiresOn: azureTimestamp(now + ttlSeconds * 1000) },
    vmId: vm.vmId,
    ...(vm.licenseType ? { licenseType: vm.licenseType } : {}),
    subscriptionId: vm.subscriptionId,
    sku: vm.sku ?? '',
  });
}

/** A stand-in Entra ID: signs access tokens, and serves the v2 client-credentials endpoint. */
export interface TestAzureAd {
  readonly tenant: string;
  readonly publicKeyPem: string;
  /** An access token for `principal` (oid) with audience `aud`. */
  issue(aud: string, principal: string, ttlSeconds?: number): Promise<string>;
}

export async function createAzureAd(tenant: string = randomUUID()): Promise<TestAzureAd> {
  const { SignJWT, importPKCS8 } = await import('jose');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = await importPKCS8(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'RS256');
  return {
    tenant,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    async issue(aud, principal, ttlSeconds = 3600) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ tid: tenant, oid: principal, ver: '1.0' })
        .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: 'test' })
        .setIssuer(`https://sts.windows.net/${tenant}/`)
        .setSubject(principal)
        .setAudience(aud)
        .setIssuedAt(now)
        .setNotBefore(now - 5)
        .setExpirationTime(now + ttlSeconds)
        .sign(key);
    },
  };
}

export interface TestAzureServer {
  readonly url: string;
  /** `METHOD path?query` of every request. */
  readonly requests: string[];
  close(): Promise<void>;
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void | Promise<void>): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => void Promise.resolve(handler(req, res, body)).catch(() => res.writeHead(500).end()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

const json = (res: ServerResponse, status: number, body: unknown) => void res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));

/**
 * Azure IMDS: the attested document (documents live `ttlSeconds`) and, with `ad`, managed
 * identity tokens for `principal`. Requests need `Metadata: true` and no X-Forwarded-For, as
 * the real service insists.
 */
export async function startAzureImds(
  vm: AzureVm,
  signer: AzureAttestationSigner,
  opts: { ttlSeconds?: number; ad?: TestAzureAd; principal?: string; tokenTtlSeconds?: number } = {},
): Promise<TestAzureServer> {
  const requests: string[] = [];
  const s = await serve(async (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const u = new URL(req.url ?? '/', 'http://x');
    if (req.headers['metadata'] !== 'true' || req.headers['x-forwarded-for'] !== undefined) return json(res, 400, { error: 'Bad request. Required metadata header not specified' });
    if (req.method !== 'GET') return json(res, 405, { error: 'Method not allowed' });
    if (!u.searchParams.get('api-version')) return json(res, 400, { error: 'Bad request. api-version is invalid or was not specified in the request.' });
    if (u.pathname === '/metadata/attested/document') {
      const nonce = u.searchParams.get('nonce') ?? undefined;
      if (nonce !== undefined && !/^[A-Za-z0-9]{1,32}$/.test(nonce)) return json(res, 400, { error: 'Bad request. Nonce is invalid.' });
      return json(res, 200, { encoding: 'pkcs7', signature: signer.sign(azureAttestedDocument(vm, nonce, opts.ttlSeconds)) });
    }
    if (u.pathname === '/metadata/identity/oauth2/token' && opts.ad) {
      const resource = u.searchParams.get('resource');
      if (!resource) return json(res, 400, { error: 'invalid_request', error_description: 'Required query variable resource is missing' });
      const ttl = opts.tokenTtlSeconds ?? 86_399;
      const now = Math.floor(Date.now() / 1000);
      const access_token = await opts.ad.issue(resource, opts.principal ?? 'managed-identity', ttl);
      // IMDS answers every number as a string.
      return json(res, 200, { access_token, refresh_token: '', expires_in: String(ttl), expires_on: String(now + ttl), not_before: String(now), resource, token_type: 'Bearer' });
    }
    json(res, 404, { error: 'Not found' });
  });
  return { url: s.url, requests, close: s.close };
}

/** Entra ID's v2 token endpoint (`/<tenant>/oauth2/v2.0/token`) for client credentials with a secret. */
export async function startAzureAdTokenEndpoint(ad: TestAzureAd, clients: Record<string, string>): Promise<TestAzureServer & { tokenUrl: string }> {
  const requests: string[] = [];
  const s = await serve(async (req, res, body) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.method !== 'POST' || req.url !== `/${ad.tenant}/oauth2/v2.0/token`) return json(res, 404, { error: 'not_found' });
    const f = new URLSearchParams(body);
    if (f.get('grant_type') !== 'client_credentials') return json(res, 400, { error: 'unsupported_grant_type' });
    const id = f.get('client_id') ?? '';
    if (clients[id] === undefined || clients[id] !== f.get('client_secret')) return json(res, 401, { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.' });
    const scope = f.get('scope') ?? '';
    if (!scope.endsWith('/.default')) return json(res, 400, { error: 'invalid_scope' });
    const aud = scope.slice(0, -'.default'.length);
    return json(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: await ad.issue(aud, id) });
  });
  return { url: s.url, tokenUrl: `${s.url}/${ad.tenant}/oauth2/v2.0/token`, requests, close: s.close };
}
