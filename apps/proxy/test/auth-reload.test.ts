/**
 * Issue 11, defect 11: htpasswd files were read once at start-up, so deleting a user's line
 * left their logins working until a restart (README: removal "stops new logins at once").
 * Files are now watched and reloaded atomically; a broken file keeps the last good one.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { secretFiles } from '../src/auth-reload.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(60_000);
const dir = mkdtempSync(join(tmpdir(), 'rp-reload-'));
const file = join(dir, 'users.htpasswd');
const PW = { alice: 'alice-pw-5e1', bob: 'bob-pw-6f2' };
const line = (u: keyof typeof PW) => `${u}:${bcrypt.hashSync(PW[u], 4)}\n`;
/** Written as editors and Kubernetes do: a new file renamed over the old one. */
const write = (text: string) => {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
};
let p: TestProxy;

beforeAll(async () => {
  write(line('alice') + line('bob'));
  p = await startTestProxy({
    auth: [{ type: 'static', htpasswd: file, cacheSeconds: 60 }],
    rules: [{ repository: '**', actions: ['pull'] }],
    upstreams: [{ name: 'up', url: 'http://127.0.0.1:9' }],
    // The polls below fail on purpose, many times, from one address.
    rateLimits: { failures: { points: 1000 } },
  });
});
afterAll(async () => {
  await p?.close();
  rmSync(dir, { recursive: true, force: true });
});

const login = async (u: keyof typeof PW) => (await fetch(`${p.url}/token?service=registry-proxy`, { headers: { authorization: `Basic ${Buffer.from(`${u}:${PW[u]}`).toString('base64')}` } })).status;
/** Polls until `f` gives `want`; the milliseconds it took. */
async function until(f: () => Promise<number>, want: number, limitMs: number): Promise<number> {
  const t = performance.now();
  while (performance.now() - t < limitMs) {
    if ((await f()) === want) return performance.now() - t;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not ${want} within ${limitMs} ms`);
}

describe('defect 11: htpasswd files are watched', () => {
  it("removing a user's line refuses their next login within a second or two, cached logins included", async () => {
    expect(await login('alice')).toBe(200); // now in the success cache (60 s)
    write(line('bob'));
    const took = await until(() => login('alice'), 401, 5000);
    process.stdout.write(`defect 11: alice refused ${took.toFixed(0)} ms after her line was removed\n`);
    expect(took).toBeLessThan(2500);
    expect(await login('bob')).toBe(200);
    // And a user added to the file can log in.
    write(line('alice') + line('bob'));
    await until(() => login('alice'), 200, 5000);
  });

  it('a broken or missing file keeps the last good users and logs an error, never a hash', async () => {
    const marks = p.logs.length;
    const badHash = '$apr1$abc$defghijklmnopqrstuvwx';
    write(`alice:${badHash}\n`);
    await until(async () => (p.logs.slice(marks).some((l) => l.includes('auth files not reloaded')) ? 1 : 0), 1, 5000);
    expect(await login('alice')).toBe(200);
    expect(await login('bob')).toBe(200);
    const error = p.logs
      .slice(marks)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l['msg'] === 'auth files not reloaded; keeping the last good ones');
    expect(error).toMatchObject({ level: 50, auth: 'auth.0', err: { message: expect.stringMatching(/RP_ERR_HTPASSWD_INVALID: .*users.htpasswd line 1/) } });
    expect(p.logs.join('')).not.toContain(badHash);
    expect(p.logs.join('')).not.toContain(PW.alice);
    const before = p.logs.length;
    rmSync(file);
    await until(async () => (p.logs.slice(before).some((l) => l.includes('ENOENT')) ? 1 : 0), 1, 5000);
    expect(await login('bob')).toBe(200);
    // Fixed again: reloaded.
    write(line('bob'));
    await until(() => login('alice'), 401, 5000);
  });
});

describe('the files a strategy reads', () => {
  it('are its {file: ...} secrets at any depth', () => {
    expect(secretFiles({ type: 'ldap', bindCredentials: { file: '/s/bind' }, tlsOptions: { ca: { file: '/s/ca.pem' }, servername: 'x' } })).toEqual(['/s/bind', '/s/ca.pem']);
    expect(secretFiles({ type: 'oidc', issuers: [{ introspection: { clientSecret: { file: '/s/c' } } }, { issuer: 'x' }] })).toEqual(['/s/c']);
    expect(secretFiles({ type: 'iid', aws: { certificates: ['inline', { env: 'X' }, { file: '/s/a.pem' }] } })).toEqual(['/s/a.pem']);
  });
});
