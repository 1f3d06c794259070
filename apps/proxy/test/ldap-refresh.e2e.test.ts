/**
 * Issue 11, defect 7 against a real slapd: refresh tokens froze group membership for up to
 * 7 days. With `tokens.revalidateAfterSeconds`, a refresh grant for an older login re-reads
 * the user and their groups; removing a user from a group, or from the directory, takes effect
 * within that period.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BASE, PASSWORDS, requireCommands, startSlapd, type TestSlapd } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(60_000);
let ldap: TestSlapd;
let proxy: TestProxy;
const dir = mkdtempSync(join(tmpdir(), 'rp-ldap-refresh-'));
const bindFile = join(dir, 'bind');

beforeAll(async () => {
  await requireCommands('slapd', 'ldapmodify', 'ldapdelete');
  ldap = await startSlapd();
  writeFileSync(bindFile, `${ldap.adminPassword}\n`);
  proxy = await startTestProxy({
    tokens: { revalidateAfterSeconds: 1 },
    auth: [
      {
        type: 'ldap',
        url: ldap.url,
        bindDN: ldap.adminDN,
        bindCredentials: { file: bindFile },
        searchBase: `ou=people,${BASE}`,
        groupSearchBase: `ou=groups,${BASE}`,
        timeoutMs: 2000,
      },
    ],
    rules: [
      { groups: 'registry-admins', repository: 'admin/**', actions: ['pull'] },
      { groups: 'devs', repository: 'team/**', actions: ['pull'] },
    ],
    upstreams: [{ name: 'up', url: 'http://127.0.0.1:9' }],
  });
});
afterAll(async () => {
  await proxy?.close();
  await ldap?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ldapTool = (cmd: string, args: string[], input?: string) =>
  execFileSync(cmd, ['-x', '-H', ldap.url, '-D', ldap.adminDN, '-w', ldap.adminPassword, ...args], { input, stdio: ['pipe', 'pipe', 'pipe'] });
const form = (fields: Record<string, string>) => new URLSearchParams({ service: 'registry-proxy', ...fields }).toString();
const post = async (fields: Record<string, string>) => {
  const res = await fetch(`${proxy.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form(fields) });
  return { status: res.status, body: (await res.json()) as { refresh_token?: string; scope?: string } };
};
const loginRefresh = async (user: keyof typeof PASSWORDS) => {
  const r = await post({ grant_type: 'password', username: user, password: PASSWORDS[user], access_type: 'offline', scope: 'repository:team/app:pull' });
  expect(r.status).toBe(200);
  return r.body.refresh_token as string;
};
const refresh = (token: string) => post({ grant_type: 'refresh_token', refresh_token: token, scope: 'repository:admin/tool:pull repository:team/app:pull' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('defect 7: refresh grants re-check the directory after revalidateAfterSeconds', () => {
  it('a user taken out of a group loses what the group granted', async () => {
    const token = await loginRefresh('alice');
    expect((await refresh(token)).body.scope).toBe('repository:admin/tool:pull repository:team/app:pull');
    // groupOfNames needs one member: someone else stays in the group.
    ldapTool('ldapmodify', [], `dn: cn=registry-admins,ou=groups,${BASE}\nchangetype: modify\nadd: member\nmember: ${ldap.adminDN}\n-\ndelete: member\nmember: uid=alice,ou=people,${BASE}\n`);
    await sleep(1200);
    const after = await refresh(token);
    expect(after.status).toBe(200);
    expect(after.body.scope).toBe('repository:team/app:pull');
  });

  it('a user deleted from the directory can no longer refresh', async () => {
    const token = await loginRefresh('bob');
    ldapTool('ldapdelete', [`uid=bob,ou=people,${BASE}`]);
    await sleep(1200);
    const after = await refresh(token);
    expect(after.status).toBe(401);
    const audit = proxy.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['audit'] === 'token')
      .at(-1);
    expect(audit).toMatchObject({ grant: 'refresh_token', subject: 'bob', outcome: 'denied', reason: expect.stringContaining('no longer in the directory') });
  });

  it('a directory that cannot be reached during a re-check answers 503 with Retry-After, not a grant', async () => {
    const token = await loginRefresh('alice');
    await sleep(1200);
    await ldap.stop();
    try {
      const res = await fetch(`${proxy.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form({ grant_type: 'refresh_token', refresh_token: token, scope: 'repository:team/app:pull' }),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('UNAVAILABLE');
    } finally {
      await ldap.start();
    }
    expect((await refresh(token)).status).toBe(200);
  });

  it('the bind secret file is watched: rewritten, the strategy is rebuilt and keeps working; secrets never logged', async () => {
    const marks = proxy.logs.length;
    writeFileSync(`${bindFile}.tmp`, `${ldap.adminPassword}\n`);
    renameSync(`${bindFile}.tmp`, bindFile);
    for (let i = 0; i < 60 && !proxy.logs.slice(marks).some((l) => l.includes('auth files reloaded')); i++) await sleep(100);
    expect(proxy.logs.slice(marks).some((l) => l.includes('auth files reloaded'))).toBe(true);
    expect((await post({ grant_type: 'password', username: 'alice', password: PASSWORDS.alice })).status).toBe(200);
    const all = proxy.logs.join('');
    for (const secret of [ldap.adminPassword, PASSWORDS.alice, PASSWORDS.bob]) expect(all).not.toContain(secret);
  });
});
