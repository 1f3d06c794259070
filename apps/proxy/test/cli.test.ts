/** The built command line (`node apps/proxy/dist/main.js`), as README.md tells users to run it. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, waitFor } from '@registry-proxy/testing';

jest.setTimeout(30_000);
const MAIN = join(__dirname, '../dist/main.js');
const cli = (...args: string[]) => run(process.execPath, [MAIN, ...args], { env: { ...process.env, REGISTRY_PROXY_CONFIG: '' } });

beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error('apps/proxy is not built: run `npm run build` (npm test does it first)');
});

describe('registry-proxy CLI', () => {
  it('prints help', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    for (const flag of ['--config', '--check-config', '--print-default-config']) expect(r.stdout).toContain(flag);
  });

  it('checks a good configuration, and refuses bad ones naming the key, with exit code 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-cli-'));
    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'upstreams:\n  - name: up\n    url: http://127.0.0.1:1\n');
    const ok = await cli('--check-config', '--config', good);
    expect([ok.code, ok.stdout]).toEqual([0, `configuration OK (${good})\n`]);

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'listen:\n  port: -1\nupstreams:\n  - name: up\n    url: http://127.0.0.1:1\n    credentials: {type: static, username: u, password: {env: RP_NOT_SET}}\n');
    const r1 = await cli('--check-config', '--config', bad);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toContain(`${bad}: listen.port:`);

    const badSecret = join(dir, 'secret.yaml');
    writeFileSync(badSecret, 'upstreams:\n  - name: up\n    url: http://127.0.0.1:1\n    credentials: {type: static, username: u, password: {env: RP_NOT_SET}}\n');
    const r2 = await cli('--check-config', '--config', badSecret);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('RP_ERR_CONFIG_READ: upstreams.0.credentials.password: environment variable RP_NOT_SET is not set');

    // Only bcrypt: an htpasswd file with MD5 (apr1) hashes is refused at start-up.
    const md5 = join(dir, 'md5.htpasswd');
    writeFileSync(md5, (await run('htpasswd', ['-nbm', 'carol', 'pw'])).stdout);
    const withMd5 = join(dir, 'md5.yaml');
    writeFileSync(withMd5, `auth:\n  - type: static\n    htpasswd: ${md5}\nupstreams:\n  - name: up\n    url: http://127.0.0.1:1\n`);
    const r4 = await cli('--check-config', '--config', withMd5);
    expect(r4.code).toBe(2);
    expect(r4.stderr).toContain(`RP_ERR_HTPASSWD_INVALID: ${md5} line 1 (user "carol"): only bcrypt hashes are accepted`);
    expect(r4.stderr).not.toContain('$apr1$');

    // The in-memory key signs ES256; a configuration that accepts only RS256 could never verify.
    const algs = join(dir, 'algs.yaml');
    writeFileSync(algs, 'tokens:\n  algorithms: [RS256]\nupstreams:\n  - name: up\n    url: http://127.0.0.1:1\n');
    const r5 = await cli('--check-config', '--config', algs);
    expect(r5.code).toBe(2);
    expect(r5.stderr).toContain("RP_ERR_CONFIG_INVALID: tokens.algorithms: does not include ES256, the signing key's algorithm");

    const r3 = await cli('--config', join(dir, 'missing.yaml'));
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/RP_ERR_CONFIG_READ: cannot read configuration file .*missing.yaml: ENOENT/);
  });

  it('refuses --revoke-subject without state.redis (in-memory records are out of its reach), and says why when Redis cannot be reached', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-cli-'));
    const memory = join(dir, 'memory.yaml');
    writeFileSync(memory, 'upstreams:\n  - name: up\n    url: http://127.0.0.1:1\n');
    const r = await cli('--config', memory, '--revoke-subject', 'alice');
    expect([r.code, r.stderr]).toEqual([2, '--revoke-subject needs state.redis: with in-memory state each replica keeps its own records, out of reach of this command\n']);
    const gone = join(dir, 'gone.yaml');
    writeFileSync(gone, `state: {redis: {url: "unix://${join(dir, 'no.sock')}", connectTimeoutMs: 200}}\nupstreams:\n  - name: up\n    url: http://127.0.0.1:1\n`);
    const r2 = await cli('--config', gone, '--revoke-subject', 'alice');
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('RP_ERR_STATE_UNAVAILABLE: redis put:');
  });

  it('prints the embedded default, which checks clean', async () => {
    const r = await cli('--print-default-config');
    expect(r.stdout).toContain('url: https://registry-1.docker.io');
    expect((await cli('--check-config')).code).toBe(0);
  });

  it('starts on the embedded default (127.0.0.1:5000, demo/demo) and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [MAIN], { env: { ...process.env, REGISTRY_PROXY_CONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor('proxy to listen', async () => out.includes('registry-proxy listening'), 10_000);
      expect(out).toContain('using the embedded default');
      expect(out).toContain('in-memory key');
      // Started bare, without the image's environment: the allocator hint is logged.
      if (process.env['MALLOC_TRIM_THRESHOLD_'] === undefined) expect(out).toContain('MALLOC_TRIM_THRESHOLD_ is not set');
      const challenge = await fetch('http://127.0.0.1:5000/v2/');
      expect(challenge.headers.get('www-authenticate')).toBe('Bearer realm="http://127.0.0.1:5000/token",service="registry-proxy"');
      const t = await fetch('http://127.0.0.1:5000/token?service=registry-proxy&scope=repository:library/alpine:pull', {
        headers: { authorization: `Basic ${Buffer.from('demo:demo').toString('base64')}` },
      });
      expect(t.status).toBe(200);
      expect(((await t.json()) as { token: string }).token).toMatch(/^eyJ/);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(out).toContain('shutting down');
  });

  it('runs with the same allocator setting from the image and from `npm start` (docs/benchmarks.md)', () => {
    const root = join(__dirname, '../../..');
    const image = /^ENV .*\bMALLOC_TRIM_THRESHOLD_=(\d+)/m.exec(readFileSync(join(root, 'apps/proxy/Dockerfile'), 'utf8'))?.[1];
    const start = /\bMALLOC_TRIM_THRESHOLD_=(\d+) node apps\/proxy\/dist\/main\.js/.exec(
      (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['start'] ?? '',
    )?.[1];
    expect(image).toBe('67108864');
    expect(start).toBe(image);
  });
});
