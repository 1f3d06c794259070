/** A real dockerd (and the docker CLI): docker login + docker pull through the proxy. */
import { requireCommands } from './support/proc.js';
import { startDockerd, type TestDockerd } from './support/engines.js';
import { USERS, startWorld, type World } from './support/fixture.js';

jest.setTimeout(180_000);
let w: World;
let d: TestDockerd;
beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'dockerd', 'docker');
  w = await startWorld();
  d = await startDockerd();
});
afterAll(async () => {
  await d?.stop();
  await w?.stop();
});

describe('docker through the proxy', () => {
  it('refuses docker login with a wrong password', async () => {
    const r = await d.docker(['login', w.proxy.host, '-u', 'alice', '--password-stdin'], 'wrong-password\n');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unauthorized|authentication required/i);
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

  it('refuses a repository the rules do not grant', async () => {
    const r = await d.docker(['pull', `${w.proxy.host}/secret/app:v1`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/denied|unauthorized|authentication required/i);
  });
});
