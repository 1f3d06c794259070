/**
 * StoreReader against a real loopback HTTP server speaking the blob GET of a registry (ranges,
 * Content-Range), through the real upstream client: how many GETs a whole read takes, and what
 * it does with a server that ignores Range, answers the wrong range, or drops the stream.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UpstreamClient, anonymousProvider } from '@registry-proxy/registry-core';
import { StoreReader } from './registry-reader.js';

const data = randomBytes(4 << 20);
let server: Server;
let client: UpstreamClient;
const gets: string[] = [];
let mode: 'ranges' | 'ignore-range' | 'wrong-range' | 'drop-after-1MiB' = 'ranges';

beforeAll(async () => {
  server = createServer((req, res) => {
    const range = req.headers.range ?? '';
    gets.push(range);
    const m = /^bytes=(\d+)-(\d+)$/.exec(range);
    if (!m || mode === 'ignore-range') return void res.writeHead(200, { 'content-length': data.length }).end(data);
    let start = Number(m[1]);
    const end = Number(m[2]);
    if (mode === 'wrong-range') start = 0;
    res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${data.length}` });
    if (mode === 'drop-after-1MiB') {
      mode = 'ranges'; // once
      res.write(data.subarray(start, start + (1 << 20)), () => setTimeout(() => res.destroy(), 50));
      return;
    }
    res.end(data.subarray(start, end + 1));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  client = new UpstreamClient({
    name: 'store',
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    credentials: anonymousProvider,
    followRedirects: false,
    retry: { attempts: 1, baseDelayMs: 10, maxDelayMs: 10 },
  });
});
afterAll(async () => {
  await client.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  gets.length = 0;
  mode = 'ranges';
});

const reader = () => new StoreReader(data.length, (range) => client.request({ method: 'GET', path: '/v2/s/blobs/x', headers: { range } }));

/** Reads [from, to) in reads of `step` bytes, as sendBytes and the verifier do. */
async function readAll(r: StoreReader, from = 0, to = data.length, step = 1 << 20): Promise<Buffer> {
  const out: Buffer[] = [];
  for (let pos = from; pos < to;) {
    const buf = Buffer.alloc(Math.min(step, to - pos));
    const n = await r.read(buf, pos);
    if (n === 0) throw new Error('short');
    out.push(buf.subarray(0, n));
    pos += n;
  }
  return Buffer.concat(out);
}

it('reads a whole object in order with one GET (it was one per 1 MiB read)', async () => {
  const r = reader();
  expect((await readAll(r)).equals(data)).toBe(true);
  await r.close();
  expect(gets).toEqual([`bytes=0-${data.length - 1}`]);
});

it('a read somewhere else starts a new GET there', async () => {
  const r = reader();
  expect((await readAll(r, 0, 1 << 20)).equals(data.subarray(0, 1 << 20))).toBe(true);
  expect((await readAll(r, 3 << 20, 3 * (1 << 20) + 100)).equals(data.subarray(3 << 20, (3 << 20) + 100))).toBe(true);
  await r.close();
  expect(gets).toEqual([`bytes=0-${data.length - 1}`, `bytes=${3 << 20}-${data.length - 1}`]);
});

it('a store that ignores Range (200, all of it): skips to the position', async () => {
  mode = 'ignore-range';
  const r = reader();
  expect((await readAll(r, 12345, 2_000_000)).equals(data.subarray(12345, 2_000_000))).toBe(true);
  await r.close();
});

it('a store that answers another range than the one asked: an error, not those bytes', async () => {
  mode = 'wrong-range';
  const r = reader();
  await expect(r.read(Buffer.alloc(100), 5000)).rejects.toThrow(/range at 0 for one at 5000/);
  await r.close();
});

it('a stream that drops mid-way is picked up again where it stopped, once', async () => {
  mode = 'drop-after-1MiB';
  const r = reader();
  expect((await readAll(r, 0, data.length, 256 << 10)).equals(data)).toBe(true);
  await r.close();
  expect(gets.length).toBe(2);
  expect(gets[1]).toBe(`bytes=${1 << 20}-${data.length - 1}`);
});
