/**
 * Issue 11, defects 5 and 9 at the token endpoint of a running proxy (real HTTP, real bcrypt
 * workers, real IID signature checks with a test region certificate).
 *
 * Defect 5: the per-account limit was keyed on the username the client claimed, before
 * authentication: anyone could lock out any account, and every node logging in as `aws-iid`
 * shared one bucket. Defect 9: repeated `scope` fields of the POST form were joined into one.
 */
import { randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { encodeAwsIidCredential } from '@registry-proxy/auth-iid';
import { awsDocument, createIidSigner } from '@registry-proxy/testing';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(60_000);
const signer = createIidSigner('eu-west-1');
const proxies: TestProxy[] = [];
afterAll(() => Promise.all(proxies.map((p) => p.close())));

const ALICE = 'alice-pw-1f3c';
const BOB = 'bob-pw-9d2e';

async function proxy(extra: Record<string, unknown> = {}): Promise<TestProxy> {
  const p = await startTestProxy({
    trustedProxies: ['127.0.0.1'],
    auth: [
      {
        type: 'static',
        users: [
          { username: 'alice', passwordHash: bcrypt.hashSync(ALICE, 4) },
          { username: 'bob', passwordHash: bcrypt.hashSync(BOB, 4) },
        ],
      },
      { type: 'iid', aws: { certificates: [signer.certPem], accounts: ['123456789012'] } },
    ],
    rules: [{ repository: '**', actions: ['pull'] }],
    upstreams: [{ name: 'up', url: 'http://127.0.0.1:9' }],
    ...extra,
  });
  proxies.push(p);
  return p;
}

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const ask = (p: TestProxy, from: string, user: string, pw: string) =>
  fetch(`${p.url}/token?service=registry-proxy&scope=repository:team/app:pull`, { headers: { 'x-forwarded-for': from, authorization: basic(user, pw) } });
const iidPassword = (instanceId: string) => {
  const document = awsDocument({ instanceId });
  return encodeAwsIidCredential({ document, pkcs7: signer.sign(document), nonce: randomBytes(16).toString('hex') });
};

describe('defect 5: failures are limited per (account, client address)', () => {
  it('junk passwords for aws-iid from one address do not block a valid IID login from another', async () => {
    const p = await proxy({ rateLimits: { failures: { points: 5, durationSeconds: 300 } } });
    const junk: number[] = [];
    for (let i = 0; i < 8; i++) junk.push((await ask(p, '10.1.0.1', 'aws-iid', `junk${i}`)).status);
    expect(junk).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    const ok = await ask(p, '10.1.0.2', 'aws-iid', iidPassword('i-0aaaaaaaaaaaaaaa1'));
    expect(ok.status).toBe(200);
    // The address that guessed is held back, even with a good credential: that is its own cost.
    const limited = await ask(p, '10.1.0.1', 'aws-iid', iidPassword('i-0aaaaaaaaaaaaaaa2'));
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await limited.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('TOOMANYREQUESTS');
  });

  it("a lockout of alice from address A does not lock alice out from B, and a success clears A's count", async () => {
    const p = await proxy({ rateLimits: { failures: { points: 3, durationSeconds: 300 } } });
    for (let i = 0; i < 3; i++) expect((await ask(p, '10.2.0.1', 'alice', 'wrong')).status).toBe(401);
    expect((await ask(p, '10.2.0.1', 'alice', ALICE)).status).toBe(429);
    expect((await ask(p, '10.2.0.2', 'alice', ALICE)).status).toBe(200);
    // Two failures and a success from C: the count starts again, so three more failures are allowed.
    for (let i = 0; i < 2; i++) expect((await ask(p, '10.2.0.3', 'alice', 'wrong')).status).toBe(401);
    expect((await ask(p, '10.2.0.3', 'alice', ALICE)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await ask(p, '10.2.0.3', 'alice', 'wrong')).status).toBe(401);
    expect((await ask(p, '10.2.0.3', 'alice', 'wrong')).status).toBe(429);
    expect(p.logs.join('')).not.toContain(ALICE);
  });

  it('an IPv6 client is one client per /64: new addresses from its block share its budgets', async () => {
    const p = await proxy({ rateLimits: { failures: { points: 3, durationSeconds: 300 }, perClient: { burst: 6, perSecond: 0.01 } } });
    // Three guesses, each from another address of 2001:db8:5:1::/64 (a host owns all 2^64 of them).
    for (let i = 1; i <= 3; i++) expect((await ask(p, `2001:db8:5:1::${i.toString(16)}`, 'alice', 'wrong')).status).toBe(401);
    expect((await ask(p, '2001:db8:5:1:ffff:ffff:ffff:ffff', 'alice', ALICE)).status).toBe(429);
    // The next /64 is someone else.
    expect((await ask(p, '2001:db8:5:2::1', 'alice', ALICE)).status).toBe(200);
    // Every request per client: 4 from the first /64 so far, 2 more are allowed, then the block is held back.
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await ask(p, `2001:db8:5:1:${i}::9`, 'bob', BOB)).status);
    expect(statuses).toEqual([200, 200, 429]);
    // The audit line still names the address that asked, not the block.
    expect(p.logs.join('')).toContain('"client":"2001:db8:5:1:ffff:ffff:ffff:ffff"');
  });
});

describe('defect 5: successes are limited per verified identity', () => {
  it('limits tokens per identity across addresses; each IID instance has its own budget', async () => {
    const p = await proxy({ rateLimits: { perAccount: { burst: 3, perSecond: 0.01 } } });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await ask(p, `10.3.0.${i + 1}`, 'alice', ALICE)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    // Nodes of one fleet all log in as aws-iid; each instance is its own identity.
    for (let i = 0; i < 5; i++) expect((await ask(p, '10.3.1.1', 'aws-iid', iidPassword(`i-0bbbbbbbbbbbbbb${i}0`))).status).toBe(200);
  });

  it('unauthenticated traffic never spends a verified identity budget', async () => {
    const p = await proxy({ rateLimits: { perAccount: { burst: 3, perSecond: 0.01 } } });
    for (let i = 0; i < 20; i++) expect((await ask(p, `10.4.0.${i + 1}`, 'bob', 'wrong')).status).toBe(401);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await ask(p, '10.4.1.1', 'bob', BOB)).status);
    expect(statuses).toEqual([200, 200, 200]);
  });
});

describe('defect 9: repeated scope fields of the POST form', () => {
  const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as { access: Array<{ name: string; actions: string[] }> };
  const post = (p: TestProxy, form: string) => fetch(`${p.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });

  it('are each a scope, as on GET, and a field may hold several separated by spaces', async () => {
    const p = await proxy();
    const base = `grant_type=password&service=registry-proxy&username=alice&password=${ALICE}`;
    const repeated = await post(p, `${base}&scope=repository:a/one:pull&scope=repository:b/two:pull`);
    expect(repeated.status).toBe(200);
    const r = (await repeated.json()) as { access_token: string; scope: string };
    expect(r.scope).toBe('repository:a/one:pull repository:b/two:pull');
    expect(claims(r.access_token).access.map((a) => a.name)).toEqual(['a/one', 'b/two']);
    const spaced = (await (await post(p, `${base}&scope=${encodeURIComponent('repository:a/one:pull repository:b/two:pull')}&scope=repository:c/three:pull`)).json()) as { scope: string };
    expect(spaced.scope).toBe('repository:a/one:pull repository:b/two:pull repository:c/three:pull');
    // GET grants the same for the same scopes.
    const get = await fetch(`${p.url}/token?service=registry-proxy&scope=repository:a/one:pull&scope=repository:b/two:pull`, { headers: { authorization: basic('alice', ALICE) } });
    expect(claims(((await get.json()) as { token: string }).token).access.map((a) => a.name)).toEqual(['a/one', 'b/two']);
  });

  it('still refuses a form without a grant and a bad scope with 400 in the registry format', async () => {
    const p = await proxy();
    const none = await post(p, 'service=registry-proxy');
    expect(none.status).toBe(400);
    const bad = await post(p, `grant_type=password&username=alice&password=${ALICE}&scope=nonsense`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('UNSUPPORTED'); // was UNAUTHORIZED/400, a pair the table did not have (issue 12)
  });
});

describe('defect 5: right passwords are never held back by the failures limit', () => {
  it('30 concurrent right passwords from one address all get a token (the limit allows 3 failures)', async () => {
    const p = await proxy({ rateLimits: { failures: { points: 3, durationSeconds: 300 } } });
    const statuses = await Promise.all(Array.from({ length: 30 }, () => ask(p, '10.3.0.1', 'alice', ALICE).then((r) => r.status)));
    expect(statuses).toEqual(Array.from({ length: 30 }, () => 200));
    // The failures limit still holds for that address once it is spent.
    for (let i = 0; i < 3; i++) expect((await ask(p, '10.3.0.1', 'alice', 'wrong')).status).toBe(401);
    expect((await ask(p, '10.3.0.1', 'alice', ALICE)).status).toBe(429);
  });
});
