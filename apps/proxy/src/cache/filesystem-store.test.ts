import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemStore, ObjectTooLargeError } from './filesystem-store.js';

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'rp-fs-store-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

async function put(s: FilesystemStore, data: Buffer): Promise<string> {
  const d = digestOf(data);
  const w = await s.create(d, data.length);
  await w.write(data);
  await w.commit();
  return d;
}

describe('FilesystemStore', () => {
  it('lays objects out by digest, visible only once committed (written to tmp/ and renamed)', async () => {
    const s = await FilesystemStore.open(root, 1 << 20);
    const data = randomBytes(1000);
    const d = digestOf(data);
    const w = await s.create(d, data.length);
    await w.write(data);
    expect(await s.open(d)).toBeUndefined();
    expect(readdirSync(join(root, 'tmp'))).toHaveLength(1);
    await w.commit();
    expect(existsSync(join(root, 'blobs', 'sha256', d.slice(7, 9), d.slice(7)))).toBe(true);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    const o = await s.open(d);
    const buf = Buffer.alloc(1000);
    await o?.handle.read(buf, 0);
    await o?.handle.close();
    expect(buf.equals(data)).toBe(true);
  });

  it('leaves nothing behind when a write is aborted', async () => {
    const s = await FilesystemStore.open(root, 1 << 20);
    const w = await s.create(digestOf(Buffer.from('x')), 1);
    await w.write(Buffer.from('y'));
    await w.abort();
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  it('evicts the least recently used objects to stay within its quota, and tells who was evicted', async () => {
    const evicted: string[] = [];
    const s = await FilesystemStore.open(root, 3000, (d) => evicted.push(d));
    const a = await put(s, randomBytes(1000));
    const b = await put(s, randomBytes(1000));
    const c = await put(s, randomBytes(1000));
    s.touch(a);
    const d = await put(s, randomBytes(1000));
    expect(evicted).toEqual([b]);
    expect(await s.open(b)).toBeUndefined();
    for (const x of [a, c, d]) await (await s.open(x))?.handle.close();
    expect(s.bytes).toBe(3000);
  });

  it('refuses an object larger than the whole quota', async () => {
    const s = await FilesystemStore.open(root, 100);
    await expect(s.create(digestOf(Buffer.from('big')), 101)).rejects.toBeInstanceOf(ObjectTooLargeError);
  });

  it('keeps links and tag records per upstream and repository', async () => {
    const s = await FilesystemStore.open(root, 1 << 20);
    const d = digestOf(Buffer.from('m'));
    expect(await s.link('up', 'team/app', 'manifest', d)).toBeUndefined();
    await s.addLink('up', 'team/app', 'manifest', d, 'application/vnd.oci.image.manifest.v1+json');
    await s.addLink('up', 'team/app', 'blob', d);
    expect(await s.link('up', 'team/app', 'manifest', d)).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(await s.link('up', 'team/app', 'blob', d)).toBe('');
    expect(await s.link('up', 'team/other', 'blob', d)).toBeUndefined();
    expect(await s.link('other', 'team/app', 'blob', d)).toBeUndefined();
    await s.putTag('up', 'team/app', 'v1', 'any', { digest: d, mediaType: 'application/vnd.oci.image.index.v1+json', validatedAt: 5 });
    expect(await s.tag('up', 'team/app', 'v1', 'any')).toEqual({ digest: d, mediaType: 'application/vnd.oci.image.index.v1+json', validatedAt: 5 });
  });

  it('indexes what the directory already holds when it opens (a restart, or a volume shared with replicas)', async () => {
    const first = await FilesystemStore.open(root, 1 << 20);
    const d = await put(first, randomBytes(500));
    const second = await FilesystemStore.open(root, 1 << 20);
    expect(second.bytes).toBe(500);
    const listed = [];
    for await (const o of second.list()) listed.push(o.digest);
    expect(listed).toEqual([d]);
  });
});
