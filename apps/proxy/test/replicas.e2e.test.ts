/**
 * Two proxy processes (the built CLI, as a Deployment runs it) sharing one signing key and one
 * real redis-server act as one: a token from one works on the other, a rate limit holds across
 * both, an AWS identity document replayed to the other replica is refused, and a refresh token
 * revoked with `--revoke-subject` is refused by both. Then Redis freezes (SIGSTOP): the checks
 * that must fail closed answer 503 within the command timeout, the rest keeps working.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeAwsIidCredential } from '@registry-proxy/auth-iid';
import {
  Pusher,
  awsDocument,
  createIidSigner,
  freePort,
  requireCommands,
  run,
  sampleImage,
  startDaemon,
  startRedis,
  startRegistry,
  waitFor,
  type Daemon,
  type TestRedis,
  type TestRegistry,
} from '@registry-proxy/testing';
import { stringify } from 'yaml';

jest.setTimeout(120_000);
const MAIN = join(__dirname, '../dist/main.js');
const signer = createIidSigner('eu-west-1');
const dir = mkdtempSync(join(tmpdir(), 'rp-replicas-'));
const config = join(dir, 'proxy.yaml');
let redis: TestRedis;
let reg: TestRegistry;
const replicas: Array<{ url: string; daemon: Daemon }> = [];

const pair = () => {
  const [a, b] = replicas;
  if (!a || !b) throw new Error('replicas did not start');
  return [a, b] as const;
};
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const token = (url: string, user: string, pw: string, scope = 'repository:team/app:pull') =>
  fetch(`${url}/token?service=registry-proxy&scope=${scope}`, { headers: { authorization: basic(user, pw) } });
const form = (url: string, body: Record<string, string>) =>
  fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ service: 'registry-proxy', client_id: 'test', scope: 'repository:team/app:pull', ...body }),
  });

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error('apps/proxy is not built: run `npm run build` (npm test does it first)');
  await requireCommands('redis-server', 'docker-registry', 'htpasswd');
  redis = await startRedis();
  reg = await startRegistry({ up: 'up-pw' });
  await new Pusher(reg.url, 'up', 'up-pw').image('team/app', 'v1', sampleImage('amd64'));
  const key = join(dir, 'signing.pem');
  writeFileSync(key, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(
    htpasswd,
    ['alice', 'mallory']
      .map((u) =>
        execFileSync('htpasswd', ['-nbB', u, `${u}-pw`])
          .toString()
          .trim(),
      )
      .join('\n') + '\n',
  );
  const redisUrl = join(dir, 'redis-url');
  writeFileSync(redisUrl, `${redis.url}\n`); // as a mounted Secret would hold it
  const cfg = (port: number) =>
    stringify({
      listen: { host: '127.0.0.1', port },
      tokens: { signingKey: { file: key } },
      state: { redis: { url: { file: redisUrl }, commandTimeoutMs: 300 } },
      auth: [
        { type: 'static', htpasswd },
        { type: 'iid', aws: { certificates: [signer.certPem], accounts: ['123456789012'] } },
      ],
      rules: [
        { account: ['alice', 'mallory'], repository: 'team/**', actions: ['pull'] },
        { labels: { 'aws.accountId': '123456789012' }, repository: 'team/**', actions: ['pull'] },
      ],
      rateLimits: { perClient: { burst: 1000, perSecond: 100 }, perAccount: { burst: 1000, perSecond: 100 }, failures: { points: 4, durationSeconds: 400 } },
      upstreams: [{ name: 'local', url: reg.url, credentials: { type: 'static', username: 'up', password: 'up-pw' } }],
      log: { level: 'info' },
    });
  for (const i of [0, 1]) {
    const port = await freePort();
    const file = `${config}.${i}`;
    writeFileSync(file, cfg(port));
    const daemon = startDaemon(process.execPath, [MAIN, '--config', file], join(dir, `proxy${i}.log`));
    const url = `http://127.0.0.1:${port}`;
    replicas.push({ url, daemon });
    await waitFor(`replica ${i}`, async () => (await fetch(`${url}/v2/`)).status === 401);
  }
  writeFileSync(config, cfg(0));
});
afterAll(async () => {
  for (const r of replicas) await r.daemon.stop();
  await reg?.stop();
  await redis?.destroy();
});

describe('two replicas, one redis', () => {
  it('a token from one works on the other (one signing key)', async () => {
    const [a, b] = pair();
    const t = (await (await token(a.url, 'alice', 'alice-pw')).json()) as { token: string };
    const m = await fetch(`${b.url}/v2/team/app/manifests/v1`, { headers: { authorization: `Bearer ${t.token}`, accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(m.status).toBe(200);
    expect(m.headers.get('docker-content-digest')).toMatch(/^sha256:/);
  });

  it('a rate limit holds across both: an account gets 4 failed passwords from one address in all, whichever replica answers', async () => {
    const [a, b] = pair();
    const statuses: number[] = [];
    for (const url of [a.url, b.url, a.url, b.url, a.url, b.url]) statuses.push((await token(url, 'mallory', 'wrong')).status);
    // Each replica alone would have allowed 4, i.e. all six.
    expect(statuses).toEqual([401, 401, 401, 401, 429, 429]);
  });

  it('an AWS identity document replayed to the other replica is refused', async () => {
    const [a, b] = pair();
    const doc = awsDocument();
    const pkcs7 = signer.sign(doc);
    expect((await token(a.url, 'aws-iid', encodeAwsIidCredential({ document: doc, pkcs7, nonce: 'node-nonce-0123456789' }))).status).toBe(200);
    const replay = await token(b.url, 'aws-iid', encodeAwsIidCredential({ document: doc, pkcs7, nonce: 'attacker-nonce-abcdef' }));
    expect(replay.status).toBe(401);
    expect((await token(b.url, 'aws-iid', encodeAwsIidCredential({ document: doc, pkcs7, nonce: 'node-nonce-0123456789' }))).status).toBe(200);
  });

  it('a refresh token revoked with --revoke-subject is refused by both; a new sign-in works again', async () => {
    const [a, b] = pair();
    const issued = (await (await form(a.url, { grant_type: 'password', username: 'alice', password: 'alice-pw', access_type: 'offline' })).json()) as { refresh_token: string };
    expect(typeof issued.refresh_token).toBe('string');
    expect((await form(b.url, { grant_type: 'refresh_token', refresh_token: issued.refresh_token })).status).toBe(200);

    const r = await run(process.execPath, [MAIN, '--config', config, '--revoke-subject', 'alice']);
    expect([r.code, r.stdout]).toEqual([0, 'refresh tokens of "alice" issued until now are refused\n']);
    for (const url of [a.url, b.url]) {
      const refused = await form(url, { grant_type: 'refresh_token', refresh_token: issued.refresh_token });
      expect(refused.status).toBe(401);
    }
    await new Promise((res) => setTimeout(res, 1100)); // revocation has one-second resolution (iat)
    const again = (await (await form(b.url, { grant_type: 'password', username: 'alice', password: 'alice-pw', access_type: 'offline' })).json()) as { refresh_token: string };
    expect((await form(a.url, { grant_type: 'refresh_token', refresh_token: again.refresh_token })).status).toBe(200);
  });

  it('redis frozen (SIGSTOP): replay and revocation checks answer 503 within the timeout, password sign-ins and rate limits go on', async () => {
    const [a, b] = pair();
    const issued = (await (await form(a.url, { grant_type: 'password', username: 'alice', password: 'alice-pw', access_type: 'offline' })).json()) as { refresh_token: string };
    const doc = awsDocument();
    redis.freeze();
    try {
      const t0 = performance.now();
      const iid = await token(a.url, 'aws-iid', encodeAwsIidCredential({ document: doc, pkcs7: signer.sign(doc), nonce: 'node-nonce-0123456789' }));
      expect(iid.status).toBe(503);
      expect(((await iid.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('UNAVAILABLE');
      const refresh = await form(b.url, { grant_type: 'refresh_token', refresh_token: issued.refresh_token });
      expect(refresh.status).toBe(503);
      expect((await token(b.url, 'alice', 'alice-pw')).status).toBe(200);
      // Each request waited at most a few command timeouts (300 ms), never for Redis to come back.
      expect(performance.now() - t0).toBeLessThan(5000);
    } finally {
      redis.thaw();
    }
    await waitFor('refresh after thaw', async () => (await form(b.url, { grant_type: 'refresh_token', refresh_token: issued.refresh_token })).status === 200);
  });

  it('redis stopped: the same checks refuse at once; back up, they pass again', async () => {
    const [a] = pair();
    await redis.stop();
    try {
      const doc = awsDocument();
      const t0 = performance.now();
      expect((await token(a.url, 'aws-iid', encodeAwsIidCredential({ document: doc, pkcs7: signer.sign(doc), nonce: 'node-nonce-0123456789' }))).status).toBe(503);
      expect((await token(a.url, 'alice', 'alice-pw')).status).toBe(200);
      expect(performance.now() - t0).toBeLessThan(2000);
    } finally {
      await redis.start();
    }
    const doc = awsDocument();
    const cred = encodeAwsIidCredential({ document: doc, pkcs7: signer.sign(doc), nonce: 'node-nonce-0123456789' });
    await waitFor('iid after restart', async () => (await token(a.url, 'aws-iid', cred)).status === 200);
  });
});
