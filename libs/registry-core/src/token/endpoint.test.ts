import { AccessRules } from '../access-rules.js';
import { AuthBackendError, type AuthOutcome, type CredentialVerifier } from '../identity.js';
import { TokenEndpoint } from './endpoint.js';
import { KeySet } from './keys.js';
import { parseTokenRequest } from './request.js';
import { RefreshCheck } from './revalidate.js';
import { MemoryRevocations } from './revocations.js';
import { TokenService } from './service.js';
import { RegistryError } from '../errors.js';

const verifier: CredentialVerifier = {
  name: 'test',
  async verify(u, p): Promise<AuthOutcome> {
    if (u === 'down') throw new AuthBackendError('ldap down');
    if (u === 'alice' && p === 'pw') return { result: 'allow', identity: { subject: 'alice', method: 'test', groups: ['dev'], labels: {} } };
    if (u === 'alice') return { result: 'deny', reason: 'wrong password' };
    return { result: 'skip' };
  },
};

async function setup() {
  const tokens = new TokenService({ issuer: 'i', service: 'svc', keys: await KeySet.ephemeral(), accessTokenTtl: 60, refreshTokenTtl: 600, algorithms: ['ES256'], clockTolerance: 0 });
  const rules = new AccessRules([
    { groups: ['dev'], repository: ['team/**'], actions: ['pull'] },
    { account: ['anonymous'], repository: ['public/*'], actions: ['pull'] },
  ]);
  return { tokens, ep: new TokenEndpoint({ tokens, verifier, rules, basicRealm: 'svc' }) };
}
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const get = (qs: string, authorization?: string) => parseTokenRequest({ method: 'GET', query: new URLSearchParams(qs), ...(authorization ? { authorization } : {}) });
const post = (form: string) => parseTokenRequest({ method: 'POST', query: new URLSearchParams(), form: new URLSearchParams(form) });

describe('parseTokenRequest', () => {
  it('GET with Basic', () => {
    expect(get('service=svc&scope=repository:a:pull&scope=repository:b:push&offline_token=true&client_id=docker', basic('u', 'p:w'))).toMatchObject({
      grant: 'password',
      username: 'u',
      password: 'p:w',
      offline: true,
      clientId: 'docker',
      scopes: [
        { type: 'repository', name: 'a', actions: ['pull'] },
        { type: 'repository', name: 'b', actions: ['push'] },
      ],
    });
  });
  it('POST forms', () => {
    expect(post('grant_type=password&username=u&password=p&scope=repository:a:pull repository:b:pull&access_type=offline&service=svc')).toMatchObject({
      grant: 'password',
      offline: true,
      form: true,
      scopes: [{ name: 'a' }, { name: 'b' }],
    });
    expect(post('grant_type=refresh_token&refresh_token=abc')).toMatchObject({ grant: 'refresh_token', refreshToken: 'abc' });
  });
  it.each([
    ['POST without grant_type', () => post('username=u')],
    ['POST with an unknown grant', () => post('grant_type=client_credentials')],
    ['password grant without password', () => post('grant_type=password&username=u')],
    ['refresh grant without token', () => post('grant_type=refresh_token')],
    ['bad scope', () => get('scope=nonsense')],
    ['malformed Basic', () => get('', 'Basic !!!')],
    ['Basic without colon', () => get('', `Basic ${Buffer.from('nocolon').toString('base64')}`)],
    ['another scheme', () => get('', 'Bearer x')],
  ])('refuses %s with a registry error', (_label, f) => {
    expect(f).toThrow(RegistryError);
  });
});

describe('TokenEndpoint', () => {
  it('grants requested ∩ allowed; a partial grant is not an error', async () => {
    const { ep, tokens } = await setup();
    const d = await ep.handle(get('service=svc&scope=repository:team/app:pull,push&scope=repository:other:pull', basic('alice', 'pw')));
    expect(d.status).toBe(200);
    const body = JSON.parse(d.body);
    expect(body.token).toBe(body.access_token);
    expect(body.expires_in).toBe(60);
    expect(new Date(body.issued_at).toISOString()).toBe(body.issued_at);
    expect(body).not.toHaveProperty('refresh_token');
    expect((await tokens.verifyAccessToken(body.token)).access).toEqual([{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
  });
  // The answer is written out, not serialized from an object: it must stay exactly what
  // JSON.stringify gave, also for a scope naming characters JSON escapes.
  it('writes the answer byte for byte as JSON.stringify of its fields', async () => {
    const { ep } = await setup();
    const odd = 'team/q"u\\o\u2028\u00e9\u0001';
    const form = new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'pw', access_type: 'offline', scope: `repository:${odd}:pull repository:team/b:pull,push` });
    const d = await ep.handle(parseTokenRequest({ method: 'POST', query: new URLSearchParams(), form }));
    const p = JSON.parse(d.body) as Record<string, string>;
    const iat = (JSON.parse(Buffer.from((p['token'] as string).split('.')[1] as string, 'base64url').toString()) as { iat: number }).iat;
    expect(p['refresh_token']).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(d.body).toBe(
      JSON.stringify({
        token: p['token'],
        access_token: p['token'],
        expires_in: 60,
        issued_at: new Date(iat * 1000).toISOString(),
        refresh_token: p['refresh_token'],
        scope: `repository:${odd}:pull repository:team/b:pull`,
      }),
    );
    const g = await ep.handle(get('service=svc&scope=repository:team/a:pull', basic('alice', 'pw')));
    const q = JSON.parse(g.body) as Record<string, unknown>;
    expect(g.body).toBe(JSON.stringify({ token: q['token'], access_token: q['token'], expires_in: 60, issued_at: q['issued_at'] }));
    // issued_at is formatted once per second, and always for the second asked.
    const iso = (ms: number) => (ep as unknown as { isoSecond(d: Date): string }).isoSecond(new Date(ms));
    expect([iso(1_000), iso(1_000), iso(2_000), iso(1_000)]).toEqual(['1970-01-01T00:00:01.000Z', '1970-01-01T00:00:01.000Z', '1970-01-01T00:00:02.000Z', '1970-01-01T00:00:01.000Z']);
  });
  it('issues refresh tokens on offline requests, and they work as a grant', async () => {
    const { ep } = await setup();
    const d = await ep.handle(post('grant_type=password&username=alice&password=pw&access_type=offline&scope=repository:team/a:pull'));
    const body = JSON.parse(d.body);
    expect(body.scope).toBe('repository:team/a:pull');
    expect(typeof body.refresh_token).toBe('string');
    const r = await ep.handle(post(`grant_type=refresh_token&refresh_token=${body.refresh_token}&scope=repository:team/b:pull`));
    expect(r.status).toBe(200);
    expect(r.identity?.subject).toBe('alice');
    expect(r.granted).toEqual([{ type: 'repository', name: 'team/b', actions: ['pull'] }]);
    const bad = await ep.handle(post(`grant_type=refresh_token&refresh_token=${JSON.parse(r.body).access_token}`));
    expect(bad.status).toBe(401);
  });
  it('refuses a refresh token at once when its subject is revoked, though its signature check is cached', async () => {
    const { tokens } = await setup();
    const revocations = new MemoryRevocations();
    const refreshCheck = new RefreshCheck({ lookup: async () => ({ result: 'skip' }), revalidateAfter: 3600, revocations });
    const rules = new AccessRules([{ groups: ['dev'], repository: ['team/**'], actions: ['pull'] }]);
    const ep = new TokenEndpoint({ tokens, verifier, rules, basicRealm: 'svc', refreshCheck });
    const login = JSON.parse((await ep.handle(post('grant_type=password&username=alice&password=pw&access_type=offline'))).body);
    const grant = post(`grant_type=refresh_token&refresh_token=${login.refresh_token}&scope=repository:team/a:pull`);
    expect((await ep.handle(grant)).status).toBe(200);
    expect((await ep.handle(grant)).status).toBe(200);
    await revocations.revoke('alice', Number.POSITIVE_INFINITY);
    const refused = await ep.handle(grant);
    expect([refused.status, refused.reason]).toEqual([401, 'refresh token revoked']);
    await revocations.unrevoke('alice');
    expect((await ep.handle(grant)).status).toBe(200);
  });

  it('answers 401 with a Basic challenge for bad, unknown and empty credentials', async () => {
    const { ep } = await setup();
    for (const [u, p] of [
      ['alice', 'nope'],
      ['nobody', 'x'],
      ['alice', ''],
    ] as const) {
      const d = await ep.handle(get('scope=repository:team/a:pull', basic(u, p)));
      expect(d.status).toBe(401);
      expect(d.headers['WWW-Authenticate']).toBe('Basic realm="svc"');
      expect(JSON.parse(d.body).errors[0].code).toBe('UNAUTHORIZED');
      expect(d.body).not.toContain(p || '\u0000');
    }
  });
  it('answers 503 when the backend is down', async () => {
    const { ep } = await setup();
    const d = await ep.handle(get('scope=repository:team/a:pull', basic('down', 'x')));
    expect(d.status).toBe(503);
    expect(d.outcome).toBe('unavailable');
  });
  it('anonymous: granted by rules, otherwise 401', async () => {
    const { ep } = await setup();
    expect((await ep.handle(get('scope=repository:public/x:pull'))).status).toBe(200);
    expect((await ep.handle(get('scope=repository:team/x:pull'))).status).toBe(401);
  });
  it('refuses another service', async () => {
    const { ep } = await setup();
    expect((await ep.handle(get('service=other', basic('alice', 'pw')))).status).toBe(400);
  });
  it('grants the catalog to signed-in callers with their identity in the token, never to anonymous', async () => {
    const { ep, tokens } = await setup();
    const d = await ep.handle(get('scope=registry:catalog:*&scope=repository:team/a:pull', basic('alice', 'pw')));
    expect(d.granted).toEqual([
      { type: 'registry', name: 'catalog', actions: ['*'] },
      { type: 'repository', name: 'team/a', actions: ['pull'] },
    ]);
    const v = await tokens.verifyAccessToken(JSON.parse(d.body).token);
    expect(v.identity).toEqual({ subject: 'alice', method: 'test', groups: ['dev'], labels: {} });
    // A token without the catalog carries no identity.
    const plain = await ep.handle(get('scope=repository:team/a:pull', basic('alice', 'pw')));
    expect((await tokens.verifyAccessToken(JSON.parse(plain.body).token)).identity).toBeUndefined();
    const anon = await ep.handle(get('scope=registry:catalog:*'));
    expect(anon.status).toBe(401);
  });

  it('does not let a refresh token outlive the credential the identity came from', async () => {
    const tokens = new TokenService({ issuer: 'i', service: 'svc', keys: await KeySet.ephemeral(), accessTokenTtl: 60, refreshTokenTtl: 86_400, algorithms: ['ES256'], clockTolerance: 0 });
    const now = Math.floor(Date.now() / 1000);
    let expiresAt = now + 600;
    const oidcLike: CredentialVerifier = { name: 'o', verify: async () => ({ result: 'allow', identity: { subject: 'ci', method: 'oidc', groups: [], labels: {}, expiresAt } }) };
    const ep = new TokenEndpoint({ tokens, verifier: oidcLike, rules: new AccessRules([{ account: ['ci'], repository: ['**'], actions: ['pull'] }]), basicRealm: 'svc' });
    const d = await ep.handle(get('offline_token=true&scope=repository:a:pull', basic('ci', 'jwt')));
    const refresh = JSON.parse(d.body).refresh_token as string;
    const exp = JSON.parse(Buffer.from(refresh.split('.')[1] as string, 'base64url').toString()).exp as number;
    expect(exp).toBeLessThanOrEqual(expiresAt);
    expect(exp).toBeGreaterThan(now + 590);
    expiresAt = now + 30; // less than a minute left: no refresh token at all
    const late = JSON.parse((await ep.handle(get('offline_token=true&scope=repository:a:pull', basic('ci', 'jwt')))).body) as Record<string, unknown>;
    expect(late['token']).toBeDefined();
    expect(late['refresh_token']).toBeUndefined();
  });
});

describe('host-aware rules (issue 11, defect 2)', () => {
  it('refuses a token request that names no host instead of issuing a token bound to none', async () => {
    const tokens = new TokenService({ issuer: 'i', service: 'svc', keys: await KeySet.ephemeral(), accessTokenTtl: 60, refreshTokenTtl: 600, algorithms: ['ES256'], clockTolerance: 0 });
    const rules = new AccessRules([
      { hosts: ['vb.test'], account: ['**'], repository: ['**'], actions: [] },
      { groups: ['dev'], repository: ['team/**'], actions: ['pull'] },
    ]);
    const ep = new TokenEndpoint({ tokens, verifier, rules, basicRealm: 'svc' });
    const req = get('service=svc&scope=repository:team/app:pull', basic('alice', 'pw'));
    for (const host of [undefined, '']) {
      const d = await ep.handle(req, host);
      expect([d.status, d.outcome, JSON.parse(d.body).errors[0].code]).toEqual([400, 'invalid', 'UNSUPPORTED']);
    }
    const bound = await ep.handle(req, 'registry.example.com:5000');
    expect(bound.status).toBe(200);
    expect((await tokens.verifyAccessToken(JSON.parse(bound.body).token)).host).toBe('registry.example.com');
  });
});
