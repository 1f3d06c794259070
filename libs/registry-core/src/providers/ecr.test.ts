/**
 * The ECR provider through the real AWS SDK v3 client, pointed (endpoint override) at a small
 * local server that speaks ECR's JSON API (awsJson1_1, X-Amz-Target) and checks the SigV4
 * signature's credential scope. No AWS is contacted.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CredentialError, staticProvider } from '../credentials.js';
import { UpstreamClient } from '../upstream/client.js';
import { EcrProvider } from './ecr.js';

let ecr: Server;
let endpoint: string;
const requests: Array<{ target: string; auth: string; body: Record<string, unknown> }> = [];
let nextPassword = 'pw-1';
let lifetimeMs = 12 * 3600_000;
let answer: 'ok' | 'denied' = 'ok';

const env = { ...process.env };
beforeAll(async () => {
  // The SDK's default chain finds these first; nothing is read from files or instance metadata.
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIDTESTTESTTEST', AWS_SECRET_ACCESS_KEY: 'test-secret', AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent' });
  ecr = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      requests.push({ target: String(req.headers['x-amz-target']), auth: String(req.headers['authorization']), body: JSON.parse(text || '{}') as Record<string, unknown> });
      res.setHeader('content-type', 'application/x-amz-json-1.1');
      if (answer === 'denied') {
        res.statusCode = 400;
        res.end(JSON.stringify({ __type: 'AccessDeniedException', message: 'User is not authorized to perform: ecr:GetAuthorizationToken' }));
        return;
      }
      const token = Buffer.from(`AWS:${nextPassword}`).toString('base64');
      res.end(
        JSON.stringify({ authorizationData: [{ authorizationToken: token, expiresAt: (Date.now() + lifetimeMs) / 1000, proxyEndpoint: 'https://123456789012.dkr.ecr.eu-west-1.amazonaws.com' }] }),
      );
    });
  });
  await new Promise<void>((r) => ecr.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(ecr.address() as AddressInfo).port}`;
});
afterAll(async () => {
  process.env = env;
  await new Promise((r) => ecr.close(r));
});
beforeEach(() => {
  requests.length = 0;
  nextPassword = 'pw-1';
  lifetimeMs = 12 * 3600_000;
  answer = 'ok';
});

const HOST = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';

describe('EcrProvider', () => {
  it('calls GetAuthorizationToken for the registry in the host, signed for its region, and decodes AWS:<password>', async () => {
    const p = new EcrProvider({ endpoint });
    expect(await p.credentials({ registry: HOST })).toEqual({ kind: 'basic', username: 'AWS', password: 'pw-1' });
    expect(requests).toHaveLength(1);
    expect(requests[0]?.target).toBe('AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken');
    expect(requests[0]?.body).toEqual({ registryIds: ['123456789012'] });
    expect(requests[0]?.auth).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDTESTTESTTEST\/\d{8}\/eu-west-1\/ecr\/aws4_request, SignedHeaders=.*, Signature=[0-9a-f]{64}$/);
  });

  it('keeps the token until half of its life, then fetches a new one', async () => {
    lifetimeMs = 1200;
    const p = new EcrProvider({ endpoint });
    await p.credentials({ registry: HOST });
    nextPassword = 'pw-2';
    expect((await p.credentials({ registry: HOST })) as { password: string }).toMatchObject({ password: 'pw-1' });
    await new Promise((r) => setTimeout(r, 700));
    expect((await p.credentials({ registry: HOST })) as { password: string }).toMatchObject({ password: 'pw-2' });
    expect(requests).toHaveLength(2);
  });

  it('needs a region it can tell, and reports AWS errors without secrets', async () => {
    await expect(new EcrProvider({ endpoint }).credentials({ registry: 'registry.example.com' })).rejects.toThrow(/cannot tell the AWS region/);
    expect(await new EcrProvider({ endpoint, region: 'us-east-2' }).credentials({ registry: 'registry.example.com' })).toMatchObject({ password: 'pw-1' });
    expect(requests.at(-1)?.auth).toContain('/us-east-2/ecr/aws4_request');
    answer = 'denied';
    const err = await new EcrProvider({ endpoint }).credentials({ registry: HOST }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CredentialError);
    expect((err as Error).message).toMatch(/GetAuthorizationToken failed: AccessDeniedException: User is not authorized/);
    expect((err as Error).message).not.toContain('test-secret');
  });

  it('drops a token the registry refuses and retries the request once with a new one', async () => {
    // A registry that takes only the newest password, as ECR does after a token is revoked.
    let accepted = 'pw-2';
    const seen: string[] = [];
    const registry = createServer((req, res) => {
      const auth = req.headers.authorization ?? '';
      seen.push(Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString());
      if (auth !== `Basic ${Buffer.from(`AWS:${accepted}`).toString('base64')}`) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="ecr"' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((r) => registry.listen(0, '127.0.0.1', r));
    const port = (registry.address() as AddressInfo).port;
    const provider = new EcrProvider({ endpoint, region: 'eu-west-1', minRefetchMs: 0 });
    const client = new UpstreamClient({ name: 'ecr', url: `http://127.0.0.1:${port}`, credentials: provider, followRedirects: true });
    try {
      await provider.credentials({ registry: `127.0.0.1:${port}` }); // cached: pw-1, which the registry no longer takes
      nextPassword = 'pw-2';
      const res = await client.request({ method: 'GET', path: '/v2/' });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      expect(seen).toEqual(['', 'AWS:pw-1', 'AWS:pw-2']);
      // Refused again with nothing new to try: the 401 is the answer, after one more fetch.
      accepted = 'pw-3';
      const again = await client.request({ method: 'GET', path: '/v2/' });
      expect(again.statusCode).toBe(401);
      await again.body.dump();
      // Static credentials are never "refreshed".
      const fixed = new UpstreamClient({ name: 's', url: `http://127.0.0.1:${port}`, credentials: staticProvider({ kind: 'basic', username: 'AWS', password: 'x' }), followRedirects: true });
      expect((await fixed.request({ method: 'GET', path: '/v2/' })).statusCode).toBe(401);
      await fixed.close();
    } finally {
      await client.close();
      await new Promise((r) => registry.close(r));
    }
  });
});
