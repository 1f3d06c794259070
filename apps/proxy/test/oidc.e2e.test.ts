/**
 * OIDC logins end to end: a real OpenID provider (oidc-provider), a real docker-registry, the
 * proxy with an `oidc` strategy, and docker login + pull with a JWT access token as the
 * password. Claims drive the access rules (a group and a label).
 */
import { Pusher, requireCommands, sampleImage, startDockerd, startOidcProvider, startRegistry, type TestDockerd, type TestOidcProvider, type TestRegistry } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(120_000);
const AUD = 'https://registry.example.com';
let op: TestOidcProvider;
let reg: TestRegistry;
let proxy: TestProxy;
let d: TestDockerd;
const img = sampleImage('amd64');

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'dockerd', 'docker');
  op = await startOidcProvider({ extraClaims: { groups: ['ci'], repository_owner: 'acme' } });
  reg = await startRegistry({ up: 'up-pw' });
  await new Pusher(reg.url, 'up', 'up-pw').image('acme/app', 'v1', img);
  await new Pusher(reg.url, 'up', 'up-pw').image('other/app', 'v1', img);
  proxy = await startTestProxy({
    auth: [{ type: 'oidc', issuers: [{ issuer: op.issuer, audiences: [AUD], allowInsecure: true, groupsClaim: 'groups', labelClaims: { owner: 'repository_owner' } }] }],
    rules: [{ groups: 'ci', labels: { owner: 'acme' }, repository: 'acme/**', actions: ['pull', 'push'] }],
    upstreams: [{ name: 'local', url: reg.url, credentials: { type: 'static', username: 'up', password: 'up-pw' } }],
  });
  d = await startDockerd();
});
afterAll(async () => {
  await d?.stop();
  await proxy?.close();
  await reg?.stop();
  await op?.stop();
});

describe('OIDC logins through the proxy', () => {
  it('docker login with a JWT access token, then pull what its claims allow', async () => {
    const token = await op.token(AUD);
    const login = await d.docker(['login', proxy.host, '-u', 'ci', '--password-stdin'], `${token}\n`);
    expect([login.code, login.stdout]).toEqual([0, expect.stringContaining('Login Succeeded')]);
    const pull = await d.docker(['pull', `${proxy.host}/acme/app:v1`]);
    expect([pull.code, pull.stderr]).toEqual([0, '']);
    expect((await d.docker(['pull', `${proxy.host}/other/app:v1`])).code).not.toBe(0);
    const audit = proxy.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['audit'] === 'token' && l['outcome'] === 'issued');
    expect(audit).toMatchObject({ method: 'oidc', subject: 'ci-pipeline' });
    expect(proxy.logs.join('')).not.toContain(token);
  });

  it('refuses a token for another audience', async () => {
    const wrong = await op.token('https://elsewhere.example.com');
    const login = await d.docker(['login', proxy.host, '-u', 'ci', '--password-stdin'], `${wrong}\n`);
    expect(login.code).not.toBe(0);
  });
});
