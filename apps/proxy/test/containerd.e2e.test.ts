/**
 * A real containerd with `ctr images pull/push --user`, over HTTPS: the proxy's test CA is named
 * in a hosts.toml (`ca = ...`) under the certs.d folder that ctr reads with --hosts-dir.
 * containerd asks for tokens with the POST OAuth2 form first (falling back to GET only on
 * 400/401/404/405), so this suite exercises it.
 */
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireCommands, startContainerd, type TestContainerd } from '@registry-proxy/testing';
import { UPSTREAM_USER, USERS, startWorld, type World } from './support/fixture.js';

jest.setTimeout(180_000);
let w: World;
let c: TestContainerd;
beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'containerd', 'ctr', 'openssl');
  w = await startWorld({ tls: true });
  c = await startContainerd();
  c.trust(w.proxy.host, w.ca?.caFile as string);
});
afterAll(async () => {
  await c?.stop();
  await w?.stop();
});

const pull = (ref: string, user: string, ...extra: string[]) => c.ctr(['images', 'pull', '--hosts-dir', c.certsDir, '--user', user, ...extra, `${w.proxy.host}/${ref}`]);

describe('containerd through the proxy', () => {
  it('pulls by tag with the POST token flow', async () => {
    const before = w.proxy.logs.length;
    const r = await pull('team/app:v1', `alice:${USERS.alice}`);
    // ctr may log a harmless "context canceled" from its progress display; the exit code and
    // `images check` below are what count.
    expect([r.code, r.stderr]).toEqual([0, expect.not.stringMatching(/unauthorized|401|403|not found/i)]);
    const list = await c.ctr(['images', 'ls', '-q']);
    expect(list.stdout).toContain(`${w.proxy.host}/team/app:v1`);
    const check = await c.ctr(['images', 'check']);
    expect(check.stdout).toMatch(new RegExp(`${w.proxy.host}/team/app:v1\\s+application/vnd.oci.image.manifest.v1\\+json\\s+${w.images.v1.digest}\\s+complete`));
    const audits = w.proxy.logs
      .slice(before)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['audit'] === 'token');
    expect(audits.some((a) => a['form'] === true && a['outcome'] === 'issued' && a['subject'] === 'alice')).toBe(true);
  });

  it('pulls by digest, and a multi-platform index with all platforms', async () => {
    expect((await pull(`team/app@${w.images.v2.digest}`, `alice:${USERS.alice}`)).code).toBe(0);
    const r = await pull('team/multi:latest', `alice:${USERS.alice}`, '--all-platforms');
    expect([r.code, r.stderr]).toEqual([0, expect.not.stringMatching(/unauthorized|401|403|not found/i)]);
    const check = await c.ctr(['images', 'check']);
    expect(check.stdout).toMatch(new RegExp(`team/multi:latest\\s+application/vnd.oci.image.index.v1\\+json\\s+${w.indexDigest}\\s+complete \\(\\d+/\\d+\\)`));
  });

  it('fails with wrong credentials and on a forbidden repository', async () => {
    const wrong = await pull('team/app:v1', 'alice:wrong-password');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/401|unauthorized/i);
    const forbidden = await pull('secret/app:v1', `alice:${USERS.alice}`);
    expect(forbidden.code).not.toBe(0);
    expect(forbidden.stderr).toMatch(/401|403|unauthorized|denied/i);
  });

  it('pushes with ctr where the rules grant push; refuses where they do not', async () => {
    expect((await pull('team/app:v1', `alice:${USERS.alice}`)).code).toBe(0);
    expect((await c.ctr(['images', 'tag', `${w.proxy.host}/team/app:v1`, `${w.proxy.host}/push/ctr:v1`])).code).toBe(0);
    const r = await c.ctr(['images', 'push', '--hosts-dir', c.certsDir, '--user', `alice:${USERS.alice}`, `${w.proxy.host}/push/ctr:v1`]);
    expect([r.code, r.stderr]).toEqual([0, expect.not.stringMatching(/unauthorized|401|403|denied/i)]);
    const up = await fetch(`${w.registry.url}/v2/push/ctr/manifests/v1`, {
      method: 'HEAD',
      headers: { authorization: `Basic ${Buffer.from(`${UPSTREAM_USER.username}:${UPSTREAM_USER.password}`).toString('base64')}`, accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect([up.status, up.headers.get('docker-content-digest')]).toEqual([200, w.images.v1.digest]);

    expect((await c.ctr(['images', 'tag', `${w.proxy.host}/team/app:v1`, `${w.proxy.host}/team/ctr:v1`])).code).toBe(0);
    const refused = await c.ctr(['images', 'push', '--hosts-dir', c.certsDir, '--user', `bob:${USERS.bob}`, `${w.proxy.host}/team/ctr:v1`]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/insufficient_scope|401|403|unauthorized|denied/i);
  });

  it('pulls as a registry mirror (?ns=): the token is granted on the mirrored registry, and only there (issue 11, defect 6)', async () => {
    // hosts.toml for quay.localtest names the proxy as its mirror; containerd then asks the proxy
    // for /v2/<name>/...?ns=quay.localtest. The challenge's scope names the registry
    // (repository:quay.localtest/team/app:pull), and containerd asks for it alongside its own.
    mkdirSync(join(c.certsDir, 'quay.localtest'), { recursive: true });
    writeFileSync(
      join(c.certsDir, 'quay.localtest', 'hosts.toml'),
      `server = "https://quay.localtest"\n[host."https://${w.proxy.host}"]\n  capabilities = ["pull", "resolve"]\n  ca = "${w.ca?.caFile as string}"\n`,
    );
    const before = w.proxy.logs.length;
    const r = await c.ctr(['images', 'pull', '--hosts-dir', c.certsDir, '--user', `alice:${USERS.alice}`, 'quay.localtest/team/app:v1']);
    expect([r.code, r.stderr]).toEqual([0, expect.not.stringMatching(/unauthorized|401|403|not found/i)]);
    const check = await c.ctr(['images', 'check']);
    expect(check.stdout).toMatch(new RegExp(`quay.localtest/team/app:v1\\s+application/vnd.oci.image.manifest.v1\\+json\\s+${w.images.v1.digest}\\s+complete`));
    const logs = w.proxy.logs.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
    const granted = logs.filter((l) => l['audit'] === 'token' && l['outcome'] === 'issued').flatMap((l) => l['granted'] as string[]);
    expect(granted).toContain('repository:quay.localtest/team/app:pull');
    // Every relayed request (the rest are the 401 challenges) went to the mirror's upstream.
    const relayed = logs.filter((l) => l['msg'] === 'request' && l['repository'] === 'team/app' && l['status'] !== 401);
    expect(relayed.length).toBeGreaterThan(0);
    expect(new Set(relayed.map((l) => l['upstream']))).toEqual(new Set(['mirror']));
    expect(relayed.every((l) => l['status'] === 200)).toBe(true);
  });

  it("pulls through containerd's CRI plugin: PullImage with an AuthConfig, as kubelet sends it", async () => {
    const cri = criImageService(c.sock);
    try {
      const ref = `${w.proxy.host}/team/multi:latest`;
      const pulled = await cri.call('PullImage', { image: { image: ref }, auth: { username: 'alice', password: USERS.alice, server_address: `https://${w.proxy.host}` } });
      expect(pulled.image_ref).toMatch(/^sha256:[0-9a-f]{64}$/);
      const status = await cri.call('ImageStatus', { image: { image: ref } });
      expect(status.image.repo_tags).toContain(ref);
      expect(status.image.repo_digests).toContain(`${w.proxy.host}/team/multi@${w.indexDigest}`);
      // Kubelet's images live in containerd's k8s.io namespace.
      const ls = await c.ctr(['-n', 'k8s.io', 'images', 'ls', '-q']);
      expect(ls.stdout).toContain(ref);

      for (const [what, auth] of [
        ['no credentials', undefined],
        ['a wrong password', { username: 'alice', password: 'wrong-password' }],
      ] as const) {
        const err = await cri.call('PullImage', { image: { image: `${w.proxy.host}/team/app:v2` }, ...(auth ? { auth } : {}) }).then(
          () => undefined,
          (e: Error) => e,
        );
        expect([what, err?.message]).toEqual([what, expect.stringMatching(/401|unauthorized/i)]);
      }
      const forbidden = await cri.call('PullImage', { image: { image: `${w.proxy.host}/secret/app:v1` }, auth: { username: 'alice', password: USERS.alice } }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(forbidden?.message).toMatch(/401|403|unauthorized|denied|insufficient_scope/i);
    } finally {
      cri.close();
    }
  });
});

/**
 * A CRI ImageService client for containerd's socket, from the project's runtime.v1 proto
 * (libs/cri-image-service), loaded at run time: a request with the wrong field numbers would
 * not pull.
 */
function criImageService(sock: string) {
  const def = loadSync(join(__dirname, '../../../libs/cri-image-service/proto/runtime/v1/api.proto'), { keepCase: true, longs: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { ImageService: grpc.ServiceClientConstructor } } };
  const client = new pkg.runtime.v1.ImageService(`unix://${sock}`, grpc.credentials.createInsecure());
  return {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    call(method: string, req: object): Promise<any> {
      return new Promise((resolve, reject) => {
        (client[method] as (r: object, cb: (e: Error | null, v: unknown) => void) => void).call(client, req, (e, v) => (e ? reject(e) : resolve(v)));
      });
    },
    close: () => client.close(),
  };
}
