import { KeySet, TokenService } from '@registry-proxy/registry-core';
import { CliSecrets, MemoryCliSecretStore, type Revalidate } from './secrets.js';

const alice = { subject: 'alice', method: 'oidc-login', groups: ['devs'], labels: {} };

function make(revalidate: Revalidate = async () => undefined, t = { now: 1_000_000 }) {
  const store = new MemoryCliSecretStore(() => t.now);
  const secrets = new CliSecrets({ store, ttlSeconds: 3600, revalidateAfterSeconds: 600, maxPerSubject: 3, revalidate, now: () => t.now });
  return { store, secrets, t };
}

describe('CLI secrets', () => {
  it('stores only a hash and accepts the secret for its owner only', async () => {
    const { store, secrets } = make();
    const { secret, record } = await secrets.create(alice, 'idp-refresh');
    expect(JSON.stringify(await store.list())).not.toContain(secret);
    expect(record.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await secrets.verify('alice', secret)).toMatchObject({ result: 'allow', identity: { subject: 'alice', method: 'cli-secret', groups: ['devs'] } });
    expect(await secrets.verify('bob', secret)).toMatchObject({ result: 'deny' });
    // Regression (flaky test): the last base64url character of 32 bytes is one of 16, so a fixed
    // replacement equalled the original one run in 16; change it to one that surely differs.
    expect(await secrets.verify('alice', `${secret.slice(0, -1)}${secret.endsWith('A') ? 'E' : 'A'}`)).toMatchObject({ result: 'deny' });
    expect(await secrets.verify('alice', 'rpcli_short')).toMatchObject({ result: 'deny', reason: 'malformed CLI secret' });
    expect(await secrets.verify('alice', 'an-ordinary-password')).toEqual({ result: 'skip' });
  });

  it('expires', async () => {
    const { secrets, t } = make(async (r) => ({ identity: r.identity }));
    const { secret } = await secrets.create(alice);
    const ok = await secrets.verify('alice', secret);
    expect(ok.result).toBe('allow');
    t.now += 3600 * 1000;
    expect(await secrets.verify('alice', secret)).toMatchObject({ result: 'deny' });
  });

  it('regression: a docker login with a CLI secret gets no refresh token, so revocation and revalidation reach every use', async () => {
    const { secrets, t } = make();
    t.now = Date.now();
    const { secret } = await secrets.create(alice);
    const ok = await secrets.verify('alice', secret);
    if (ok.result !== 'allow') throw new Error('expected allow');
    const tokens = new TokenService({ issuer: 'iss', service: 'svc', keys: await KeySet.ephemeral(), accessTokenTtl: 300, refreshTokenTtl: 7 * 86_400, algorithms: ['ES256'], clockTolerance: 0 });
    // docker stores a refresh token instead of the password; the proxy's refresh tokens are
    // stateless, so one would keep working after the secret is revoked or the person is gone.
    expect(await tokens.issueRefreshToken(ok.identity, new Date(t.now))).toBeUndefined();
  });

  it('revocation by the owner, not by another user; operators may revoke anyone', async () => {
    const { secrets } = make();
    const a = await secrets.create(alice);
    expect(await secrets.revoke(a.record.id, 'mallory')).toBe(false);
    expect(await secrets.verify('alice', a.secret)).toMatchObject({ result: 'allow' });
    expect(await secrets.revoke(a.record.id, 'alice')).toBe(true);
    expect(await secrets.verify('alice', a.secret)).toMatchObject({ result: 'deny' });
    const b = await secrets.create(alice);
    expect(await secrets.revoke(b.record.id, 'root', true)).toBe(true);
    expect(await secrets.verify('alice', b.secret)).toMatchObject({ result: 'deny' });
  });

  it('re-checks the person after revalidateAfter: new groups count, a person gone loses the secret', async () => {
    let answer: Awaited<ReturnType<Revalidate>> = { identity: { ...alice, groups: ['devs', 'ops'] }, upstreamRefreshToken: 'rotated' };
    const calls: Array<string | undefined> = [];
    const { secrets, t, store } = make(async (r) => {
      calls.push(r.upstreamRefreshToken);
      return answer;
    });
    const { secret } = await secrets.create(alice, 'first');
    await secrets.verify('alice', secret);
    expect(calls).toEqual([]); // fresh: no call
    t.now += 601 * 1000;
    expect(await secrets.verify('alice', secret)).toMatchObject({ result: 'allow', identity: { groups: ['devs', 'ops'] } });
    expect(calls).toEqual(['first']);
    expect((await store.list('alice'))[0]?.upstreamRefreshToken).toBe('rotated');
    t.now += 601 * 1000;
    answer = undefined;
    expect(await secrets.verify('alice', secret)).toMatchObject({ result: 'deny' });
    expect(await store.list('alice')).toEqual([]);
  });

  it('regression: concurrent uses due for revalidation ask the provider once (a rotated refresh token is spent once)', async () => {
    // A provider that rotates refresh tokens: each one works once, a reused one is refused.
    let current = 'rt-0';
    let n = 0;
    const { secrets, t } = make(async (r) => {
      await new Promise((res) => setTimeout(res, 10));
      if (r.upstreamRefreshToken !== current) return undefined;
      current = `rt-${++n}`;
      return { identity: r.identity, upstreamRefreshToken: current };
    });
    const { secret } = await secrets.create(alice, 'rt-0');
    t.now += 601 * 1000;
    const outcomes = await Promise.all([1, 2, 3].map(() => secrets.verify('alice', secret)));
    expect(outcomes.map((o) => o.result)).toEqual(['allow', 'allow', 'allow']);
    expect(n).toBe(1);
    expect(await secrets.verify('alice', secret)).toMatchObject({ result: 'allow' });
  });

  it('regression: a secret revoked while it is being revalidated stays revoked', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { secrets, t, store } = make(async (r) => {
      await gate;
      return { identity: r.identity, upstreamRefreshToken: 'rotated' };
    });
    const { secret, record } = await secrets.create(alice, 'first');
    t.now += 601 * 1000;
    const pending = secrets.verify('alice', secret);
    await new Promise((r) => setTimeout(r, 5));
    expect(await secrets.revoke(record.id, 'alice')).toBe(true);
    release();
    expect(await pending).toMatchObject({ result: 'deny' });
    expect(await store.list('alice')).toEqual([]);
    expect(await secrets.verify('alice', secret)).toMatchObject({ result: 'deny' });
  });

  it('keeps at most maxPerSubject secrets per person: the oldest go', async () => {
    const { secrets, t } = make();
    const made = [];
    for (let i = 0; i < 5; i++) {
      t.now += 1;
      made.push(await secrets.create(alice));
    }
    expect((await secrets.list('alice')).map((r) => r.id)).toEqual(made.slice(2).map((m) => m.record.id));
    expect(await secrets.verify('alice', made[0]?.secret ?? '')).toMatchObject({ result: 'deny' });
  });
});
