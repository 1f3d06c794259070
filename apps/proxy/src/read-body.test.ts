/** readBody's limits, over a real socket: a body that stops, or trickles for too long, gets 408 instead of holding its connection. */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { RegistryError } from '@registry-proxy/registry-core';
import { readBody } from './read-body.js';
import { logPath } from './request-log.js';
import { sendError } from './respond.js';

let server: Server;
let port: number;
beforeAll(async () => {
  server = createServer((req, res) => {
    const read = () =>
      readBody(req, 1024, 'too large', { totalMs: 600, idleMs: 200 }).then(
        (b) => res.end(`got ${b.length} ${b.toString('latin1')}`),
        (err: unknown) => (err instanceof RegistryError ? sendError(req, res, err, false) : res.destroy()),
      );
    // At once, while the parser is still at the head; or a turn later, as the token route reads
    // (after its rate limit), when a body that came with the head has been parsed whole.
    if (req.url === '/later') queueMicrotask(read);
    else read();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));

/** Sends `head` and then each of `drips` every `everyMs`; resolves with what came back and when. */
function send(head: string, drips: string[], everyMs: number): Promise<{ text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const s = connect(port, '127.0.0.1', () => s.write(head));
    let out = '';
    let i = 0;
    const timer = setInterval(() => (i < drips.length && s.writable ? s.write(drips[i++] as string) : undefined), everyMs);
    s.setEncoding('utf8');
    s.on('data', (d: string) => (out += d));
    s.on('close', () => (clearInterval(timer), resolve({ text: out, ms: Date.now() - t0 })));
    s.on('error', reject);
  });
}

describe('readBody deadlines', () => {
  it('a body that stops coming: 408 after the idle time, and the connection is closed', async () => {
    const r = await send('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nfirst-bytes', [], 1000);
    expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.text).toContain('"code":"UNAVAILABLE"');
    expect(r.ms).toBeLessThan(3000);
  });

  it('a body that trickles within the idle time but past the total: 408', async () => {
    const r = await send(
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n',
      Array.from({ length: 50 }, () => 'a'),
      100,
    );
    expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.text).toContain('not complete within');
  });

  // The head and the whole body in one write, read at once or a turn later (as the token route
  // reads it, after its rate limit), when the parser has it all.
  it('a body that came with its head is read whole, sized or chunked, and the connection goes on', async () => {
    const bodies = {
      sized: 'Content-Length: 7\r\n\r\nabcdefg',
      chunked: 'Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n',
      empty: 'Content-Length: 0\r\n\r\n',
    };
    const heads = Object.values(bodies).flatMap((b) => ['/', '/later'].map((path) => `POST ${path} HTTP/1.1\r\nHost: x\r\n${b}`));
    // All six on one connection in one write: each must be read to its end for the next to be served.
    const r = await send(heads.join('') + 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', [], 1000);
    expect([...r.text.matchAll(/\r\n\r\n(got [^\r]*?)(?=HTTP\/1\.1|$)/g)].map((m) => m[1])).toEqual(['got 7 abcdefg', 'got 7 abcdefg', 'got 7 abcdefg', 'got 7 abcdefg', 'got 0 ', 'got 0 ', 'got 0 ']);
  });

  it('a chunked body over the limit that came whole with its head: 413', async () => {
    for (const path of ['/', '/later']) {
      const r = await send(`POST ${path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n${'a'.repeat(1024)}\r\n1\r\nb\r\n0\r\n\r\n`, [], 1000);
      expect([path, r.text]).toEqual([path, expect.stringMatching(/^HTTP\/1\.1 413 [^]*too large/)]);
    }
  });

  it('a body still coming when read a turn later is waited for', async () => {
    const r = await send('POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nab', ['cde'], 50);
    expect(r.text).toMatch(/got 5 abcde$/);
  });

  it('a body that arrives in time is read whole', async () => {
    const r = await send('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n', ['ab', 'cde'], 50);
    expect(r.text).toMatch(/got 5 abcde$/);
  });
});

describe('logPath', () => {
  it.each([
    ['/v2/a/manifests/x?q=1', '/v2/a/manifests/x?q=1'],
    ['http://u:SECRET@a.test/token?x', '/token?x'],
    ['HTTP://u:SECRET@a.test', '/'],
    ['u:SECRET@a.test:443', '(not a path)'],
    ['SECRET', '(not a path)'],
    ['*', '*'],
  ])('%s is logged as %s', (url, logged) => {
    expect(logPath(url)).toBe(logged);
    expect(logPath(url)).not.toContain('SECRET');
  });
});
