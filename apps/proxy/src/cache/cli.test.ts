import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCacheCli } from './cli.js';
import { FilesystemStore } from './filesystem-store.js';

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

  it('refuses a purge without a filter, and a bad age, with exit code 2', async () => {
    expect((await cli('purge')).code).toBe(2);
    expect((await cli('purge', '--older-than', 'soon')).code).toBe(2);
  });
});
