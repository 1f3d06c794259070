/**
 * Browser sign-in end to end, all real parts: headless Chromium (Debian's chromium, driven by
 * puppeteer-core) signs in at the proxy's /login against a real OpenID provider
 * (oidc-provider, its own login and consent pages), reads the CLI secret off the page, and a
 * real dockerd logs in and pulls with it through the proxy from a real docker-registry. Then
 * the secret is revoked in the page and the next login is refused; the person's groups change
 * and are re-checked; tampered state, a replayed callback and a code minted with another nonce
 * each get the error page. The screenshots in docs/images come from this test.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { Pusher, freePort, requireCommands, sampleImage, startDockerd, startOidcProvider, startRegistry, type TestDockerd, type TestOidcProvider, type TestRegistry } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(180_000);
const CLIENT = { id: 'registry-proxy-web', secret: 'web-client-secret-5b9e0c7d' };
const DOCS = join(__dirname, '../../../docs/images');
let dir: string;
let accountsFile: string;
let op: TestOidcProvider;
let reg: TestRegistry;
let proxy: TestProxy;
let d: TestDockerd;
let browser: Browser;
let base: string;

const setAccounts = (a: Record<string, { groups: string[]; name?: string }>) => writeFileSync(accountsFile, JSON.stringify(a));

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'dockerd', 'docker', 'chromium');
  dir = mkdtempSync(join(tmpdir(), 'rp-login-'));
  accountsFile = join(dir, 'accounts.json');
  setAccounts({ alice: { groups: ['devs'], name: 'Alice' }, mallory: { groups: [] } });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  op = await startOidcProvider({ browser: { ...CLIENT, redirectUris: [`${base}/login/callback`], accountsFile } });
  reg = await startRegistry({ up: 'up-pw' });
  await new Pusher(reg.url, 'up', 'up-pw').image('team/app', 'v1', sampleImage('amd64'));
  await new Pusher(reg.url, 'up', 'up-pw').image('ops/tool', 'v1', sampleImage('amd64'));
  proxy = await startTestProxy({
    listen: { host: '127.0.0.1', port },
    auth: [{ type: 'oidc', issuers: [{ issuer: op.issuer, audiences: ['unused-by-login'], allowInsecure: true, groupsClaim: 'groups' }] }],
    login: { issuer: op.issuer, clientId: CLIENT.id, clientSecret: CLIENT.secret, scopes: ['openid', 'groups', 'offline_access'], revalidateAfterSeconds: 0, operatorGroups: ['registry-admins'] },
    rules: [
      { groups: 'devs', repository: 'team/**', actions: ['pull'] },
      { groups: 'ops', repository: 'ops/**', actions: ['pull'] },
    ],
    upstreams: [{ name: 'local', url: reg.url, credentials: { type: 'static', username: 'up', password: 'up-pw' } }],
  });
  d = await startDockerd();
  browser = await puppeteer.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    userDataDir: join(dir, 'chromium'),
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
});
afterAll(async () => {
  if (process.env['LOGIN_DEBUG']) console.log(proxy.logs.filter((l) => /login|identity provider|sign-in|token request/.test(l)).join(''));
  await browser?.close();
  await d?.stop();
  await proxy?.close();
  await reg?.stop();
  await op?.stop();
});

/** A fresh browser profile (no cookies) per sign-in. */
async function newPage(): Promise<Page> {
  const ctx = await browser.createBrowserContext();
  return ctx.newPage();
}

/** Goes through the provider's own login and consent pages as `login`. */
async function signInAtProvider(page: Page, login: string): Promise<void> {
  await page.waitForSelector('input[name="login"]');
  await page.type('input[name="login"]', login);
  await page.type('input[name="password"]', 'any-password');
  await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
  // The consent prompt (offline_access asks for it).
  if (await page.$('input[name="prompt"][value="consent"]')) await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
}

async function text(page: Page, sel: string): Promise<string> {
  return page.$eval(sel, (e) => e.textContent ?? '');
}

const login = (user: string, password: string) => d.docker(['login', proxy.host, '-u', user, '--password-stdin'], `${password}\n`);

describe('browser sign-in', () => {
  let secret: string;
  let page: Page;

  it('signs in through the provider and shows a CLI secret, the command and the expiry', async () => {
    page = await newPage();
    const res = await page.goto(`${base}/login`);
    expect(res?.url()).toContain(op.issuer); // sent to the provider
    await signInAtProvider(page, 'alice');
    expect(page.url()).toMatch(new RegExp(`^${base}/login/callback\\?`));
    expect(await text(page, '#subject')).toBe('alice');
    secret = (await text(page, '#secret')).trim();
    expect(secret).toMatch(/^rpcli_[A-Za-z0-9_-]{43}$/);
    expect(await text(page, '#command')).toBe(`docker login ${proxy.host} -u alice`);
    expect(await page.content()).toMatch(/expires \d{4}-\d\d-\d\d/);
    // The page as people see it right after signing in (docs/images; not rewritten in CI).
    if (process.env['CI'] !== 'true') {
      mkdirSync(DOCS, { recursive: true });
      await page.screenshot({ path: join(DOCS, 'login-signed-in.png'), fullPage: true });
    }
    const headers = res?.headers() ?? {};
    expect(headers['content-security-policy']).toBeUndefined(); // that was the provider's redirect; ours below
    const own = await page.reload();
    // A reload replays the callback: refused, and the page says why.
    expect(own?.status()).toBe(400);
    expect(own?.headers()['content-security-policy']).toContain("default-src 'none'");
    await page.goto(`${base}/login`);
    expect(await text(page, '#subject')).toBe('alice'); // the session cookie held
  });

  it('docker login and pull with the secret; only what her groups allow', async () => {
    const l = await login('alice', secret);
    expect([l.code, l.stdout]).toEqual([0, expect.stringContaining('Login Succeeded')]);
    const pull = await d.docker(['pull', `${proxy.host}/team/app:v1`]);
    expect([pull.code, pull.stderr]).toEqual([0, '']);
    expect((await d.docker(['pull', `${proxy.host}/ops/tool:v1`])).code).not.toBe(0);
    expect((await login('mallory', secret)).code).not.toBe(0); // her secret is hers only
    expect(proxy.logs.join('')).not.toContain(secret);
  });

  it('re-checks groups with the provider: a group added there counts at the next use', async () => {
    setAccounts({ alice: { groups: ['devs', 'ops'] }, mallory: { groups: [] } });
    expect((await login('alice', secret)).code).toBe(0);
    const pull = await d.docker(['pull', `${proxy.host}/ops/tool:v1`]);
    expect([pull.code, pull.stderr]).toEqual([0, '']);
  });

  it('revokes the secret in the page; the next docker login is refused', async () => {
    await page.goto(`${base}/login`);
    const form = await page.$('form[action$="/revoke"]');
    expect(form).not.toBeNull();
    await Promise.all([page.waitForNavigation(), page.click('form[action$="/revoke"] button')]);
    expect(await text(page, '#notice')).toMatch(/revoked/);
    const l = await login('alice', secret);
    expect(l.code).not.toBe(0);
    expect(l.stderr).toMatch(/unauthorized|401/i);
  });

  it('regression: a revoked secret stops a docker that is already logged in (no refresh token outlives it)', async () => {
    // dockerd keeps whatever its earlier `docker login` got: a refresh token, if one was issued,
    // replaces the password and would keep pulling after the revocation.
    const pull = await d.docker(['pull', `${proxy.host}/team/app:v1`]);
    expect(pull.code).not.toBe(0);
    expect(pull.stderr).toMatch(/unauthorized|401|denied/i);
  });

  it('a person removed at the provider loses their secret at the next use', async () => {
    const p = await newPage();
    await p.goto(`${base}/login`);
    await signInAtProvider(p, 'mallory');
    const s = (await text(p, '#secret')).trim();
    expect((await login('mallory', s)).code).toBe(0);
    setAccounts({ alice: { groups: ['devs'] } });
    expect((await login('mallory', s)).code).not.toBe(0);
  });

  it('refuses a revoke form without the CSRF token or from another origin', async () => {
    const p = await newPage();
    await p.goto(`${base}/login`);
    await signInAtProvider(p, 'alice');
    const cookies = await p.browserContext().cookies();
    const session = cookies.find((c) => c.name === 'rp_session');
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict' });
    const id = await p.$eval('form[action$="/revoke"]', (f) => (f as unknown as { action: string }).action.split('/').at(-2) ?? '');
    const cookie = `rp_session=${session?.value}`;
    const post = (body: string, origin?: string) =>
      fetch(`${base}/login/secrets/${id}/revoke`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', ...(origin ? { origin } : {}) },
        body,
        redirect: 'manual',
      });
    expect((await post('csrf=forged')).status).toBe(400);
    // Regression: a body the form parser refuses got the registry's JSON error, not the page's.
    const huge = await post(`csrf=${'x'.repeat(8000)}`);
    expect([huge.status, huge.headers.get('content-type')]).toEqual([413, expect.stringContaining('text/html')]);
    expect(huge.headers.get('content-security-policy')).toContain("default-src 'none'");
    const csrf = await p.$eval('input[name="csrf"]', (e) => (e as unknown as { value: string }).value);
    expect((await post(`csrf=${csrf}`, 'https://evil.example')).status).toBe(400);
    const still = await login('alice', (await text(p, '#secret')).trim());
    expect(still.code).toBe(0);
  });

  it('regression: a person in many groups keeps the session (its cookie fits the browser limit of 4 KB)', async () => {
    // Directory-backed providers name groups by id: 150 of them is common (Azure sends up to 200).
    const many = Array.from({ length: 150 }, (_, i) => `${i.toString(16).padStart(8, '0')}-4d2a-4b7e-9c1f-0123456789ab`);
    setAccounts({ alice: { groups: ['devs'] }, bigco: { groups: [...many, 'devs'] } });
    const p = await newPage();
    await p.goto(`${base}/login`);
    await signInAtProvider(p, 'bigco');
    expect(await text(p, '#subject')).toBe('bigco');
    await p.goto(`${base}/login`);
    expect(p.url()).toBe(`${base}/login`); // not sent back to the provider: the session cookie held
    expect(await text(p, '#subject')).toBe('bigco');
    await Promise.all([p.waitForNavigation(), p.click('form[action$="/revoke"] button')]);
    expect(await text(p, '#notice')).toMatch(/revoked/);
  });
});

describe('sign-in errors', () => {
  /** Runs the provider part of a sign-in and returns the callback URL without letting the proxy see it. */
  async function callbackUrl(page: Page, login: string, editAuthorize?: (u: URL) => void): Promise<string> {
    await page.setRequestInterception(true);
    let cb = '';
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (editAuthorize && r.isNavigationRequest() && u.origin === op.issuer && u.pathname === '/auth' && u.searchParams.has('nonce') && !u.searchParams.has('edited')) {
        editAuthorize(u);
        u.searchParams.set('edited', '1');
        void r.continue({ url: u.href });
        return;
      }
      if (u.origin === base && u.pathname === '/login/callback' && !cb) {
        cb = r.url();
        void r.abort();
        return;
      }
      void r.continue();
    });
    await page.goto(`${base}/login`);
    await signInAtProvider(page, login).catch(() => undefined);
    for (let i = 0; i < 100 && !cb; i++) await new Promise((r) => setTimeout(r, 50));
    page.removeAllListeners('request');
    await page.setRequestInterception(false);
    expect(cb).not.toBe('');
    return cb;
  }

  it('a tampered state gets the error page', async () => {
    const page = await newPage();
    const cb = new URL(await callbackUrl(page, 'alice'));
    cb.searchParams.set('state', 'tampered-state');
    const res = await page.goto(cb.href);
    expect(res?.status()).toBe(400);
    expect(await text(page, '#error')).toMatch(/state does not match/);
    if (process.env['CI'] !== 'true') await page.screenshot({ path: join(DOCS, 'login-error.png'), fullPage: true });
  });

  it('a replayed callback gets the error page', async () => {
    const page = await newPage();
    const cb = await callbackUrl(page, 'alice');
    expect((await page.goto(cb))?.status()).toBe(200);
    const again = await page.goto(cb);
    expect(again?.status()).toBe(400);
    expect(await text(page, '#error')).toMatch(/already used|No sign-in is in progress/);
  });

  it('a code minted for another nonce gets the error page', async () => {
    const page = await newPage();
    // The browser's sealed cookie holds the proxy's nonce; the provider is asked with another.
    const cb = await callbackUrl(page, 'alice', (u) => u.searchParams.set('nonce', 'attacker-chosen-nonce'));
    const res = await page.goto(cb);
    expect(res?.status()).toBe(400);
    expect(await text(page, '#error')).toMatch(/nonce/i);
  });

  it('without a login configuration /login does not exist', async () => {
    const other = await startTestProxy({ upstreams: [{ name: 'local', url: reg.url }] });
    try {
      expect((await fetch(`${other.url}/login`, { redirect: 'manual' })).status).toBe(404);
    } finally {
      await other.close();
    }
  });
});
