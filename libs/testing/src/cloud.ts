import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import forge from 'node-forge';

/**
 * Stand-ins for cloud metadata servers (none can run here), speaking the real wire formats:
 * AWS IMDSv2 (session token, instance identity document, RSA-2048 PKCS#7 signature) and the GCP
 * metadata server (identity tokens, format=full) with a JWKS for its signing key.
 */

/** A test "AWS region certificate" and its key, signing documents as AWS does (detached PKCS#7 SignedData, RSA-2048, SHA-256). */
export interface TestIidSigner {
  readonly certPem: string;
  sign(document: string): string;
}

export function createIidSigner(cn = 'test AWS region'): TestIidSigner {
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - 86_400_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  const attrs = [{ name: 'commonName', value: cn }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return {
    certPem: forge.pki.certificateToPem(cert),
    sign(document) {
      const p7 = forge.pkcs7.createSignedData();
      p7.content = forge.util.createBuffer(document, 'utf8');
      p7.addSigner({
        key: keys.privateKey,
        certificate: cert,
        digestAlgorithm: forge.pki.oids['sha256'] as string,
        authenticatedAttributes: [
          { type: forge.pki.oids['contentType'] as string, value: forge.pki.oids['data'] as string },
          { type: forge.pki.oids['messageDigest'] as string },
          { type: forge.pki.oids['signingTime'] as string, value: new Date() as unknown as string },
        ],
      });
      p7.sign({ detached: true }); // as IMDS serves it: the signature, the document apart
      // IMDS serves the DER as base64 in 64-character lines, without PEM armour.
      return forge.util.encode64(forge.asn1.toDer(p7.toAsn1()).getBytes()).replace(/(.{64})/g, '$1\n');
    },
  };
}

export function awsDocument(over: Record<string, unknown> = {}): string {
  return JSON.stringify(
    {
      accountId: '123456789012',
      architecture: 'x86_64',
      availabilityZone: 'eu-west-1a',
      imageId: 'ami-0abcdef1234567890',
      instanceId: `i-${randomBytes(8).toString('hex').slice(0, 17)}`,
      instanceType: 'm5.large',
      pendingTime: '2026-11-01T10:00:00Z',
      privateIp: '10.0.1.23',
      region: 'eu-west-1',
      version: '2017-09-30',
      ...over,
    },
    null,
    2,
  );
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export interface TestMetadataServer {
  readonly url: string;
  readonly requests: string[];
  close(): Promise<void>;
}

/** IMDSv2: `PUT /latest/api/token`, then GETs that must carry the session token. */
export async function startImds(document: string, signer: TestIidSigner): Promise<TestMetadataServer> {
  const tokens = new Set<string>();
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!(ttl >= 1 && ttl <= 21600)) return void res.writeHead(400).end();
      const t = randomBytes(24).toString('base64');
      tokens.add(t);
      return void res.writeHead(200, { 'content-type': 'text/plain', 'x-aws-ec2-metadata-token-ttl-seconds': String(ttl) }).end(t);
    }
    if (req.method !== 'GET') return void res.writeHead(405).end();
    if (!tokens.has(String(req.headers['x-aws-ec2-metadata-token']))) return void res.writeHead(401).end(); // IMDSv1 is off
    if (req.url === '/latest/dynamic/instance-identity/document') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(document);
    if (req.url === '/latest/dynamic/instance-identity/rsa2048') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(signer.sign(document));
    res.writeHead(404).end();
  });
  const url = await listen(server);
  return { url, requests, close: () => new Promise((r) => server.close(() => r())) };
}

/** GCP metadata identity tokens (RS256, iss accounts.google.com, google.compute_engine claims) and the JWKS at `/certs`. */
export async function startGcpMetadata(
  compute: { project_id: string; zone: string; instance_id: string; instance_name: string },
  ttlSeconds = 3600,
): Promise<TestMetadataServer & { jwksUrl: string; sign(claims: Record<string, unknown>): Promise<string> }> {
  const { SignJWT, exportJWK, generateKeyPair } = await import('jose');
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const requests: string[] = [];
  const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(privateKey);
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/certs') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    if (req.headers['metadata-flavor'] !== 'Google') return void res.writeHead(403).end('Missing Metadata-Flavor:Google header.');
    if (u.pathname === '/computeMetadata/v1/instance/service-accounts/default/identity') {
      const aud = u.searchParams.get('audience');
      if (!aud) return void res.writeHead(400).end('non-empty audience parameter required');
      const now = Math.floor(Date.now() / 1000);
      const claims: Record<string, unknown> = { iss: 'https://accounts.google.com', aud, azp: '1234567890', sub: '1234567890', iat: now, exp: now + ttlSeconds };
      if (u.searchParams.get('format') === 'full') claims['google'] = { compute_engine: { ...compute, project_number: 42, instance_creation_timestamp: now - 3600 } };
      void sign(claims).then((t) => res.writeHead(200, { 'content-type': 'text/html', 'metadata-flavor': 'Google' }).end(t));
      return;
    }
    res.writeHead(404).end();
  });
  const url = await listen(server);
  return { url, jwksUrl: `${url}/certs`, requests, sign, close: () => new Promise((r) => server.close(() => r())) };
}
