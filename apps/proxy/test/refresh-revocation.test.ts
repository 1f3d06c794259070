/**
 * Issue 11, defect 7 with htpasswd users and the operators' revocations file: a refresh token
 * stood for 7 days whatever happened to its user.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(60_000);
const dir = mkdtempSync(join(tmpdir(), 'rp-revoke-'));
const users = join(dir, 'users.htpasswd');
const revoked = join(dir, 'revoked.txt');
const PW = { alice: 'alice-pw-a1', bob: 'bob-pw-b2', carol: 'carol-pw-c3' };
const line = (u: keyof typeof PW) => `${u}:${bcrypt.hashSync(PW[u], 4)}\n`;
const write = (path: string, text: string) => {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
};
let p: TestProxy;

beforeAll(async () => {
  write(users, line('alice') + line('bob') + line('carol'));
  write(revoked, '# nobody yet\n');
  p = await startTestProxy({
    tokens: { revalidateAfterSeconds: 0, revocationsFile: revoked },
    auth: [{ type: 'static', htpasswd: users }],
    rules: [{ repository: '**', actions: ['pull'] }],
    upstreams: [{ name: 'up', url: 'http://127.0.0.1:9' }],
  });
});
afterAll(async () => {
  await p?.close();
  rmSync(dir, { recursive: true, force: true });
});

const post = async (fields: Record<string, string>) =>
  (await fetch(`${p.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ service: 'registry-proxy', ...fields }).toString() }))
    .status;
const loginRefresh = async (u: keyof typeof PW) => {
  const res = await fetch(`${p.url}/token?service=registry-proxy&offline_token=true`, { headers: { authorization: `Basic ${Buffer.from(`${u}:${PW[u]}`).toString('base64')}` } });
  return ((await res.json()) as { refresh_token: string }).refresh_token;
};
const refresh = (token: string) => post({ grant_type: 'refresh_token', refresh_token: token, scope: 'repository:team/app:pull' });
async function until(f: () => Promise<number>, want: number, limitMs = 5000): Promise<number> {
  const t = performance.now();
  while (performance.now() - t < limitMs) {
    if ((await f()) === want) return performance.now() - t;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not ${want} within ${limitMs} ms`);
}

describe('defect 7: refresh tokens of removed and revoked users', () => {
  it('a user removed from the htpasswd file can no longer refresh', async () => {
    const token = await loginRefresh('carol');
    expect(await refresh(token)).toBe(200);
    write(users, line('alice') + line('bob'));
    await until(() => refresh(token), 401);
  });

  it('a subject listed in the revocations file can no longer refresh; a cut-off time spares later logins', async () => {
    const token = await loginRefresh('alice');
    const other = await loginRefresh('bob');
    expect(await refresh(token)).toBe(200);
    write(revoked, 'alice\n');
    const took = await until(() => refresh(token), 401);
    process.stdout.write(`defect 7: alice's refresh refused ${took.toFixed(0)} ms after the revocations file listed her\n`);
    expect(await refresh(other)).toBe(200);
    // Revoked before a moment: tokens from earlier logins stay refused, a new login works.
    await new Promise((r) => setTimeout(r, 1100));
    write(revoked, `alice ${new Date().toISOString()}\n`);
    await new Promise((r) => setTimeout(r, 1100));
    const fresh = await loginRefresh('alice');
    await until(() => refresh(fresh), 200);
    expect(await refresh(token)).toBe(401);
  });

  it('a broken revocations file keeps the last good list and logs an error', async () => {
    const token = await loginRefresh('bob');
    write(revoked, 'bob\n');
    await until(() => refresh(token), 401);
    const marks = p.logs.length;
    write(revoked, 'bob not-a-time\n');
    await until(async () => (p.logs.slice(marks).some((l) => l.includes('revocations not reloaded')) ? 1 : 0), 1);
    expect(await refresh(token)).toBe(401);
    write(revoked, '');
    await until(() => refresh(token), 200);
  });
});
