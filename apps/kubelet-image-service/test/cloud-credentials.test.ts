import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ACR_REFRESH_TOKEN_USER } from '@registry-proxy/registry-core';
import { createAzureAd, createAzureTestCa, requireCommands, startAcr, startAzureAdTokenEndpoint, startAzureImds, type TestAcr, type TestAzureAd } from '@registry-proxy/testing';
import { parseConfig } from '../src/config.js';
import { CACHE_DURATION, CredentialRules } from '../src/credentials.js';

// ACR: a REAL docker-registry in token mode behind the libs/testing stand-in of ACR's
// /oauth2/exchange and /oauth2/token, and stand-ins of Entra ID and IMDS (no Azure here).
// ECR: a loopback stand-in of the ECR JSON API (AWS JSON 1.1, GetAuthorizationToken).
let ad: TestAzureAd;
let acr: TestAcr;
beforeAll(async () => {
  await requireCommands('docker-registry', 'openssl');
  ad = await createAzureAd();
  acr = await startAcr(ad, { principals: ['node-identity', 'sp-app'] });
}, 60_000);
afterAll(async () => {
  await acr?.stop();
});

/** The refresh token works where the runtime presents it: ACR's token endpoint, over Basic. */
async function acrTokenStatus(username: string, password: string): Promise<number> {
  const res = await fetch(`${acr.authUrl}/oauth2/token?service=${acr.service}&scope=repository:team/app:pull`, {
    headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` },
  });
  return res.status;
}

describe('acr credentials on a node', () => {
  it('a service principal (secret from the environment): kubelet gets the null-GUID user and an ACR refresh token', async () => {
    const entra = await startAzureAdTokenEndpoint(ad, { 'sp-app': 'sp-secret' });
    process.env['TEST_SP_SECRET'] = 'sp-secret';
    try {
      const provider = {
        type: 'acr',
        identity: { type: 'service-principal', tenantId: ad.tenant, clientId: 'sp-app', clientSecret: { env: 'TEST_SP_SECRET' }, tokenUrl: entra.tokenUrl },
        exchangeUrl: `${acr.authUrl}/oauth2/exchange`,
        service: acr.service,
      };
      const rules = new CredentialRules(parseConfig(`backend: {type: cri}\ncredentials:\n  - hosts: ["*.azurecr.io"]\n    provider: ${JSON.stringify(provider)}\n`, 't'));
      const d = await rules.decide(`${acr.service}/team/app:v1`, undefined);
      expect([d.decision, d.auth?.username]).toEqual(['rule 0 (acr)', ACR_REFRESH_TOKEN_USER]);
      expect(await acrTokenStatus(d.auth?.username ?? '', d.auth?.password ?? '')).toBe(200);
      expect(acr.exchanges).toContainEqual({ principal: 'sp-app', status: 200 });
      expect(CACHE_DURATION.acr).toBe('1h');
    } finally {
      delete process.env['TEST_SP_SECRET'];
      await entra.close();
    }
  }, 30_000);

  it('the managed identity from IMDS; an identity without a role on the registry is refused, naming the step', async () => {
    const vm = { vmId: 'b1c2d3e4-0000-4000-8000-000000000001', subscriptionId: '8d10da13-8125-4ba9-a717-bf7490507b3d' };
    const signer = createAzureTestCa().signer();
    const good = await startAzureImds(vm, signer, { ad, principal: 'node-identity' });
    const stranger = await startAzureImds(vm, signer, { ad, principal: 'someone-else' });
    try {
      const rule = (imdsUrl: string) =>
        `  - hosts: ["${acr.service}"]\n    provider: {type: acr, identity: {type: managed-identity, imdsUrl: "${imdsUrl}"}, exchangeUrl: "${acr.authUrl}/oauth2/exchange", service: ${acr.service}}\n`;
      const d = await new CredentialRules(parseConfig(`backend: {type: cri}\ncredentials:\n${rule(good.url)}`, 't')).decide(`${acr.service}/team/app:v1`, undefined);
      expect(await acrTokenStatus(d.auth?.username ?? '', d.auth?.password ?? '')).toBe(200);
      await expect(new CredentialRules(parseConfig(`backend: {type: cri}\ncredentials:\n${rule(stranger.url)}`, 't')).decide(`${acr.service}/team/app:v1`, undefined)).rejects.toThrow(
        /acr: the registry's \/oauth2\/exchange answered HTTP 401/,
      );
    } finally {
      await good.close();
      await stranger.close();
    }
  }, 30_000);
});

describe('ecr credentials on a node', () => {
  it('asks GetAuthorizationToken for the configured registryId, not the one in the host name', async () => {
    const bodies: unknown[] = [];
    const api = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        bodies.push({ target: req.headers['x-amz-target'], body: JSON.parse(body || '{}') as unknown });
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ authorizationData: [{ authorizationToken: Buffer.from('AWS:ecr-password').toString('base64'), expiresAt: Date.now() / 1000 + 43_200 }] }));
      });
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    const saved = { id: process.env['AWS_ACCESS_KEY_ID'], secret: process.env['AWS_SECRET_ACCESS_KEY'] };
    process.env['AWS_ACCESS_KEY_ID'] = 'AKIDTEST';
    process.env['AWS_SECRET_ACCESS_KEY'] = 'test-secret';
    try {
      const endpoint = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
      const rules = new CredentialRules(
        parseConfig(`backend: {type: cri}\ncredentials:\n  - hosts: ["*.amazonaws.com"]\n    provider: {type: ecr, registryId: "210987654321", endpoint: "${endpoint}"}\n`, 't'),
      );
      const d = await rules.decide('123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:v1', undefined);
      expect([d.decision, d.auth?.username, d.auth?.password]).toEqual(['rule 0 (ecr)', 'AWS', 'ecr-password']);
      expect(bodies).toEqual([{ target: 'AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken', body: { registryIds: ['210987654321'] } }]);
    } finally {
      for (const [k, v] of [
        ['AWS_ACCESS_KEY_ID', saved.id],
        ['AWS_SECRET_ACCESS_KEY', saved.secret],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      api.close();
    }
  }, 30_000);
});
