/**
 * The fill's write path and the live send of the request that started it, on a real
 * FilesystemStore and a real loopback HTTP connection: what the client gets, how much of it
 * came back out of the temporary file, and how the store was written.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResponseBody } from '@registry-proxy/registry-core';
import { Fill } from './fill.js';
import { FilesystemStore } from './filesystem-store.js';
import { LiveSend } from './live.js';
import { drained, sendBytes } from './serve.js';
import type { ObjectWriter } from './store.js';

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const CHUNK = 256 << 10;
let root: string;
let server: Server;
let serve: (res: ServerResponse) => Promise<void>;
beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'rp-live-'));
  server = createServer((_req, res) => void serve(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
afterEach(async () => {
  await new Promise((r) => server.close(r));
  rmSync(root, { recursive: true, force: true });
});

/** Counts what goes through a writer: calls, and bytes read back through its readers. */
function counting(w: ObjectWriter, writeDelayMs = 0) {
  const c = { writes: 0, writevs: 0, largestBatch: 0, readBack: 0 };
  // A slow disk, when asked: chunks then queue up during each write whatever the machine's load.
  const slow = () => (writeDelayMs ? new Promise((r) => setTimeout(r, writeDelayMs)) : Promise.resolve());
  const writer: ObjectWriter = {
    write: async (chunk) => {
      c.writes++;
      await slow();
      return w.write(chunk);
    },
    writev: async (chunks) => {
      c.writevs++;
      c.largestBatch = Math.max(c.largestBatch, chunks.length);
      await slow();
      return (w.writev as NonNullable<ObjectWriter['writev']>)(chunks);
    },
    openReader: () => w.openReader(),
    commit: () => w.commit(),
    abort: () => w.abort(),
  };
  writer.openReader = async () => {
    const h = await w.openReader();
    return {
      read: async (b, p) => {
        const n = await h.read(b, p);
        c.readBack += n;
        return n;
      },
      close: () => h.close(),
    };
  };
  return { writer, c };
}

/** Serves `fill` the way the blob cache serves the request that started it. */
function serveLead(fill: Fill, size: number): (res: ServerResponse) => Promise<void> {
  return async (res) => {
    res.setHeader('content-length', size);
    const live = LiveSend.start(res, fill, size);
    const h = await fill.openReader();
    try {
      await live?.done();
      if (res.writableNeedDrain && !(await drained(res))) return;
      await sendBytes(res, { handle: h, available: () => fill.available(), growing: () => fill.growing, wait: () => fill.wait() }, live?.sent() ?? 0, size - 1);
    } catch {
      res.destroy();
    } finally {
      await h.close();
    }
  };
}

function get(slowMs = 0): Promise<{ body: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    const req = request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      if (slowMs) {
        res.pause();
        setTimeout(() => res.resume(), slowMs);
      }
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ body: Buffer.concat(chunks), complete: res.complete }));
      res.on('error', () => resolve({ body: Buffer.concat(chunks), complete: false }));
      res.on('close', () => resolve({ body: Buffer.concat(chunks), complete: res.complete }));
    });
    req.end();
  });
}

/** Feeds `data` to a body in chunks, a few at a time, as a socket would. */
async function feed(body: ResponseBody, data: Buffer, paced: boolean): Promise<void> {
  for (let off = 0; off < data.length; off += CHUNK) {
    body.push(Buffer.from(data.subarray(off, off + CHUNK)));
    // Paced like a slow network (about 50 MiB/s), so that a client reading at full speed keeps
    // up even on a loaded machine (it shares this process's one thread).
    if (paced) await new Promise((r) => setTimeout(r, 5));
    else if ((off / CHUNK) % 8 === 7) await new Promise((r) => setImmediate(r));
  }
  body.push(null);
}

async function run(data: Buffer, digest: string, slowMs = 0, paced = true, writeDelayMs = 0) {
  const store = await FilesystemStore.open(root, 1 << 30);
  const { writer, c } = counting(await store.create(digestOf(data), data.length), writeDelayMs);
  const body = new ResponseBody();
  const fill = new Fill(digest, data.length, writer, body, () => undefined);
  serve = serveLead(fill, data.length);
  const got = get(slowMs);
  await new Promise((r) => setTimeout(r, 50)); // the request is being served before the first byte comes
  await feed(body, data, paced);
  const res = await got;
  await fill.done.catch(() => undefined);
  return { res, c, fill };
}

// The live-send cases depend on the client keeping pace with a paced feed in this one process;
// on a machine loaded by other suites one try can lose that race, so each gets up to three.
jest.retryTimes(2, { logErrorsBeforeRetry: true });

describe('fill and live send', () => {
  it('the starting request gets its bytes from the upstream buffers, not back from the file (all but the last chunk)', async () => {
    const data = randomBytes(16 << 20);
    const { res, c, fill } = await run(data, digestOf(data));
    expect([res.complete, res.body.equals(data)]).toEqual([true, true]);
    expect(fill.failed).toBeUndefined();
    expect(c.readBack).toBeLessThanOrEqual(CHUNK);
  });

  it('writes chunks that queued up during a write in one writev, fewer calls than chunks', async () => {
    const data = randomBytes(16 << 20);
    const { res, c } = await run(data, digestOf(data), 0, false, 10);
    expect([res.complete, res.body.equals(data)]).toEqual([true, true]);
    expect(c.writevs).toBeGreaterThan(0);
    expect(c.largestBatch).toBeGreaterThan(1);
    expect(c.writes + c.writevs).toBeLessThan(data.length / CHUNK);
  });

  it('a client that cannot keep up drops to the file, and still gets every byte in order', async () => {
    const data = randomBytes(32 << 20);
    const { res, c } = await run(data, digestOf(data), 500);
    expect([res.complete, res.body.equals(data)]).toEqual([true, true]);
    expect(c.readBack).toBeGreaterThan(CHUNK);
  });

  it('bytes that do not match the digest: the client never gets the last byte, the connection is cut, nothing is stored', async () => {
    const data = randomBytes(4 << 20);
    const { res, fill } = await run(data, digestOf(randomBytes(10)));
    expect(fill.failed?.reason).toBe('digest');
    expect(res.complete).toBe(false);
    expect(res.body.length).toBeLessThan(data.length);
  });
});
