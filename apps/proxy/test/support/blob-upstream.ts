import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in upstream registry that speaks the distribution wire format for blob GET/HEAD only,
 * anonymous, and does what a real docker-registry cannot be made to do on cue: send a blob
 * slowly (or hold it half-sent until the test lets it go), send bytes that do not match the
 * digest, break off mid-body. It counts every request, so tests can prove one upstream fetch.
 */
export interface StandInBlob {
  readonly data: Buffer;
  /** Repositories that have it (others answer 404 BLOB_UNKNOWN). */
  readonly repositories: readonly string[];
  /** Bytes sent instead of `data` (same length): a lying upstream. */
  readonly lie?: Buffer;
  /** Close the connection after this many bytes. */
  readonly breakAfter?: number;
}

export interface BlobUpstream {
  readonly url: string;
  /** Manifests by `repository:tag` (answered for GET and HEAD, with ETag and If-None-Match support). */
  readonly manifests: Map<string, { body: Buffer; mediaType: string }>;
  /** While set, every manifest request gets this status (503, 429...). */
  failManifests: number | undefined;
  readonly blobs: Map<string, StandInBlob>;
  /** Requests by `METHOD path`. */
  readonly counts: Map<string, number>;
  /** While set, bodies stop after half their bytes until `release()`. */
  hold(): void;
  release(): void;
  add(data: Buffer, repositories: readonly string[], extra?: Partial<StandInBlob>): string;
  count(method: string, repository: string, digest: string): number;
  stop(): Promise<void>;
}

export const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function startBlobUpstream(): Promise<BlobUpstream> {
  const blobs = new Map<string, StandInBlob>();
  const manifests = new Map<string, { body: Buffer; mediaType: string }>();
  const self: { failManifests: number | undefined } = { failManifests: undefined };
  const counts = new Map<string, number>();
  let gate: Promise<void> | undefined;
  let open: () => void = () => undefined;
  const error = (res: ServerResponse, status: number, code: string) => {
    const body = JSON.stringify({ errors: [{ code, message: code.toLowerCase() }] });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'docker-distribution-api-version': 'registry/2.0' }).end(body);
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    counts.set(`${req.method} ${path}`, (counts.get(`${req.method} ${path}`) ?? 0) + 1);
    if (path === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    const mm = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (mm) {
      if (self.failManifests !== undefined) return error(res, self.failManifests, self.failManifests === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE');
      const m = manifests.get(`${mm[1]}:${mm[2]}`);
      if (!m) return error(res, 404, 'MANIFEST_UNKNOWN');
      const digest = digestOf(m.body);
      const etag = `"${digest}"`;
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag, 'docker-content-digest': digest }).end();
      res.writeHead(200, { 'content-type': m.mediaType, 'content-length': m.body.length, 'docker-content-digest': digest, etag });
      return void res.end(req.method === 'HEAD' ? undefined : m.body);
    }
    const m = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/.exec(path);
    const b = m ? blobs.get(m[2] as string) : undefined;
    if (!m || !b || !b.repositories.includes(m[1] as string)) return error(res, 404, 'BLOB_UNKNOWN');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': b.data.length, 'docker-content-digest': m[2] as string });
    if (req.method === 'HEAD') return void res.end();
    const bytes = b.lie ?? b.data;
    void (async () => {
      const half = Math.floor(bytes.length / 2);
      for (let off = 0; off < bytes.length; off += 64 << 10) {
        if (off >= half && gate) await gate;
        const end = Math.min(off + (64 << 10), bytes.length);
        if (b.breakAfter !== undefined && end > b.breakAfter) {
          res.write(bytes.subarray(off, b.breakAfter));
          res.socket?.destroy();
          return;
        }
        if (!res.write(bytes.subarray(off, end))) await new Promise((r) => res.once('drain', r));
        if (res.destroyed) return;
      }
      res.end();
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    blobs,
    manifests,
    get failManifests() {
      return self.failManifests;
    },
    set failManifests(v) {
      self.failManifests = v;
    },
    counts,
    hold() {
      gate = new Promise((r) => (open = r));
    },
    release() {
      open();
      gate = undefined;
    },
    add(data, repositories, extra = {}) {
      const d = digestOf(data);
      blobs.set(d, { data, repositories, ...extra });
      return d;
    },
    count(method, repository, digest) {
      return counts.get(`${method} /v2/${repository}/blobs/${digest}`) ?? 0;
    },
    async stop() {
      open();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
