/**
 * LDAP logins end to end: a real slapd, a real docker-registry, the proxy with an `ldap`
 * strategy, and docker login + docker pull. The directory's groups drive the access rules.
 */
import { BASE, PASSWORDS, Pusher, requireCommands, sampleImage, startDockerd, startRegistry, startSlapd, type TestDockerd, type TestRegistry, type TestSlapd } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(120_000);
let ldap: TestSlapd;
let reg: TestRegistry;
let proxy: TestProxy;
let d: TestDockerd;
const img = sampleImage('amd64');

beforeAll(async () => {
  await requireCommands('slapd', 'docker-registry', 'htpasswd', 'dockerd', 'docker');
  ldap = await startSlapd();
  reg = await startRegistry({ up: 'up-pw' });
  await new Pusher(reg.url, 'up', 'up-pw').image('team/app', 'v1', img);
  await new Pusher(reg.url, 'up', 'up-pw').image('admin/tool', 'v1', img);
  proxy = await startTestProxy({
    auth: [
      {
        type: 'ldap',
        url: ldap.url,
        bindDN: ldap.adminDN,
        bindCredentials: ldap.adminPassword,
        searchBase: `ou=people,${BASE}`,
        groupSearchBase: `ou=groups,${BASE}`,
        timeoutMs: 1000,
      },
    ],
    rules: [
      { groups: 'registry-admins', repository: '**', actions: ['pull', 'push'] },
      { groups: 'devs', repository: 'team/**', actions: ['pull'] },
    ],
    upstreams: [{ name: 'local', url: reg.url, credentials: { type: 'static', username: 'up', password: 'up-pw' } }],
  });
  d = await startDockerd();
});
afterAll(async () => {
  await d?.stop();
  await proxy?.close();
  await reg?.stop();
  await ldap?.stop();
});

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

describe('LDAP logins through the proxy', () => {
  it('docker login and pull with directory accounts; groups decide what each may pull', async () => {
    const login = await d.docker(['login', proxy.host, '-u', 'bob', '--password-stdin'], `${PASSWORDS.bob}\n`);
    expect([login.code, login.stdout]).toEqual([0, expect.stringContaining('Login Succeeded')]);
    const pull = await d.docker(['pull', `${proxy.host}/team/app:v1`]);
    expect([pull.code, pull.stderr]).toEqual([0, '']);
    expect(pull.stdout).toContain(`Digest: ${img.digest}`);
    // bob is in devs only: admin/tool is refused.
    const refused = await d.docker(['pull', `${proxy.host}/admin/tool:v1`]);
    expect(refused.code).not.toBe(0);
    // alice is in registry-admins.
    expect((await d.docker(['login', proxy.host, '-u', 'alice', '--password-stdin'], `${PASSWORDS.alice}\n`)).code).toBe(0);
    expect((await d.docker(['pull', `${proxy.host}/admin/tool:v1`])).code).toBe(0);
    const wrong = await d.docker(['login', proxy.host, '-u', 'alice', '--password-stdin'], 'wrong\n');
    expect(wrong.code).not.toBe(0);
  });

  it('answers 503 with Retry-After while the directory is down; tokens already issued keep working', async () => {
    const res = await fetch(`${proxy.url}/token?service=registry-proxy&scope=repository:team/app:pull`, { headers: { authorization: basic('bob', PASSWORDS.bob) } });
    const { token } = (await res.json()) as { token: string };
    await ldap.stop();
    try {
      const down = await fetch(`${proxy.url}/token?service=registry-proxy&scope=repository:team/app:pull`, { headers: { authorization: basic('bob', PASSWORDS.bob) } });
      expect(down.status).toBe(503);
      expect(down.headers.get('retry-after')).toBe('5');
      expect(((await down.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('UNAVAILABLE');
      const pull = await fetch(`${proxy.url}/v2/team/app/manifests/v1`, { headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect(pull.status).toBe(200);
      // The audit line says what happened, never the password.
      const audit = proxy.logs
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l['audit'] === 'token')
        .at(-1);
      expect(audit).toMatchObject({ outcome: 'unavailable' });
      expect(proxy.logs.join('')).not.toContain(PASSWORDS.bob);
    } finally {
      await ldap.start();
    }
    const back = await fetch(`${proxy.url}/token?service=registry-proxy&scope=repository:team/app:pull`, { headers: { authorization: basic('bob', PASSWORDS.bob) } });
    expect(back.status).toBe(200);
  });
});
