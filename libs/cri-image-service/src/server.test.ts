import { mkdtempSync } from 'node:fs';
import * as http2 from 'node:http2';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImageBackend } from './backend.js';
import { ImageFsInfoResponse } from './gen/runtime/v1/api.js';
import { CriImageServer } from './server.js';

const backend: ImageBackend = {
  name: 'fixed',
  listImages: async () => [],
  imageStatus: async () => undefined,
  pullImage: async () => `sha256:${'2'.repeat(64)}`,
  removeImage: async () => undefined,
  imageFsInfo: async () => ({ imageFilesystems: [{ timestamp: 1n, fsId: { mountpoint: '/var/lib/x' }, usedBytes: { value: 1n }, inodesUsed: { value: 0n } }], containerFilesystems: [] }),
  close: async () => undefined,
};

/**
 * One raw HTTP/2 gRPC call with the given :authority, from node:http2's client (nghttp2's HPACK
 * encoder: Huffman strings and dynamic-table indexing, a second encoder besides grpc-go's).
 */
async function call(socket: string, authority: string, times = 2): Promise<{ status: number | undefined; grpcStatus: string | undefined; body: Buffer }[]> {
  const session = http2.connect('http://localhost', { createConnection: () => connect(socket) });
  try {
    const out = [];
    for (let i = 0; i < times; i++) {
      const req = session.request({ ':method': 'POST', ':path': '/runtime.v1.ImageService/ImageFsInfo', ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
      req.end(Buffer.from([0, 0, 0, 0, 0])); // an empty ImageFsInfoRequest, uncompressed
      out.push(
        await new Promise<{ status: number | undefined; grpcStatus: string | undefined; body: Buffer }>((resolve) => {
          let status: number | undefined;
          let grpcStatus: string | undefined;
          const chunks: Buffer[] = [];
          req.on('response', (h) => (status = Number(h[':status'])));
          req.on('trailers', (t) => (grpcStatus = String(t['grpc-status'])));
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('close', () => resolve({ status, grpcStatus, body: Buffer.concat(chunks) }));
          req.on('error', () => undefined); // a reset stream ends in 'close' with no status
        }),
      );
    }
    return out;
  } finally {
    session.destroy();
  }
}

describe('CriImageServer on a unix socket (issue 13 defect 0: the socket path as :authority)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rp-cri-server-'));
  const socket = join(dir, 'image.sock');
  const rewrites: string[] = [];
  const server = new CriImageServer({ backend, onAuthorityRewrite: (a) => rewrites.push(a) });
  beforeAll(() => server.listen(socket));
  afterAll(() => server.close(1000));

  it('answers a client that sends the socket path as :authority, on every stream of the connection', async () => {
    const res = await call(socket, socket);
    for (const r of res) {
      expect([r.status, r.grpcStatus]).toEqual([200, '0']);
      expect(ImageFsInfoResponse.decode(r.body.subarray(5)).imageFilesystems[0]?.fsId?.mountpoint).toBe('/var/lib/x');
    }
    expect(rewrites).toEqual([socket]);
  });

  it('and a client that sends localhost, untouched', async () => {
    const res = await call(socket, 'localhost');
    expect(res.map((r) => [r.status, r.grpcStatus])).toEqual([
      [200, '0'],
      [200, '0'],
    ]);
    expect(rewrites).toHaveLength(1);
  });
});
