/**
 * The Docker config provider against a real credential-helper executable written by the test
 * (a shell script speaking the helper protocol: server on stdin, JSON on stdout).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialError } from '../credentials.js';
import { CredentialHelperProvider, DockerConfigProvider, normaliseConfigKey } from './docker-config.js';

const dir = mkdtempSync(join(tmpdir(), 'rp-docker-config-'));
const bin = join(dir, 'bin');
const log = join(dir, 'helper.log');
const b64 = (s: string) => Buffer.from(s).toString('base64');

beforeAll(() => {
  mkdirSync(bin);
  // Answers for two servers, "not found" for the rest; records every server it is asked about.
  writeFileSync(
    join(bin, 'docker-credential-test'),
    `#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
echo "$server" >> "${log}"
case "$server" in
  gcr.example.com) printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-secret"}' "$server" ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hub-user","Secret":"hub-pat"}' "$server" ;;
  idtoken.example.com) printf '{"ServerURL":"%s","Username":"<token>","Secret":"refresh"}' "$server" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`,
  );
  writeFileSync(join(bin, 'docker-credential-broken'), '#!/bin/sh\necho "this is not json, and might contain secret-material"\n');
  writeFileSync(join(bin, 'docker-credential-crash'), '#!/bin/sh\necho "secret-material" >&2\nexit 3\n');
  writeFileSync(join(bin, 'docker-credential-slow'), '#!/bin/sh\nsleep 5\n');
  for (const f of ['test', 'broken', 'crash', 'slow']) chmodSync(join(bin, `docker-credential-${f}`), 0o755);
});

function provider(config: unknown, opts: { cacheSeconds?: number; helperTimeoutMs?: number } = {}) {
  const path = join(dir, `config-${Math.random()}.json`);
  writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config));
  return new DockerConfigProvider({ path, env: { PATH: `${bin}:/usr/bin:/bin` }, ...opts });
}
const calls = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
async function failure(p: Promise<unknown>): Promise<CredentialError> {
  try {
    await p;
  } catch (e) {
    return e as CredentialError;
  }
  throw new Error('expected a failure');
}

describe('DockerConfigProvider', () => {
  it('normalises keys the way docker writes them', () => {
    expect(normaliseConfigKey('https://index.docker.io/v1/')).toBe('docker.io');
    expect(normaliseConfigKey('registry-1.docker.io')).toBe('docker.io');
    expect(normaliseConfigKey('https://Quay.io')).toBe('quay.io');
    expect(normaliseConfigKey('localhost:5000')).toBe('localhost:5000');
  });

  it('reads auths entries: auth, username/password, registrytoken; anonymous when absent', async () => {
    const p = provider({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hub:pa:ss') },
        'quay.io': { username: 'q', password: 'qp' },
        'https://ghcr.io': { registrytoken: 'gh-token' },
      },
    });
    expect(await p.credentials({ registry: 'registry-1.docker.io' })).toEqual({ kind: 'basic', username: 'hub', password: 'pa:ss' });
    expect(await p.credentials({ registry: 'quay.io' })).toEqual({ kind: 'basic', username: 'q', password: 'qp' });
    expect(await p.credentials({ registry: 'ghcr.io' })).toEqual({ kind: 'bearer', token: 'gh-token' });
    expect(await p.credentials({ registry: 'other.example.com' })).toEqual({ kind: 'anonymous' });
  });

  it('runs credHelpers before credsStore before auths, with the server docker would name', async () => {
    const p = provider({
      credHelpers: { 'gcr.example.com': 'test' },
      credsStore: 'test',
      auths: { 'fallback.example.com': { auth: b64('file-user:file-pw') }, 'gcr.example.com': { auth: b64('never:used') } },
    });
    const before = calls().length;
    expect(await p.credentials({ registry: 'gcr.example.com' })).toEqual({ kind: 'basic', username: 'helper-user', password: 'helper-secret' });
    expect(await p.credentials({ registry: 'registry-1.docker.io' })).toEqual({ kind: 'basic', username: 'hub-user', password: 'hub-pat' });
    // The store has nothing for this one: the auths entry is used.
    expect(await p.credentials({ registry: 'fallback.example.com' })).toEqual({ kind: 'basic', username: 'file-user', password: 'file-pw' });
    expect(calls().slice(before)).toEqual(['gcr.example.com', 'https://index.docker.io/v1/', 'fallback.example.com']);
  });

  it('keeps answers for cacheSeconds, and asks again after invalidate', async () => {
    const p = provider({ credHelpers: { 'gcr.example.com': 'test' } }, { cacheSeconds: 60 });
    const before = calls().length;
    const a = await p.credentials({ registry: 'gcr.example.com' });
    expect(await p.credentials({ registry: 'gcr.example.com' })).toBe(a);
    expect(calls().length - before).toBe(1);
    p.invalidate({ registry: 'gcr.example.com' });
    await p.credentials({ registry: 'gcr.example.com' });
    expect(calls().length - before).toBe(2);
    const uncached = provider({ credHelpers: { 'gcr.example.com': 'test' } }, { cacheSeconds: 0 });
    await uncached.credentials({ registry: 'gcr.example.com' });
    await uncached.credentials({ registry: 'gcr.example.com' });
    expect(calls().length - before).toBe(4);
  });

  it('fails clearly, never quoting what a helper printed', async () => {
    const cases: Array<[unknown, string, RegExp]> = [
      [{ credHelpers: { 'x.io': 'missing' } }, 'x.io', /docker-credential-missing not found on PATH/],
      [{ credHelpers: { 'x.io': 'broken' } }, 'x.io', /docker-credential-broken get printed something that is not JSON/],
      [{ credHelpers: { 'x.io': 'crash' } }, 'x.io', /docker-credential-crash get failed \(exit code 3\)/],
      [{ credHelpers: { 'x.io': '../evil' } }, 'x.io', /invalid credential helper name/],
      [{ credHelpers: { 'idtoken.example.com': 'test' } }, 'idtoken.example.com', /identity token, which is not supported/],
      [{ auths: { 'x.io': { identitytoken: 'secret-material' } } }, 'x.io', /identity tokens .* are not supported/],
      [{ auths: { 'x.io': { auth: b64('no-colon') } } }, 'x.io', /not base64 of user:password/],
      ['{ not json secret-material', 'x.io', /is not valid JSON/],
    ];
    for (const [config, registry, message] of cases) {
      const e = await failure(provider(config).credentials({ registry }));
      expect(e).toBeInstanceOf(CredentialError);
      expect(e.message).toMatch(message);
      expect(e.message).not.toContain('secret-material');
    }
    const slow = await failure(provider({ credHelpers: { 'x.io': 'slow' } }, { helperTimeoutMs: 200 }).credentials({ registry: 'x.io' }));
    expect(slow.message).toMatch(/docker-credential-slow did not answer in time/);
    const missing = await failure(new DockerConfigProvider({ path: join(dir, 'nope.json') }).credentials({ registry: 'x.io' }));
    expect(missing.message).toMatch(/cannot read .*nope\.json: ENOENT/);
  });

  it('CredentialHelperProvider asks one helper for every registry, cached per host', async () => {
    const p = new CredentialHelperProvider('test', { env: { PATH: `${bin}:/usr/bin:/bin` }, cacheSeconds: 60 });
    const before = calls().length;
    const a = await p.credentials({ registry: 'gcr.example.com' });
    expect(a).toEqual({ kind: 'basic', username: 'helper-user', password: 'helper-secret' });
    expect(await p.credentials({ registry: 'gcr.example.com' })).toBe(a);
    expect(await p.credentials({ registry: 'other.example.com' })).toEqual({ kind: 'anonymous' }); // "credentials not found"
    expect(calls().slice(before)).toEqual(['gcr.example.com', 'other.example.com']);
  });
});
