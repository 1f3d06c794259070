/**
 * The GCP provider against small local servers that speak Google's formats: the metadata
 * server's token endpoint (Metadata-Flavor: Google, as on GCE/GKE) and an OAuth token endpoint
 * that verifies the service-account JWT assertion with the key's public half.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jwtVerify } from 'jose';
import { GcpProvider } from './gcp.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const dir = mkdtempSync(join(tmpdir(), 'rp-gcp-'));
let server: Server;
let base: string;
let issued = 0;
let expiresIn = 3600;
const assertions: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', async (): Promise<void> => {
      const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json', 'metadata-flavor': 'Google' }).end(JSON.stringify(body));
      if (req.url === '/computeMetadata/v1/instance/service-accounts/default/token' && req.method === 'GET') {
        // The real server refuses requests without the header (a guard against SSRF).
        if (req.headers['metadata-flavor'] !== 'Google') return json(403, { error: 'missing Metadata-Flavor' });
        return json(200, { access_token: `meta-${++issued}`, expires_in: expiresIn, token_type: 'Bearer' });
      }
      if (req.url === '/token' && req.method === 'POST') {
        const form = new URLSearchParams(text);
        if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return json(400, { error: 'unsupported_grant_type' });
        try {
          const { payload, protectedHeader } = await jwtVerify(form.get('assertion') ?? '', publicKey, { audience: `${base}/token`, issuer: 'sa@proj.iam.gserviceaccount.com', algorithms: ['RS256'] });
          assertions.push({ ...payload, kid: protectedHeader.kid });
        } catch {
          return json(400, { error: 'invalid_grant' });
        }
        return json(200, { access_token: `sa-${++issued}`, expires_in: expiresIn, token_type: 'Bearer' });
      }
      return json(404, {});
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

function keyFile(over: Record<string, unknown> = {}): string {
  const path = join(dir, `key-${Math.random()}.json`);
  const key = {
    type: 'service_account',
    project_id: 'proj',
    private_key_id: 'k1',
    client_email: 'sa@proj.iam.gserviceaccount.com',
    token_uri: `${base}/token`,
    private_key: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    ...over,
  };
  writeFileSync(path, JSON.stringify(key));
  return path;
}

describe('GcpProvider', () => {
  it('takes the node service account token from the metadata server, as oauth2accesstoken', async () => {
    const p = new GcpProvider({ metadataUrl: base });
    const c = await p.credentials();
    expect(c).toEqual({ kind: 'basic', username: 'oauth2accesstoken', password: expect.stringMatching(/^meta-\d+$/) });
    expect(await p.credentials()).toBe(c); // cached
  });

  it('signs a JWT with a service-account key and exchanges it for a token', async () => {
    const c = await new GcpProvider({ keyFile: keyFile() }).credentials();
    expect(c).toEqual({ kind: 'basic', username: 'oauth2accesstoken', password: expect.stringMatching(/^sa-\d+$/) });
    expect(assertions.at(-1)).toMatchObject({ kid: 'k1', scope: 'https://www.googleapis.com/auth/cloud-platform' });
    const a = assertions.at(-1) as { exp: number; iat: number };
    expect(a.exp - a.iat).toBe(3600);
  });

  it('renews before expiry', async () => {
    expiresIn = 11; // renewed 10 s before the end: after 1 s
    const p = new GcpProvider({ metadataUrl: base });
    const first = await p.credentials();
    expect(await p.credentials()).toBe(first);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await p.credentials()).not.toEqual(first);
    expiresIn = 3600;
  });

  it('explains what is wrong with a key file or the server, never quoting the key', async () => {
    const msg = (p: GcpProvider) =>
      p.credentials().then(
        () => 'no error',
        (e: Error) => e.message,
      );
    expect(await msg(new GcpProvider({ keyFile: join(dir, 'missing.json') }))).toMatch(/cannot read key file .*missing\.json: ENOENT/);
    expect(await msg(new GcpProvider({ keyFile: keyFile({ type: 'authorized_user' }) }))).toMatch(/is not a service-account key/);
    const badKey = await msg(new GcpProvider({ keyFile: keyFile({ private_key: '-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----' }) }));
    expect(badKey).toMatch(/private_key is not an RSA PKCS#8 key/);
    expect(badKey).not.toContain('not-a-key');
    // A key the token endpoint does not accept.
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(await msg(new GcpProvider({ keyFile: keyFile({ private_key: other }) }))).toBe('RP_ERR_UPSTREAM_CREDENTIALS: gcp: the token endpoint answered HTTP 400');
    expect(await msg(new GcpProvider({ metadataUrl: `${base}/nothing-here` }))).toBe('RP_ERR_UPSTREAM_CREDENTIALS: gcp: the metadata server answered HTTP 404');
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    expect(await msg(new GcpProvider({ metadataUrl: `http://127.0.0.1:${port}` }))).toMatch(/gcp: the metadata server unreachable: ECONNREFUSED/);
  });
});
