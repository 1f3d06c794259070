import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';

/** Media types of OCI images. */
export const MT = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A minimal ustar archive of regular files (what image layers are). */
export function tar(files: Record<string, Buffer | string>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content);
    const h = Buffer.alloc(512);
    h.write(name, 0, 100, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('14000000000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export interface Blob {
  readonly digest: string;
  readonly data: Buffer;
}
export interface Image {
  readonly manifest: Buffer;
  readonly digest: string;
  readonly blobs: Blob[];
  readonly platform: { architecture: string; os: string };
}

/** An image with one layer per entry of `layers` (gzip tar), a config with correct diff_ids, and its manifest. */
export function makeImage(layers: Array<Record<string, Buffer | string>>, architecture = 'amd64', runConfig: Record<string, unknown> = {}): Image {
  const blobs: Blob[] = [];
  const diffIds: string[] = [];
  const layerDescs = layers.map((files) => {
    const raw = tar(files);
    const gz = gzipSync(raw);
    diffIds.push(sha256(raw));
    const b = { digest: sha256(gz), data: gz };
    blobs.push(b);
    return { mediaType: MT.layer, digest: b.digest, size: gz.length };
  });
  const config = Buffer.from(JSON.stringify({ architecture, os: 'linux', config: { Cmd: ['/hello'], ...runConfig }, rootfs: { type: 'layers', diff_ids: diffIds } }));
  blobs.push({ digest: sha256(config), data: config });
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, config: { mediaType: MT.config, digest: sha256(config), size: config.length }, layers: layerDescs }));
  return { manifest, digest: sha256(manifest), blobs, platform: { architecture, os: 'linux' } };
}

/** A three-layer image with some random content, so every run has fresh digests. */
export function sampleImage(architecture = 'amd64', extraBytes = 64 * 1024): Image {
  return makeImage([{ 'hello.txt': `hello from ${architecture}\n` }, { 'data/random.bin': randomBytes(extraBytes) }, { 'etc/motd': `built ${new Date().toISOString()}\n` }], architecture);
}

/** An OCI index over several images. */
export function makeIndex(images: Image[]): { manifest: Buffer; digest: string } {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.index,
      manifests: images.map((i) => ({ mediaType: MT.manifest, digest: i.digest, size: i.manifest.length, platform: i.platform })),
    }),
  );
  return { manifest, digest: sha256(manifest) };
}

/** Pushes blobs and manifests straight to a registry with Basic credentials (the test's setup, not the proxy). */
export class Pusher {
  private readonly authorization: string;

  constructor(
    private readonly url: string,
    user: string,
    password: string,
  ) {
    this.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  }

  /** A pusher that sends a bearer token (to the proxy) instead of Basic credentials. */
  static bearer(url: string, token: string): Pusher {
    const p = new Pusher(url, '', '');
    (p as unknown as { authorization: string }).authorization = `Bearer ${token}`;
    return p;
  }

  private headers(extra: Record<string, string> = {}) {
    return { authorization: this.authorization, ...extra };
  }

  async blob(repo: string, blob: Blob): Promise<void> {
    const start = await fetch(`${this.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: this.headers() });
    if (start.status !== 202) throw new Error(`upload start ${start.status}`);
    const loc = new URL(start.headers.get('location') as string, this.url);
    loc.searchParams.set('digest', blob.digest);
    const put = await fetch(loc, { method: 'PUT', headers: this.headers({ 'content-type': 'application/octet-stream' }), body: blob.data });
    if (put.status !== 201) throw new Error(`upload ${put.status}: ${await put.text()}`);
  }

  async manifest(repo: string, ref: string, body: Buffer, mediaType: string): Promise<void> {
    const res = await fetch(`${this.url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', headers: this.headers({ 'content-type': mediaType }), body });
    if (res.status !== 201) throw new Error(`manifest ${res.status}: ${await res.text()}`);
  }

  async image(repo: string, tag: string, image: Image): Promise<void> {
    for (const b of image.blobs) await this.blob(repo, b);
    await this.manifest(repo, tag, image.manifest, MT.manifest);
  }

  async index(repo: string, tag: string, images: Image[]): Promise<{ digest: string }> {
    for (const i of images) await this.image(repo, i.digest.replace(':', '-'), i);
    const idx = makeIndex(images);
    await this.manifest(repo, tag, idx.manifest, MT.index);
    return idx;
  }
}
