/**
 * A 1 GiB layer through the proxy both ways, with real clients where they exist: pushed through
 * the proxy (one streamed PUT), copied out with skopeo, and downloaded with curl in two parts,
 * the second resumed with `curl -C -` (a Range request), as a client does after a broken
 * download. Digests are checked at every step. (Memory while relaying large blobs is measured
 * by tools/bench, not here.)
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { MT, sha256, requireCommands, run } from '@registry-proxy/testing';
import { USERS, startWorld, token, type World } from './support/fixture.js';

jest.setTimeout(300_000);
const SIZE = 1 << 30;
let w: World;
let dir: string;
let layerFile: string;
let layerDigest: string;

async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd', 'skopeo', 'curl');
  w = await startWorld();
  dir = mkdtempSync(join(tmpdir(), 'rp-large-'));
  layerFile = join(dir, 'layer.bin');
  // 1 GiB that no step can compress away: 16 MiB of random bytes, each copy salted differently.
  const block = randomBytes(16 << 20);
  const out = createWriteStream(layerFile);
  const h = createHash('sha256');
  for (let i = 0; i < SIZE / block.length; i++) {
    block.writeUInt32BE(i, 0);
    h.update(block);
    if (!out.write(Buffer.from(block))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  out.end();
  await finished(out);
  layerDigest = `sha256:${h.digest('hex')}`;
});
afterAll(async () => {
  await w?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a 1 GiB layer', () => {
  it('is pushed through the proxy in one streamed PUT, and lands upstream intact', async () => {
    const t = await token(w, 'alice', 'repository:push/large:pull,push');
    const start = await fetch(`${w.proxy.url}/v2/push/large/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${t}` } });
    const loc = new URL(start.headers.get('location') as string);
    loc.searchParams.set('digest', layerDigest);
    const put = await fetch(loc, {
      method: 'PUT',
      headers: { authorization: `Bearer ${t}`, 'content-type': 'application/octet-stream', 'content-length': String(SIZE) },
      body: Readable.toWeb(createReadStream(layerFile, { highWaterMark: 1 << 20 })) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    expect(put.status).toBe(201);
    const head = await fetch(`${w.proxy.url}/v2/push/large/blobs/${layerDigest}`, { method: 'HEAD', headers: { authorization: `Bearer ${t}` } });
    expect([head.status, head.headers.get('content-length')]).toEqual([200, String(SIZE)]);

    // An image around it, so skopeo can copy it as an image.
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDigest] } }));
    await fetch(`${w.proxy.url}/v2/push/large/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${t}` } }).then(async (r) => {
      const l = new URL(r.headers.get('location') as string);
      l.searchParams.set('digest', sha256(config));
      expect((await fetch(l, { method: 'PUT', body: config, headers: { authorization: `Bearer ${t}` } })).status).toBe(201);
    });
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.manifest,
      config: { mediaType: MT.config, digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: SIZE }],
    });
    const m = await fetch(`${w.proxy.url}/v2/push/large/manifests/v1`, { method: 'PUT', body: manifest, headers: { authorization: `Bearer ${t}`, 'content-type': MT.manifest } });
    expect(m.status).toBe(201);
  });

  it('is copied out through the proxy by skopeo with its digest intact', async () => {
    const out = join(dir, 'skopeo');
    const r = await run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `--src-creds=alice:${USERS.alice}`, `docker://${w.proxy.host}/push/large:v1`, `dir:${out}`], {
      timeoutMs: 240_000,
    });
    expect([r.code, r.stderr]).toEqual([0, '']);
    const copied = join(out, layerDigest.slice(7));
    expect(statSync(copied).size).toBe(SIZE);
    expect(await fileDigest(copied)).toBe(layerDigest);
    rmSync(out, { recursive: true, force: true });
  });

  it('is downloaded with curl in two parts, the second resumed with a Range request', async () => {
    const t = await token(w, 'alice', 'repository:push/large:pull');
    const url = `${w.proxy.url}/v2/push/large/blobs/${layerDigest}`;
    const file = join(dir, 'curl.bin');
    const first = await run('curl', ['-sS', '-f', '-H', `Authorization: Bearer ${t}`, '-r', '0-400000000', '-o', file, url], { timeoutMs: 120_000 });
    expect([first.code, first.stderr]).toEqual([0, '']);
    expect(statSync(file).size).toBe(400_000_001);
    // `-C -` continues from the file's size: Range: bytes=400000001-, answered 206.
    const rest = await run('curl', ['-sS', '-f', '-H', `Authorization: Bearer ${t}`, '-C', '-', '-o', file, '-w', '%{http_code}', url], { timeoutMs: 120_000 });
    expect([rest.code, rest.stdout, rest.stderr]).toEqual([0, '206', '']);
    expect(statSync(file).size).toBe(SIZE);
    expect(await fileDigest(file)).toBe(layerDigest);
  });
});
