/**
 * sendBytes and drained on a real loopback HTTP connection, for a client that leaves while a
 * store read is in flight.
 *
 * Regression (the "closing file descriptor on garbage collection" warning of cache-blobs.e2e):
 * when the client went away during a read, the next write was refused and sendBytes waited for
 * a 'drain' or 'close' that had already happened. The request never finished, so the object's
 * file handle was never closed; Node closed it when it collected the request, and warned.
 */
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { drained, sendBytes, type Source } from './serve.js';

let server: Server;
let serve: (res: ServerResponse) => void;
beforeEach(async () => {
  server = createServer((_req, res) => serve(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
afterEach(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

/** Starts a GET and returns its client request (destroy it to leave) once the server has the response. */
async function connect(): Promise<{ res: ServerResponse; leave: () => void }> {
  const got = new Promise<ServerResponse>((r) => (serve = r));
  const req = request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { agent: false }, (res) => res.resume());
  req.on('error', () => undefined);
  req.end();
  const res = await got;
  return { res, leave: () => req.destroy() };
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> => Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())]);

describe('a client that leaves', () => {
  it('drained() of a response that has already closed resolves false at once', async () => {
    const { res, leave } = await connect();
    const closed = new Promise((r) => res.once('close', r));
    leave();
    await closed;
    expect(await within(drained(res), 2000)).toBe(false);
  });

  it('sendBytes resolves false, and does not hang, when the client leaves during a read', async () => {
    const { res, leave } = await connect();
    res.writeHead(200, { 'content-length': 4 << 20 });
    let reads = 0;
    const src: Source = {
      handle: {
        // The second read is where the client goes: it waits until the response has closed.
        read: async (buffer) => {
          reads++;
          if (reads === 2) {
            const closed = new Promise((r) => res.once('close', r));
            leave();
            await closed;
          }
          buffer.fill(7);
          return buffer.length;
        },
        close: async () => undefined,
      },
      available: () => 4 << 20,
      growing: () => false,
      wait: async () => undefined,
    };
    expect(await within(sendBytes(res, src, 0, (4 << 20) - 1), 3000)).toBe(false);
    expect(reads).toBe(2);
  });
});
