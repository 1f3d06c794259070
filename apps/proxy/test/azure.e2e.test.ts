/**
 * Azure on both sides, end to end. No Azure can run here, so:
 * - IMDS is a stand-in (libs/testing azure.ts) that speaks Microsoft's documented formats: the
 *   attested document (a PKCS#7 signed by a TEST CA, not Microsoft's) and managed-identity
 *   tokens (signed by a test Entra ID key);
 * - Azure Container Registry is a REAL docker-registry in token mode behind a stand-in for ACR's
 *   `/oauth2/exchange` and `/oauth2/token` (libs/testing acr.ts).
 * A real dockerd logs in to the proxy with the VM's attested document and pulls an image that
 * lives in the "ACR", which the proxy reaches with its managed identity.
 */
import { AzureIidProvider } from '@registry-proxy/auth-iid';
import {
  MT,
  Pusher,
  createAzureAd,
  createAzureTestCa,
  requireCommands,
  sampleImage,
  startAcr,
  startAzureAdTokenEndpoint,
  startAzureImds,
  startDockerd,
  type TestAcr,
  type TestAzureAd,
  type TestAzureServer,
  type TestDockerd,
} from '@registry-proxy/testing';
import bcrypt from 'bcryptjs';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(120_000);
const ca = createAzureTestCa();
const vm = { vmId: '02aab8a4-74ef-476e-8182-f6d2ba4166a6', subscriptionId: '8d10da13-8125-4ba9-a717-bf7490507b3d', sku: 'ubuntu-24_04-lts' };
const img = sampleImage('amd64');
let ad: TestAzureAd;
let acr: TestAcr;
let imds: TestAzureServer;
let proxy: TestProxy;
let d: TestDockerd;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  await requireCommands('docker-registry', 'openssl', 'dockerd', 'docker');
  ad = await createAzureAd();
  // The registry grants the proxy's managed identity (and the service principal) a role.
  acr = await startAcr(ad, { principals: ['proxy-vm-identity', 'sp-app'] });
  await Pusher.bearer(acr.url, await acr.accessToken('repository:team/app:pull,push')).image('team/app', 'v1', img);
  imds = await startAzureImds(vm, ca.signer(), { ad, principal: 'proxy-vm-identity' });
  proxy = await startTestProxy({
    auth: [{ type: 'iid', azure: { roots: [ca.rootPem], intermediates: [ca.intermediatePem], subscriptions: [vm.subscriptionId] } }],
    rules: [{ labels: { 'azure.subscriptionId': vm.subscriptionId }, repository: 'acr/**', actions: ['pull'] }],
    upstreams: [
      {
        name: 'acr',
        prefix: 'acr',
        url: acr.url,
        tokenRealms: [acr.authUrl],
        credentials: { type: 'acr', identity: { type: 'managed-identity', imdsUrl: imds.url }, exchangeUrl: `${acr.authUrl}/oauth2/exchange`, service: acr.service },
      },
    ],
  });
  d = await startDockerd();
});
afterAll(async () => {
  await d?.stop();
  await proxy?.close();
  await imds?.close();
  await acr?.stop();
  for (const c of closers) await c();
});

describe('an Azure VM pulls from ACR through the proxy', () => {
  it('docker login with the attested document, docker pull; the proxy exchanged its managed identity for an ACR refresh token', async () => {
    const creds = (await new AzureIidProvider({ imdsUrl: imds.url }).credentials()) as { username: string; password: string };
    const login = await d.docker(['login', proxy.host, '-u', creds.username, '--password-stdin'], `${creds.password}\n`);
    expect([login.code, login.stdout]).toEqual([0, expect.stringContaining('Login Succeeded')]);
    const pull = await d.docker(['pull', `${proxy.host}/acr/team/app:v1`]);
    expect([pull.code, pull.stderr]).toEqual([0, '']);
    expect((await d.docker(['image', 'inspect', '--format', '{{index .RepoDigests 0}}', `${proxy.host}/acr/team/app:v1`])).stdout.trim()).toBe(`${proxy.host}/acr/team/app@${img.digest}`);
    const audit = proxy.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['audit'] === 'token' && l['method'] === 'iid:azure');
    expect(audit).toMatchObject({ subject: `azure/${vm.subscriptionId}/${vm.vmId}`, outcome: 'issued' });
    // One exchange for the proxy's identity; every ACR token came from that refresh token.
    expect(acr.exchanges).toEqual([{ principal: 'proxy-vm-identity', status: 200 }]);
    expect(acr.tokenRequests.length).toBeGreaterThan(0);
    expect(acr.tokenRequests.every((r) => r.principal === 'proxy-vm-identity' && r.status === 200)).toBe(true);
    expect(proxy.logs.join('')).not.toContain(creds.password);
  });

  it('refuses a VM of a subscription the configuration does not allow, and a document signed under another root', async () => {
    const other = await startAzureImds({ ...vm, vmId: 'b1c2d3e4-0000-4000-8000-000000000002', subscriptionId: '11111111-2222-3333-4444-555555555555' }, ca.signer());
    const forged = await startAzureImds({ ...vm, vmId: 'b1c2d3e4-0000-4000-8000-000000000003' }, createAzureTestCa('Attacker').signer());
    closers.push(other.close, forged.close);
    for (const imdsUrl of [other.url, forged.url]) {
      const creds = (await new AzureIidProvider({ imdsUrl }).credentials()) as { username: string; password: string };
      const login = await d.docker(['login', proxy.host, '-u', creds.username, '--password-stdin'], `${creds.password}\n`);
      expect([login.code, login.stderr]).toEqual([1, expect.stringContaining('unauthorized')]);
    }
    const denials = proxy.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['audit'] === 'token' && l['outcome'] !== 'issued');
    expect(JSON.stringify(denials)).toContain('subscription 11111111-2222-3333-4444-555555555555 not allowed');
    expect(JSON.stringify(denials)).toContain('signing certificate does not chain to a configured root');
  });
});

describe('ACR with a service principal', () => {
  const tokenFrom = async (p: TestProxy, scope: string) =>
    (
      (await (await fetch(`${p.url}/token?service=registry-proxy&scope=${scope}`, { headers: { authorization: `Basic ${Buffer.from('alice:alice-pw').toString('base64')}` } })).json()) as {
        token: string;
      }
    ).token;

  it('pulls with a client secret; a wrong secret and an identity without a role on the registry give 502 and leak nothing', async () => {
    const aad = await startAzureAdTokenEndpoint(ad, { 'sp-app': 'sp-secret', 'sp-norole': 'norole-secret' });
    closers.push(aad.close);
    const upstream = (name: string, clientId: string, clientSecret: string) => ({
      name,
      prefix: name,
      url: acr.url,
      tokenRealms: [acr.authUrl],
      credentials: {
        type: 'acr',
        identity: { type: 'service-principal', tenantId: ad.tenant, clientId, clientSecret, tokenUrl: aad.tokenUrl },
        exchangeUrl: `${acr.authUrl}/oauth2/exchange`,
        service: acr.service,
      },
    });
    const p = await startTestProxy({
      auth: [{ type: 'static', users: [{ username: 'alice', passwordHash: bcrypt.hashSync('alice-pw', 4) }] }],
      rules: [{ account: 'alice', repository: '**', actions: ['pull'] }],
      upstreams: [upstream('sp', 'sp-app', 'sp-secret'), upstream('wrong', 'sp-app', 'not-the-secret'), upstream('norole', 'sp-norole', 'norole-secret')],
    });
    closers.push(() => p.close());
    acr.exchanges.length = 0;
    const get = async (repo: string) => fetch(`${p.url}/v2/${repo}/manifests/v1`, { headers: { authorization: `Bearer ${await tokenFrom(p, `repository:${repo}:pull`)}`, accept: MT.manifest } });
    const ok = await get('sp/team/app');
    expect([ok.status, ok.headers.get('docker-content-digest')]).toEqual([200, img.digest]);
    expect(acr.exchanges).toEqual([{ principal: 'sp-app', status: 200 }]);
    for (const repo of ['wrong/team/app', 'norole/team/app']) {
      const res = await get(repo);
      expect(res.status).toBe(502);
      expect(((await res.json()) as { errors: Array<{ message: string }> }).errors[0]?.message).toBe('upstream credentials unavailable');
    }
    expect(acr.exchanges.at(-1)).toEqual({ principal: 'sp-norole', status: 401 });
    const logs = p.logs.join('');
    expect(logs).not.toContain('not-the-secret');
    expect(logs).not.toContain('norole-secret');
    expect(logs).toContain('acr: the Entra ID token endpoint answered HTTP 401');
  });
});
