/**
 * A real dockerd (and the docker CLI): docker login, pull and push through the proxy over HTTPS.
 * The proxy's certificate comes from a test CA that docker trusts through
 * /etc/docker/certs.d/<host:port>/ca.crt, the way users set it up; the proxy has no plain-HTTP
 * listener here, so every step below went over TLS.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { requireCommands, startDockerd, type TestDockerd } from '@registry-proxy/testing';
import { UPSTREAM_USER, USERS, startWorld, type World } from './support/fixture.js';

jest.setTimeout(180_000);
let w: World;
let d: TestDockerd;
let certsDir: string;
beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'dockerd', 'docker', 'openssl');
  w = await startWorld({ tls: true });
  certsDir = `/etc/docker/certs.d/${w.proxy.host}`;
  mkdirSync(certsDir, { recursive: true });
  writeFileSync(`${certsDir}/ca.crt`, w.ca?.caPem as string);
  d = await startDockerd();
});
afterAll(async () => {
  await d?.stop();
  await w?.stop();
  if (certsDir) rmSync(certsDir, { recursive: true, force: true });
});

const upstreamAuth = { authorization: `Basic ${Buffer.from(`${UPSTREAM_USER.username}:${UPSTREAM_USER.password}`).toString('base64')}` };

describe('docker through the proxy, over HTTPS', () => {
  it('serves HTTPS only', () => {
    expect(w.proxy.url.startsWith('https://')).toBe(true);
  });

  it('refuses docker login with a wrong password, and pulls without login', async () => {
    const r = await d.docker(['login', w.proxy.host, '-u', 'alice', '--password-stdin'], 'wrong-password\n');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unauthorized|authentication required/i);
    const anon = await d.docker(['pull', `${w.proxy.host}/team/app:v1`]);
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toMatch(/unauthorized|authentication required|no basic auth credentials/i);
  });

  it('logs in and pulls by tag, by digest and from a multi-platform index', async () => {
    const login = await d.docker(['login', w.proxy.host, '-u', 'alice', '--password-stdin'], `${USERS.alice}\n`);
    expect([login.code, login.stdout]).toEqual([0, expect.stringContaining('Login Succeeded')]);

    const byTag = await d.docker(['pull', `${w.proxy.host}/team/app:v1`]);
    expect([byTag.code, byTag.stderr]).toEqual([0, '']);
    expect(byTag.stdout).toContain(`Digest: ${w.images.v1.digest}`);
    const inspect = await d.docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', `${w.proxy.host}/team/app:v1`]);
    expect(JSON.parse(inspect.stdout)).toContain(`${w.proxy.host}/team/app@${w.images.v1.digest}`);

    const byDigest = await d.docker(['pull', `${w.proxy.host}/team/app@${w.images.v2.digest}`]);
    expect(byDigest.code).toBe(0);

    const multi = await d.docker(['pull', `${w.proxy.host}/team/multi:latest`]);
    expect(multi.code).toBe(0);
    expect(multi.stdout).toContain(`Digest: ${w.indexDigest}`);
    const arch = await d.docker(['image', 'inspect', '--format', '{{.Architecture}}', `${w.proxy.host}/team/multi:latest`]);
    expect(arch.stdout.trim()).toBe('amd64');
  });

  it('pushes where the rules grant push, and the image lands upstream under the mapped name', async () => {
    expect((await d.docker(['tag', `${w.proxy.host}/team/app:v1`, `${w.proxy.host}/mirror/push/docker:v1`])).code).toBe(0);
    const r = await d.docker(['push', `${w.proxy.host}/mirror/push/docker:v1`]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(r.stdout)?.[1];
    expect(digest).toBeDefined();
    // mirror/... is team/... upstream.
    const up = await fetch(`${w.registry.url}/v2/team/push/docker/manifests/v1`, {
      method: 'HEAD',
      headers: { ...upstreamAuth, accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
    });
    expect([up.status, up.headers.get('docker-content-digest')]).toEqual([200, digest]);
  });

  it('refuses a push and a pull the rules do not grant', async () => {
    expect((await d.docker(['tag', `${w.proxy.host}/team/app:v1`, `${w.proxy.host}/team/pushed:v1`])).code).toBe(0);
    const push = await d.docker(['push', `${w.proxy.host}/team/pushed:v1`]);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/denied|unauthorized|authentication required/i);
    const r = await d.docker(['pull', `${w.proxy.host}/secret/app:v1`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/denied|unauthorized|authentication required/i);
  });
});
