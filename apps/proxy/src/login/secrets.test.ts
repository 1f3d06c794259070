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
    expect(await secrets.verify('alice', `${secret.slice(0, -1)}A`)).toMatchObject({ result: 'deny' });
    expect(await secrets.verify('alice', 'rpcli_short')).toMatchObject({ result: 'deny', reason: 'malformed CLI secret' });
    expect(await secrets.verify('alice', 'an-ordinary-password')).toEqual({ result: 'skip' });
  });

  it('expires, and refresh tokens issued with it do not outlive it', async () => {
    const { secrets, t } = make(async (r) => ({ identity: r.identity }));
    const { secret, record } = await secrets.create(alice);
    const ok = await secrets.verify('alice', secret);
    expect(ok.result === 'allow' && ok.identity.expiresAt).toBe(Math.floor(record.expiresAt / 1000));
    t.now += 3600 * 1000;
    expect(await secrets.verify('alice', secret)).toMatchObject({ result: 'deny' });
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
