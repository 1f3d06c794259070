/**
 * Regression tests for the upstream wire defects of issue 12 (1-3) and issue 11 (10), each
 * against a raw TCP server on loopback that writes exactly the bytes a broken or hostile
 * upstream would.
 */
import type { Socket } from 'node:net';
import { Loopback } from '@registry-proxy/testing';
import { anonymousProvider } from '../credentials.js';
import { UpstreamClient } from './client.js';
import { UpstreamUnavailableError } from './errors.js';
import { Http1Transport, type Http1Request } from './http1.js';

const loop = new Loopback();
afterEach(() => loop.closeAll());
/** A TCP server that calls `answer` for each request head (bodies with content-length are skipped). */
const raw = (answer: (head: string, socket: Socket, n: number) => void) => loop.raw(answer);

const transport = () => {
  const t = new Http1Transport();
  loop.defer(() => void t.close());
  return t;
};
const req = (url: string, over: Partial<Http1Request> = {}): Http1Request => ({ url: new URL(url), method: 'GET', headers: {}, headersTimeoutMs: 2000, bodyIdleTimeoutMs: 2000, ...over });
const ok = (body: string) => `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`;

describe('issue 12 defect 1: response splitting through Content-Length beside Transfer-Encoding', () => {
  // 47 chunked bytes carrying a forged response; Content-Length says 5.
  const forged = 'HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged';
  const chunked = `${forged.length.toString(16)}\r\n${forged}\r\n0\r\n\r\n`;
  it.each([
    ['Content-Length: 5', 5],
    ['Content-Length: 100', 100],
  ])('refuses the response (%s) and never reuses its connection', async (_n, cl) => {
    const s = await raw((_h, sock, n) => sock.write(n === 1 ? `HTTP/1.1 200 OK\r\nContent-Length: ${cl}\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}` : ok(`answer ${n}`)));
    const t = transport();
    await expect(t.request(req(`${s.url}/a`))).rejects.toThrow(/both Transfer-Encoding and Content-Length/);
    const next = await t.request(req(`${s.url}/b`));
    expect(await next.body.text()).toBe('answer 2');
    expect(s.connections()).toBe(2);
  });
  it('passes on Content-Length only when it frames the body', async () => {
    const s = await raw((_h, sock) => sock.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`));
    const r = await transport().request(req(`${s.url}/`));
    expect(r.headers['content-length']).toBeUndefined();
    expect(await r.body.text()).toBe('abc');
  });
});

describe('issue 12 defect 2: bytes that came with a bodiless response', () => {
  it.each([
    ['HEAD', 'HEAD', 'HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n'],
    ['204', 'GET', 'HTTP/1.1 204 No Content\r\n\r\n'],
    ['304', 'GET', 'HTTP/1.1 304 Not Modified\r\n\r\n'],
    ['Content-Length: 0', 'GET', 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'],
  ] as const)('close the connection after a %s answer; the next request gets its own answer', async (_n, method, head) => {
    const s = await raw((_h, sock, n) => sock.write(n === 1 ? `${head}${ok('forged')}` : ok(`answer ${n}`)));
    const t = transport();
    const first = await t.request(req(`${s.url}/a`, { method }));
    await first.body.dump();
    const next = await t.request(req(`${s.url}/b`));
    expect(await next.body.text()).toBe('answer 2');
    expect(s.connections()).toBe(2);
  });
  it('bytes arriving on an idle connection close it too', async () => {
    const s = await raw((_h, sock, n) => {
      sock.write(ok(`answer ${n}`));
      if (n === 1) setTimeout(() => sock.write(ok('forged')), 20);
    });
    const t = transport();
    expect(await (await t.request(req(`${s.url}/a`))).body.text()).toBe('answer 1');
    await new Promise((r) => setTimeout(r, 80));
    expect(await (await t.request(req(`${s.url}/b`))).body.text()).toBe('answer 2');
    expect(s.connections()).toBe(2);
  });
  it('a body discarded unread closes the connection unless its rest is small and known', async () => {
    const big = 'x'.repeat(200_000);
    const s = await raw((h, sock, n) => sock.write(h.startsWith('GET /big') ? ok(big) : ok(`answer ${n}`)));
    const t = transport();
    await (await t.request(req(`${s.url}/small`))).body.dump();
    await (await t.request(req(`${s.url}/small`))).body.dump();
    expect(s.connections()).toBe(1);
    await (await t.request(req(`${s.url}/big`))).body.dump();
    expect(await (await t.request(req(`${s.url}/small`))).body.text()).toBe('answer 4');
    expect(s.connections()).toBe(2);
  });
});

describe('issue 12 defect 3: retries', () => {
  const client = (url: string, attempts: number, headersMs = 2000) =>
    new UpstreamClient({ name: 'up', url, credentials: anonymousProvider, followRedirects: true, retry: { attempts, baseDelayMs: 5, maxDelayMs: 10 }, timeouts: { headersMs } });

  it('a headers timeout on a reused connection is not retried with attempts: 1', async () => {
    const s = await raw((_h, sock, n) => {
      if (n === 1) sock.write(ok('first'));
    });
    const c = client(s.url, 1, 150);
    expect(await (await c.request({ method: 'GET', path: '/v2/' })).body.text()).toBe('first');
    await expect(c.request({ method: 'GET', path: '/v2/x' })).rejects.toMatchObject({ kind: 'timeout' });
    expect(s.requests).toHaveLength(2);
    await c.close();
  });

  it('a timeout is never retried, whatever the attempts', async () => {
    const s = await raw(() => undefined);
    const c = client(s.url, 3, 100);
    await expect(c.request({ method: 'GET', path: '/v2/' })).rejects.toMatchObject({ kind: 'timeout' });
    expect(s.requests).toHaveLength(1);
    await c.close();
  });

  it('a manifest PUT is sent once, even when its connection is reset before any answer', async () => {
    const s = await raw((h, sock) => {
      if (h.startsWith('PUT')) sock.destroy();
      else sock.write(ok('warm'));
    });
    const c = client(s.url, 3);
    await (await c.request({ method: 'GET', path: '/v2/' })).body.dump(); // a kept-alive connection in the pool
    const put = c.request({ method: 'PUT', path: '/v2/a/manifests/v1', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: Buffer.from('{}') });
    await expect(put).rejects.toBeInstanceOf(UpstreamUnavailableError);
    expect(s.requests.filter((r) => r.head.startsWith('PUT'))).toHaveLength(1);
    await c.close();
  });

  it('a PUT answered 503 is not sent again', async () => {
    const s = await raw((_h, sock) => sock.write('HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n'));
    const c = client(s.url, 3);
    const r = await c.request({ method: 'PUT', path: '/v2/a/manifests/v1', body: Buffer.from('{}') });
    expect(r.statusCode).toBe(503);
    expect(s.requests).toHaveLength(1);
    await c.close();
  });

  it('a GET whose kept-alive connection was closed by the server goes once more on a fresh one, at no attempt', async () => {
    const s = await raw((_h, sock, n) => {
      if (n === 2)
        sock.destroy(); // the race: the server closed the idle connection as the request came
      else sock.write(ok(`answer ${n}`));
    });
    const c = client(s.url, 1);
    expect(await (await c.request({ method: 'GET', path: '/v2/' })).body.text()).toBe('answer 1');
    expect(await (await c.request({ method: 'GET', path: '/v2/' })).body.text()).toBe('answer 3');
    expect(s.requests.map((r) => r.conn)).toEqual([1, 1, 2]);
    await c.close();
  });

  it('a GET that got a broken answer is not retried', async () => {
    const s = await raw((_h, sock) => sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n'));
    const c = client(s.url, 3);
    await expect(c.request({ method: 'GET', path: '/v2/' })).rejects.toMatchObject({ kind: 'protocol' });
    expect(s.requests).toHaveLength(1);
    await c.close();
  });
});

describe('issue 11 defect 10: what an upstream must not smuggle through', () => {
  it.each([
    ['a NUL in a header value', 'HTTP/1.1 200 OK\r\nx-a: a\0b\r\ncontent-length: 0\r\n\r\n', /control character/],
    ['a bare CR in a header value', 'HTTP/1.1 200 OK\r\nlocation: /a\rset-cookie: x\r\ncontent-length: 0\r\n\r\n', /control character/],
    ['a bare LF in a header value', 'HTTP/1.1 200 OK\r\nx-a: a\nb: c\r\ncontent-length: 0\r\n\r\n', /control character/],
    ['an escape character in a header value', 'HTTP/1.1 200 OK\r\nx-a: \x1b[31m\r\ncontent-length: 0\r\n\r\n', /control character/],
    ['DEL in a header value', 'HTTP/1.1 200 OK\r\nx-a: a\x7f\r\ncontent-length: 0\r\n\r\n', /control character/],
    ['status 600', 'HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n', /outside 100-599/],
    ['status 099', 'HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n', /outside 100-599/],
    ['status 000', 'HTTP/1.1 000 Odd\r\ncontent-length: 0\r\n\r\n', /outside 100-599/],
    ['a 101 nobody asked for', 'HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n', /101/],
    ['whitespace before a colon', 'HTTP/1.1 200 OK\r\ncontent-length : 0\r\n\r\n', /bad header line/],
    ['an obs-fold line', 'HTTP/1.1 200 OK\r\nx-a: a\r\n b\r\ncontent-length: 0\r\n\r\n', /bad header line/],
    ['a bad chunk in the first packet', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', /chunk size/],
    ['a 1xx storm', `${'HTTP/1.1 100 Continue\r\n\r\n'.repeat(50)}${ok('late')}`, /too many interim/],
    ['a 204 that claims a body', 'HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n', /204/],
    ['chunked that is not the last coding', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n', /transfer-encoding/],
    ['Transfer-Encoding in HTTP/1.0', 'HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n', /HTTP\/1\.0/],
  ])('refuses %s before the caller sees a response', async (_n, answer, re) => {
    const s = await raw((_h, sock) => sock.write(answer));
    await expect(transport().request(req(`${s.url}/`))).rejects.toThrow(re);
  });
});
