import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { UpstreamClient } from '@registry-proxy/registry-core';
import { requireCommands, startRegistry, type TestRegistry } from '@registry-proxy/testing';
import { runCacheCli } from './cli.js';
import { FilesystemStore } from './filesystem-store.js';
import { objectRecordManifest } from './registry-records.js';
import { RegistryStore } from './registry-store.js';
import { storeClient } from '../../test/support/registry-store-proxy.js';

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let dir: string;
let config: string;
let store: FilesystemStore;
const file = (d: string) => join(dir, 'store', 'blobs', 'sha256', d.slice(7, 9), d.slice(7));

async function put(data: Buffer, repos: string[]): Promise<string> {
  const d = digestOf(data);
  const w = await store.create(d, data.length);
  await w.write(data);
  await w.commit();
  for (const r of repos) await store.addLink('hub', r, 'blob', d);
  return d;
}

async function cli(...args: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await runCacheCli([...args, '--config', config], (l) => lines.push(l));
  return { code, lines };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rp-cache-cli-'));
  config = join(dir, 'proxy.yaml');
  writeFileSync(config, `upstreams:\n  - name: hub\n    url: http://127.0.0.1:5000\n    cache: {store: {type: filesystem, path: ${join(dir, 'store')}}, maxBytes: 1GiB}\n`);
  store = await FilesystemStore.open(join(dir, 'store'), 1 << 30);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('registry-proxy cache', () => {
  it('lists objects with their size and repositories, filtered by repository', async () => {
    const a = await put(randomBytes(10), ['team/a']);
    const shared = await put(randomBytes(20), ['team/a', 'team/b']);
    const all = await cli('list');
    expect(all.code).toBe(0);
    expect(all.lines).toContain(`# ${join(dir, 'store')}: 2 objects, 30 bytes`);
    expect(all.lines.find((l) => l.startsWith(shared))).toMatch(/\t20\t.*\thub\/team\/a,hub\/team\/b$/);
    const b = await cli('list', '--repository', 'team/b');
    expect(b.lines.filter((l) => !l.startsWith('#'))).toHaveLength(1);
    expect(b.lines[0]?.startsWith(shared)).toBe(true);
    expect(b.lines.some((l) => l.startsWith(a))).toBe(false);
  });

  it('verify removes corrupt objects and exits 1', async () => {
    const good = await put(randomBytes(10), ['team/a']);
    const bad = await put(randomBytes(10), ['team/a']);
    writeFileSync(file(bad), 'garbage!!!');
    const r = await cli('verify');
    expect(r.code).toBe(1);
    expect(r.lines).toContain(`# ${join(dir, 'store')}: 1 good, 1 corrupt`);
    expect([existsSync(file(good)), existsSync(file(bad))]).toEqual([true, false]);
    expect((await cli('verify')).code).toBe(0);
  });

  it('regression: verify while a proxy evicts: a file removed after the listing is not called corrupt (exit code 0)', async () => {
    const a = await put(randomBytes(10), ['team/a']);
    const b = await put(randomBytes(10), ['team/a']);
    // The listing as verify takes it, then b is evicted (its file removed) before it is hashed.
    const list = FilesystemStore.prototype.list;
    const spy = jest.spyOn(FilesystemStore.prototype, 'list').mockImplementation(async function* (this: FilesystemStore) {
      const all = [];
      for await (const o of list.call(this)) all.push(o);
      rmSync(file(b));
      yield* all;
    });
    try {
      const r = await cli('verify');
      expect([r.code, r.lines]).toEqual([0, [`gone\t${b}\t(removed meanwhile)`, `# ${join(dir, 'store')}: 1 good, 0 corrupt, 1 removed meanwhile`]]);
      expect(existsSync(file(a))).toBe(true);
    } finally {
      spy.mockRestore();
    }
  });

  it('purge --repository removes the repository and what only it linked; shared objects stay', async () => {
    const only = await put(randomBytes(10), ['team/a']);
    const shared = await put(randomBytes(10), ['team/a', 'team/b']);
    const r = await cli('purge', '--repository', 'team/a');
    expect(r.code).toBe(0);
    expect([existsSync(file(only)), existsSync(file(shared))]).toEqual([false, true]);
    expect(await store.link('hub', 'team/a', 'blob', shared)).toBeUndefined();
    expect(await store.link('hub', 'team/b', 'blob', shared)).toBe('');
  });

  it('purge --older-than removes objects filled longer ago than that', async () => {
    const old = await put(randomBytes(10), ['team/a']);
    const fresh = await put(randomBytes(10), ['team/a']);
    const eightDays = Date.now() / 1000 - 8 * 86_400;
    utimesSync(file(old), eightDays, eightDays);
    const r = await cli('purge', '--older-than', '7d');
    expect(r.lines).toContain(`# ${join(dir, 'store')}: removed 1 objects, 10 bytes`);
    expect([existsSync(file(old)), existsSync(file(fresh))]).toEqual([false, true]);
  });

  it('purge --repository --older-than removes the old objects that repository links, shared ones too, and keeps its links', async () => {
    const eightDays = Date.now() / 1000 - 8 * 86_400;
    const oldOnly = await put(randomBytes(10), ['team/a']);
    const oldShared = await put(randomBytes(11), ['team/a', 'team/b']);
    const oldElsewhere = await put(randomBytes(12), ['team/b']);
    const fresh = await put(randomBytes(13), ['team/a']);
    for (const d of [oldOnly, oldShared, oldElsewhere]) utimesSync(file(d), eightDays, eightDays);
    const r = await cli('purge', '--repository', 'team/a', '--older-than', '7d');
    expect(r.lines).toContain(`# ${join(dir, 'store')}: removed 2 objects, 21 bytes`);
    expect([oldOnly, oldShared, oldElsewhere, fresh].map((d) => existsSync(file(d)))).toEqual([false, false, true, true]);
    expect(await store.link('hub', 'team/a', 'blob', fresh)).toBe('');
  });

  it('refuses a purge without a filter, and a bad age, with exit code 2', async () => {
    expect((await cli('purge')).code).toBe(2);
    expect((await cli('purge', '--older-than', 'soon')).code).toBe(2);
  });
});

/** The same commands on a `registry` store: a real docker-registry (htpasswd, delete enabled). */
describe('registry-proxy cache, registry store', () => {
  jest.setTimeout(60_000);
  const REPO = 'cache/objects';
  const OCI = 'application/vnd.oci.image.manifest.v1+json';
  const auth = { authorization: `Basic ${Buffer.from('store:store-pw').toString('base64')}` };
  let reg: TestRegistry;
  let regDir: string;
  let regConfig: string;
  const clients: UpstreamClient[] = [];
  let n = 0;
  let repo: string;

  const newStore = () => {
    const client = storeClient(reg.url);
    clients.push(client);
    return new RegistryStore({ client, repository: repo, spoolDir: regDir, onUploadFailed: () => undefined });
  };
  async function fill(data: Buffer, repos: string[]): Promise<string> {
    const s = newStore();
    const d = digestOf(data);
    const w = await s.create(d, data.length);
    await w.write(data);
    await w.commit();
    for (const r of repos) await s.addLink('hub', r, 'blob', d);
    return d;
  }
  const status = async (what: 'blobs' | 'manifests', ref: string) => (await fetch(`${reg.url}/v2/${repo}/${what}/${ref}`, { method: 'HEAD', headers: { ...auth, accept: OCI } })).status;
  /** The object's blob and record in the store registry: 200 or 404 each. */
  const stored = async (d: string) => [await status('blobs', d), await status('manifests', `rp-o-${d.slice(7)}`)];
  async function regCli(...args: string[]): Promise<{ code: number; lines: string[] }> {
    const lines: string[] = [];
    const code = await runCacheCli([...args, '--config', regConfig], (l) => lines.push(l));
    return { code, lines };
  }

  beforeAll(async () => {
    await requireCommands('docker-registry', 'htpasswd');
    reg = await startRegistry({ store: 'store-pw' });
    regDir = mkdtempSync(join(tmpdir(), 'rp-cache-cli-reg-'));
  });
  beforeEach(() => {
    // A store repository per test: each starts empty.
    repo = `${REPO}${++n}`;
    regConfig = join(regDir, `proxy${n}.yaml`);
    writeFileSync(
      regConfig,
      `upstreams:\n  - name: hub\n    url: http://127.0.0.1:5000\n    cache:\n      store: {type: registry, url: "${reg.url}", repository: ${repo}, credentials: {type: static, username: store, password: store-pw}, spoolDir: ${join(regDir, 'spool')}}\n      maxBytes: 1GiB\n`,
    );
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await reg?.stop();
    if (regDir) rmSync(regDir, { recursive: true, force: true });
  });

  it('lists the objects the store records (size, fill time), with the repositories linking them when --repository is given', async () => {
    const before = Date.now();
    const a = await fill(randomBytes(10), ['team/a']);
    const shared = await fill(randomBytes(20), ['team/a', 'team/b']);
    const all = await regCli('list');
    expect(all.code).toBe(0);
    expect(all.lines).toContain(`# ${reg.url}/${repo}: 2 objects, 30 bytes`);
    const line = all.lines.find((l) => l.startsWith(shared))?.split('\t');
    expect(line?.[1]).toBe('20');
    expect(Date.parse(line?.[2] as string)).toBeGreaterThanOrEqual(before - 1000);
    const b = await regCli('list', '--repository', 'team/b');
    expect(b.lines).toEqual([expect.stringMatching(new RegExp(`^${shared}\t20\t.*\thub/team/a,hub/team/b$`)), `# ${reg.url}/${repo}: 1 objects, 20 bytes`]);
    expect(b.lines.some((l) => l.startsWith(a))).toBe(false);
    expect((await regCli('list', '--upstream', 'other')).lines).toEqual([]);
  });

  it('verify downloads and hashes every object; a corrupt one is removed (record and blob) and the exit code is 1', async () => {
    const good = await fill(randomBytes(1000), ['team/a']);
    const bad = await fill(randomBytes(1000), ['team/a']);
    // Damage the bytes in the store registry's own storage: it serves them as they are.
    const hex = bad.slice(7);
    writeFileSync(join(reg.dir, 'data/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data'), randomBytes(1000));
    const r = await regCli('verify');
    expect(r.code).toBe(1);
    expect(r.lines).toContain(`# ${reg.url}/${repo}: 1 good, 1 corrupt`);
    expect(r.lines.some((l) => l.startsWith(`corrupt\t${bad}\t(has sha256:`))).toBe(true);
    expect([await stored(good), await stored(bad)]).toEqual([
      [200, 200],
      [404, 404],
    ]);
    expect((await regCli('verify')).code).toBe(0);
  });

  it('purge --repository removes its link and tag records and the objects only it linked; shared objects and other repositories stay', async () => {
    const only = await fill(randomBytes(10), ['team/a']);
    const shared = await fill(randomBytes(10), ['team/a', 'team/b']);
    const s = newStore();
    await s.putTag('hub', 'team/a', 'latest', 'any', { digest: only, mediaType: OCI, validatedAt: 1 });
    await s.putTag('hub', 'team/b', 'latest', 'any', { digest: shared, mediaType: OCI, validatedAt: 1 });
    const r = await regCli('purge', '--repository', 'team/a');
    expect([r.code, r.lines]).toEqual([0, [`# ${reg.url}/${repo}: removed 1 objects, 10 bytes`]]);
    expect([await stored(only), await stored(shared)]).toEqual([
      [404, 404],
      [200, 200],
    ]);
    const fresh = newStore();
    expect(await fresh.link('hub', 'team/a', 'blob', shared)).toBeUndefined();
    expect(await fresh.link('hub', 'team/a', 'blob', only)).toBeUndefined();
    expect(await fresh.tag('hub', 'team/a', 'latest', 'any')).toBeUndefined();
    expect(await fresh.link('hub', 'team/b', 'blob', shared)).toBe('');
    expect((await fresh.tag('hub', 'team/b', 'latest', 'any'))?.digest).toBe(shared);
  });

  it('purge --older-than removes objects filled longer ago than that', async () => {
    const old = await fill(randomBytes(10), ['team/a']);
    const fresh = await fill(randomBytes(10), ['team/a']);
    // Its record says it was filled 8 days ago.
    const put = await fetch(`${reg.url}/v2/${repo}/manifests/rp-o-${old.slice(7)}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': OCI },
      body: objectRecordManifest({ digest: old, size: 10, filledAt: Date.now() - 8 * 86_400_000 }),
    });
    expect(put.status).toBe(201);
    const r = await regCli('purge', '--older-than', '7d');
    expect(r.lines).toEqual([`# ${reg.url}/${repo}: removed 1 objects, 10 bytes`]);
    expect([await stored(old), await stored(fresh)]).toEqual([
      [404, 404],
      [200, 200],
    ]);
  });

  it('regression: verify while a proxy evicts: an object whose record and blob went meanwhile is not called corrupt (exit code 0)', async () => {
    const a = await fill(randomBytes(1000), ['team/a']);
    const b = await fill(randomBytes(1000), ['team/a']);
    // In front of the store: as verify asks for its first object, the other one is evicted
    // the way the proxy does it (record, then blob), after verify listed it.
    let evicted: string | undefined;
    const target = new URL(reg.url);
    const relay = createServer((req, res) => {
      const go = async () => {
        const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
        if (req.method === 'GET' && m && evicted === undefined) {
          evicted = m[1] === a ? b : a;
          const rec = await fetch(`${reg.url}/v2/${repo}/manifests/rp-o-${evicted.slice(7)}`, { method: 'HEAD', headers: { ...auth, accept: OCI } });
          await fetch(`${reg.url}/v2/${repo}/manifests/${rec.headers.get('docker-content-digest') as string}`, { method: 'DELETE', headers: auth });
          await fetch(`${reg.url}/v2/${repo}/blobs/${evicted}`, { method: 'DELETE', headers: auth });
        }
        const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        });
        up.on('error', () => res.destroy());
        req.pipe(up);
      };
      go().catch(() => res.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`;
      writeFileSync(
        regConfig,
        `upstreams:\n  - name: hub\n    url: http://127.0.0.1:5000\n    cache:\n      store: {type: registry, url: "${url}", repository: ${repo}, credentials: {type: static, username: store, password: store-pw}}\n      maxBytes: 1GiB\n`,
      );
      const r = await regCli('verify');
      expect(evicted).toBeDefined();
      expect([r.code, r.lines]).toEqual([0, [`gone\t${evicted as string}\t(removed meanwhile)`, `# ${url}/${repo}: 1 good, 0 corrupt, 1 removed meanwhile`]]);
    } finally {
      relay.closeAllConnections();
      await new Promise((resolve) => relay.close(resolve));
    }
  });

  it('verify: an object whose record is there but whose blob is not is corrupt (its record is removed, exit code 1)', async () => {
    const a = await fill(randomBytes(1000), ['team/a']);
    expect((await fetch(`${reg.url}/v2/${repo}/blobs/${a}`, { method: 'DELETE', headers: auth })).status).toBe(202);
    const r = await regCli('verify');
    expect([r.code, r.lines]).toEqual([1, [`corrupt\t${a}\t(has no bytes): removed`, `# ${reg.url}/${repo}: 0 good, 1 corrupt`]]);
    expect(await stored(a)).toEqual([404, 404]);
  });

  it('a store registry that is down: a clear error and exit code 2, no password in it', async () => {
    writeFileSync(
      regConfig,
      `upstreams:\n  - name: hub\n    url: http://127.0.0.1:5000\n    cache:\n      store: {type: registry, url: "http://127.0.0.1:1", repository: ${repo}, credentials: {type: static, username: store, password: store-pw}}\n      maxBytes: 1GiB\n`,
    );
    const errs: string[] = [];
    const write = jest.spyOn(process.stderr, 'write').mockImplementation((c) => (errs.push(String(c)), true));
    try {
      const r = await regCli('list');
      expect(r.code).toBe(2);
    } finally {
      write.mockRestore();
    }
    expect(errs.join('')).toBe(`http://127.0.0.1:1/${repo}: upstream cache-store: connection failed (Error: connect ECONNREFUSED 127.0.0.1:1)\n`);
  });
});
