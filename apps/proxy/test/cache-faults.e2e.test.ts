/**
 * Store faults never fail a pull the upstream can serve: a full disk (a real 2 MiB tmpfs) and an
 * unwritable store (a real read-only tmpfs) relay the blob uncached, with a warning and a count.
 * Mounting needs root; without it these tests say so and are skipped.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { getGlobalDispatcher } from 'undici';
import { startBlobUpstream, type BlobUpstream } from './support/blob-upstream.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';

jest.setTimeout(60_000);
const root = process.getuid?.() === 0;
const PW = 'faults-pw-77';
let up: BlobUpstream;
const mounts: string[] = [];

beforeAll(async () => {
  if (!root) console.warn('cache-faults: not root, cannot mount tmpfs: skipped');
  up = await startBlobUpstream();
});
afterAll(async () => {
  for (const m of mounts) {
    execFileSync('umount', [m]);
    rmSync(m, { recursive: true, force: true });
  }
  await up?.stop();
  await getGlobalDispatcher().close();
});

function tmpfs(options: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'rp-cache-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

async function proxyWithStore(path: string): Promise<TestProxy> {
  return startTestProxy({
    auth: [{ type: 'static', users: [{ username: 'alice', passwordHash: bcrypt.hashSync(PW, 4) }] }],
    rules: [{ account: 'alice', repository: ['a/**'], actions: ['pull'] }],
    upstreams: [{ name: 'up', url: up.url, attempts: 1, cache: { store: { type: 'filesystem', path }, maxBytes: '1GiB' } }],
  });
}

async function pull(proxy: TestProxy, path: string): Promise<{ status: number; body: Buffer; complete: boolean }> {
  const q = new URLSearchParams({ service: 'registry-proxy', scope: 'repository:a/x:pull' });
  const t = ((await (await fetch(`${proxy.url}/token?${q}`, { headers: { authorization: `Basic ${Buffer.from(`alice:${PW}`).toString('base64')}` } })).json()) as { token: string }).token;
  return new Promise((resolve) => {
    const req = request(`${proxy.url}${path}`, { headers: { authorization: `Bearer ${t}` }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), complete: res.complete }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), complete: false }));
    });
    req.on('error', () => resolve({ status: 0, body: Buffer.alloc(0), complete: false }));
    req.end();
  });
}

async function storeErrors(proxy: TestProxy): Promise<number> {
  const text = await proxy.metrics.registry.metrics();
  return text
    .split('\n')
    .filter((l) => l.startsWith('registry_proxy_cache_errors_total{') && l.includes('reason="store"'))
    .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
}

(root ? describe : describe.skip)('cache store faults', () => {
  it('a full disk: the blob is relayed whole, uncached, with a warning and a count; nothing half-written is left', async () => {
    const dir = tmpfs('size=2m');
    const proxy = await proxyWithStore(dir);
    try {
      const data = randomBytes(4 << 20);
      const d = up.add(data, ['a/x']);
      const r = await pull(proxy, `/v2/a/x/blobs/${d}`);
      expect([r.status, r.complete, r.body.equals(data)]).toEqual([200, true, true]);
      expect(await storeErrors(proxy)).toBeGreaterThanOrEqual(1);
      expect(proxy.logs.join('')).toMatch(/cache store failed.*relaying without caching|"code":"ENOSPC"/);
      expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
      // The pull after it is relayed too, not failed.
      const again = await pull(proxy, `/v2/a/x/blobs/${d}`);
      expect([again.status, again.body.equals(data)]).toEqual([200, true]);
    } finally {
      await proxy.close();
    }
  });

  it('an unwritable store: the proxy starts (with a warning) and pulls are relayed and counted', async () => {
    const dir = tmpfs('size=1m,ro');
    const proxy = await proxyWithStore(dir);
    try {
      expect(proxy.logs.join('')).toMatch(/cache store is not writable/);
      const data = randomBytes(1 << 20);
      const d = up.add(data, ['a/x']);
      const r = await pull(proxy, `/v2/a/x/blobs/${d}`);
      expect([r.status, r.complete, r.body.equals(data)]).toEqual([200, true, true]);
      expect(await storeErrors(proxy)).toBeGreaterThanOrEqual(1);
    } finally {
      await proxy.close();
    }
  });
});
