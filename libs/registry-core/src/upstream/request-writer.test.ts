/**
 * pumpBody with a body marked by disposableChunks: each chunk that is a whole ArrayBuffer of its
 * own is freed (detached, byteLength 0) once the socket has written it, and nothing else is
 * touched; the bytes that reach a real loopback server are exactly the body, framed as asked.
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { Loopback } from '@registry-proxy/testing';
import { disposableChunks, pumpBody, transferFunction } from './request-writer.js';

const loop = new Loopback();
afterEach(() => loop.closeAll());

/** A loopback server that collects everything one connection sends until `expected` bytes are in. */
async function sink(expected: number): Promise<{ socket: Socket; received: Promise<Buffer> }> {
  let done!: (b: Buffer) => void;
  const received = new Promise<Buffer>((r) => (done = r));
  const server = createServer((s) => {
    const parts: Buffer[] = [];
    let n = 0;
    s.on('data', (c: Buffer) => {
      parts.push(Buffer.from(c));
      n += c.length;
      if (n >= expected) done(Buffer.concat(parts));
    });
  });
  const port = await loop.listen(server);
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise((r) => socket.once('connect', r));
  loop.defer(() => void socket.destroy());
  return { socket, received };
}

/** Chunks as they come: owned (a whole ArrayBuffer each, as node:http's parser makes them), a slice of a larger buffer, and a small pooled one. */
function chunks(): { owned: Buffer[]; shared: Buffer[]; all: Buffer[]; bytes: Buffer } {
  const owned = [0, 1, 2].map(() => {
    const b = Buffer.allocUnsafeSlow(64 * 1024);
    randomBytes(b.length).copy(b);
    return b;
  });
  const big = randomBytes(100_000);
  const slice = Buffer.from(big.buffer, big.byteOffset, 40_000);
  const pooled = Buffer.from('a small chunk from the shared pool');
  const all = [owned[0], slice, owned[1], pooled, owned[2]] as Buffer[];
  return { owned, shared: [slice, pooled], all, bytes: Buffer.concat(all) };
}

async function pump(mark: boolean, chunked: boolean) {
  const c = chunks();
  const framed = chunked ? Buffer.concat([...c.all.flatMap((b) => [Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]), Buffer.from('0\r\n\r\n')]) : c.bytes;
  const { socket, received } = await sink(framed.length);
  const body = new PassThrough();
  const sent = new Promise<void>((r) => pumpBody(socket, mark ? disposableChunks(body) : body, chunked, r));
  for (const b of c.all) body.write(b);
  body.end();
  await sent;
  expect((await received).equals(framed)).toBe(true);
  // Every write callback has run once the peer has the bytes and the loop turns once more.
  await new Promise((r) => setImmediate(r));
  return c;
}

describe('pumpBody and disposableChunks', () => {
  it.each([false, true])('frees each owned chunk once written, chunked=%s, and leaves shared ones alone', async (chunked) => {
    const c = await pump(true, chunked);
    expect(c.owned.map((b) => b.buffer.byteLength)).toEqual([0, 0, 0]);
    expect(c.shared.map((b) => b.length)).toEqual([40_000, 34]);
    expect(c.shared[0]?.buffer.byteLength).toBe(100_000);
  });

  it('frees nothing of a body that was not marked', async () => {
    const c = await pump(false, false);
    expect(c.owned.map((b) => b.buffer.byteLength)).toEqual([65536, 65536, 65536]);
  });
});

describe('transferFunction', () => {
  it("is the runtime's own when it has one, and borrows nothing then", () => {
    const native = function (this: ArrayBuffer) {
      return this;
    };
    const borrow = jest.fn();
    expect(transferFunction(native, borrow)).toBe(native);
    expect(borrow).not.toHaveBeenCalled();
  });

  it('is null when the runtime has none and none can be borrowed', () => {
    expect(transferFunction(undefined, () => undefined)).toBeNull();
  });

  it('on this runtime, detaches a buffer and leaves its view empty', () => {
    const f = transferFunction();
    expect(f).not.toBeNull();
    const b = Buffer.allocUnsafeSlow(1024);
    f?.call(b.buffer as ArrayBuffer, 0);
    expect([b.buffer.byteLength, b.length]).toEqual([0, 0]);
  });
});
