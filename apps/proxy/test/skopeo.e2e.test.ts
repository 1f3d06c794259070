/** skopeo (containers/image, as podman uses it) pulling through the proxy from a real docker-registry. */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireCommands, run } from '@registry-proxy/testing';
import { UPSTREAM_USER, USERS, startWorld, type World } from './support/fixture.js';

jest.setTimeout(120_000);
let w: World;
beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'skopeo');
  w = await startWorld();
});
afterAll(async () => {
  await w?.stop();
});

const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args]);
const creds = (u: keyof typeof USERS) => `--creds=${u}:${USERS[u]}`;
/** `copy` names the credentials per side. */
const srcCreds = (u: keyof typeof USERS) => `--src-creds=${u}:${USERS[u]}`;
const ref = (name: string) => `docker://${w.proxy.host}/${name}`;

/** skopeo's dir: transport stores each blob under its hex digest. */
function blobsIn(dir: string): Set<string> {
  return new Set(
    readdirSync(dir)
      .filter((f) => /^[a-f0-9]{64}$/.test(f))
      .map((f) => `sha256:${f}`),
  );
}

describe('skopeo through the proxy', () => {
  it('inspects with good credentials', async () => {
    const r = await skopeo('inspect', '--tls-verify=false', creds('alice'), ref('team/app:v1'));
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).Digest).toBe(w.images.v1.digest);
  });

  it('copies by tag and by digest with every blob intact', async () => {
    for (const source of ['team/app:v1', `team/app@${w.images.v1.digest}`]) {
      const dir = mkdtempSync(join(tmpdir(), 'rp-skopeo-'));
      const r = await skopeo('copy', '--src-tls-verify=false', srcCreds('alice'), ref(source), `dir:${dir}`);
      expect([source, r.code, r.stderr]).toEqual([source, 0, '']);
      expect(readFileSync(join(dir, 'manifest.json')).equals(w.images.v1.manifest)).toBe(true);
      expect(blobsIn(dir)).toEqual(new Set(w.images.v1.blobs.map((b) => b.digest)));
      for (const b of w.images.v1.blobs) expect(readFileSync(join(dir, b.digest.slice(7))).equals(b.data)).toBe(true);
    }
  });

  it('copies a multi-platform index with all its images', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-skopeo-'));
    const r = await skopeo('copy', '--all', '--src-tls-verify=false', srcCreds('alice'), ref('team/multi:latest'), `dir:${dir}`);
    expect(r.code).toBe(0);
    const all = [...w.images.amd64.blobs, ...w.images.arm64.blobs].map((b) => b.digest);
    expect(blobsIn(dir)).toEqual(new Set(all));
    // Each platform's manifest is kept as <hex>.manifest.json, byte for byte.
    for (const i of [w.images.amd64, w.images.arm64]) expect(readFileSync(join(dir, `${i.digest.slice(7)}.manifest.json`)).equals(i.manifest)).toBe(true);
  });

  it('copies through a prefix mapped to an upstream namespace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-skopeo-'));
    const r = await skopeo('copy', '--src-tls-verify=false', srcCreds('alice'), ref('mirror/app:v2'), `dir:${dir}`);
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, 'manifest.json')).equals(w.images.v2.manifest)).toBe(true);
  });

  it('lists tags', async () => {
    const r = await skopeo('list-tags', '--tls-verify=false', creds('alice'), ref('team/app'));
    expect(JSON.parse(r.stdout)).toEqual({ Repository: `${w.proxy.host}/team/app`, Tags: ['v1', 'v2', 'v3'] });
  });

  it('fails without credentials, with wrong ones, and on a forbidden repository', async () => {
    const none = await skopeo('inspect', '--tls-verify=false', '--no-creds', ref('team/app:v1'));
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/authentication required|unauthorized/i);
    const wrong = await skopeo('inspect', '--tls-verify=false', '--creds=alice:wrong-password', ref('team/app:v1'));
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/authentication required|unauthorized/i);
    const forbidden = await skopeo('inspect', '--tls-verify=false', creds('alice'), ref('secret/app:v1'));
    expect(forbidden.code).not.toBe(0);
    expect(forbidden.stderr).toMatch(/unauthorized|denied|authentication required/i);
    // bob may pull team/app only.
    expect((await skopeo('inspect', '--tls-verify=false', creds('bob'), ref('team/app:v1'))).code).toBe(0);
    expect((await skopeo('inspect', '--tls-verify=false', creds('bob'), ref('team/multi:latest'))).code).not.toBe(0);
  });

  it('copies into the proxy (push): one image and a multi-platform index, landing upstream byte for byte', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-skopeo-'));
    expect((await skopeo('copy', '--all', '--src-tls-verify=false', srcCreds('alice'), ref('team/multi:latest'), `dir:${dir}`)).code).toBe(0);
    const r = await skopeo('copy', '--all', '--dest-tls-verify=false', `--dest-creds=alice:${USERS.alice}`, `dir:${dir}`, ref('push/skopeo/multi:copied'));
    expect([r.code, r.stderr]).toEqual([0, '']);
    const up = await fetch(`${w.registry.url}/v2/push/skopeo/multi/manifests/copied`, {
      headers: { authorization: `Basic ${Buffer.from(`${UPSTREAM_USER.username}:${UPSTREAM_USER.password}`).toString('base64')}`, accept: 'application/vnd.oci.image.index.v1+json' },
    });
    expect([up.status, up.headers.get('docker-content-digest')]).toEqual([200, w.indexDigest]);
    // And back out through the proxy.
    const back = await skopeo('inspect', '--raw', '--tls-verify=false', creds('alice'), ref(`push/skopeo/multi@${w.indexDigest}`));
    expect(back.code).toBe(0);

    const forbidden = await skopeo('copy', '--dest-tls-verify=false', `--dest-creds=bob:${USERS.bob}`, `dir:${dir}`, ref('push/skopeo/bob-may-not'));
    expect(forbidden.code).not.toBe(0);
    expect(forbidden.stderr).toMatch(/unauthorized|denied|authentication required/i);
  });
});
