/**
 * The transport's less travelled paths, each against a real loopback server: HTTP/1.0
 * keep-alive, bodies discarded on error or unread, connection reuse after odd framings,
 * aborts, closed transports, TLS to a vetted address, and the retry layer's own edges.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { BodyTooLargeError, ChunkedDecoder } from './body.js';
import { BIG_READ, releaseChunk, takeBig } from './buffer-pool.js';
import { vetRedirect } from './destination.js';
import { NoResponseError, UpstreamUnavailableError } from './errors.js';
import { createTestCa, Loopback } from '@registry-proxy/testing';
import { Http1Transport, type Http1Request } from './http1.js';
import { classify, withRetry } from './retry.js';

const loop = new Loopback();
afterEach(() => loop.closeAll());
const listen = (server: Server) => loop.listen(server);
/** A TCP server calling `answer` per request head; counts connections. */
const raw = (answer: (head: string, s: Socket, n: number) => void) => loop.raw(answer);
const transport = (o = {}) => {
  const t = new Http1Transport(o);
  loop.defer(() => void t.close());
  return t;
};
const req = (url: string, over: Partial<Http1Request> = {}): Http1Request => ({ url: new URL(url), method: 'GET', headers: {}, headersTimeoutMs: 2000, bodyIdleTimeoutMs: 2000, ...over });
const ok = (body: string, extra = '') => `HTTP/1.1 200 OK\r\n${extra}content-length: ${body.length}\r\n\r\n${body}`;

describe('HTTP/1.0 and connection reuse', () => {
  it('keeps an HTTP/1.0 connection only when the server says keep-alive', async () => {
    const s = await raw((h, sock, n) =>
      sock.write(h.includes('/ka') ? `HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nk${n}` : `HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\np${n}`),
    );
    const t = transport();
    expect(await (await t.request(req(`${s.url}/ka`))).body.text()).toBe('k1');
    expect(await (await t.request(req(`${s.url}/ka`))).body.text()).toBe('k2');
    expect(s.connections()).toBe(1);
    expect(await (await t.request(req(`${s.url}/plain`))).body.text()).toBe('p3');
    expect(await (await t.request(req(`${s.url}/ka`))).body.text()).toBe('k4');
    expect(s.connections()).toBe(2);
  });
  it('does not reuse a connection the server asked to close, or one whose chunked body was followed by more', async () => {
    const s = await raw((h, sock, n) =>
      sock.write(h.includes('/close') ? ok(`c${n}`, 'Connection: close\r\n') : h.includes('/more') ? `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nm${n}\r\n0\r\n\r\nJUNK` : ok(`a${n}`)),
    );
    const t = transport();
    expect(await (await t.request(req(`${s.url}/close`))).body.text()).toBe('c1');
    expect(await (await t.request(req(`${s.url}/more`))).body.text()).toBe('m2');
    expect(await (await t.request(req(`${s.url}/`))).body.text()).toBe('a3');
    expect(s.connections()).toBe(3);
  });
  it('reads a repeated header as a list, and a close-delimited body after an unknown coding', async () => {
    const s = await raw((_h, sock) => sock.end('HTTP/1.1 200 OK\r\nx-a: 1\r\nx-a: 2\r\nx-a: 3\r\ntransfer-encoding: gzip\r\n\r\nraw bytes'));
    const r = await transport().request(req(`${s.url}/`));
    expect(r.headers['x-a']).toEqual(['1', '2', '3']);
    expect(await r.body.text()).toBe('raw bytes');
  });
  it('drops the idle connections of an upstream whose kept-alive one was found closed', async () => {
    const s = await raw((_h, sock, n) => {
      if (n === 3) sock.destroy();
      else sock.write(ok(`r${n}`));
    });
    const t = transport();
    const [a, b] = await Promise.all([t.request(req(`${s.url}/`)), t.request(req(`${s.url}/`))]);
    await a.body.dump();
    await b.body.dump();
    await expect(t.request(req(`${s.url}/`))).rejects.toBeInstanceOf(NoResponseError);
    expect(await (await t.request(req(`${s.url}/`))).body.text()).toBe('r4');
    expect(s.connections()).toBe(3);
  });
});

describe('reads that end at awkward places', () => {
  it('an interim response alone in a read, then a head alone, then its body', async () => {
    const s = await raw((_h, sock) => {
      sock.write('HTTP/1.1 100 Continue\r\n\r\n');
      setTimeout(() => sock.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n'), 20);
      setTimeout(() => sock.write('hello'), 40);
    });
    const r = await transport().request(req(`${s.url}/`));
    expect(await r.body.text()).toBe('hello');
  });
  it('sends a Buffer body with the length the caller gave, and streams an empty-chunk source', async () => {
    const { Readable } = await import('node:stream');
    let got = '';
    const server = createServer((sock) =>
      sock.on('data', (d) => {
        got += d.toString('latin1');
        if (got.endsWith('0\r\n\r\n') || got.endsWith('\r\n\r\nabc')) sock.write(ok('done'));
      }),
    );
    const port = await listen(server);
    const t = transport();
    const r1 = await t.request(req(`http://127.0.0.1:${port}/`, { method: 'PUT', headers: { 'content-length': '3' }, body: Buffer.from('abc') }));
    expect(await r1.body.text()).toBe('done');
    expect(got.match(/content-length/gi)).toHaveLength(1);
    got = '';
    // Readable.from is in object mode: it hands on an empty Buffer, which must not end the chunked body.
    const r2 = await t.request(req(`http://127.0.0.1:${port}/`, { method: 'PATCH', body: Readable.from([Buffer.alloc(0), Buffer.from('xyz')]) }));
    expect(await r2.body.text()).toBe('done');
    expect(got).toContain('3\r\nxyz\r\n0\r\n\r\n');
  });
  it('refuses a request whose signal was aborted with an Error before it was sent', async () => {
    const s = await raw((_h, sock) => sock.write(ok('x')));
    const ac = new AbortController();
    ac.abort(new Error('caller gone'));
    await expect(transport().request(req(`${s.url}/`, { signal: ac.signal }))).rejects.toThrow(/caller gone/);
  });
});

describe('bodies discarded', () => {
  it('a small known remainder is read and thrown away, and the connection kept', async () => {
    const s = await raw((h, sock, n) => {
      if (!h.includes('/slow')) return void sock.write(ok(`r${n}`));
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 20000\r\n\r\nstart');
      setTimeout(() => sock.write('x'.repeat(19_995)), 30);
    });
    const t = transport();
    const r = await t.request(req(`${s.url}/slow`));
    const ended = new Promise((resolve) => r.body.once('end', resolve));
    await r.body.dump();
    await ended; // read to its end off the wire, then pooled
    expect(await (await t.request(req(`${s.url}/`))).body.text()).toBe('r2');
    expect(s.connections()).toBe(1);
  });
  it('a body over the reader limit is refused and its connection dropped', async () => {
    const s = await raw((_h, sock, n) => {
      if (n > 1) return void sock.write(ok(`r${n}`));
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\nxxxxx');
      setTimeout(() => sock.write('x'.repeat(199_995)), 30);
    });
    const t = transport();
    const r = await t.request(req(`${s.url}/`));
    await expect(r.body.bytes(100)).rejects.toBeInstanceOf(BodyTooLargeError);
    await r.body.dump(); // after destruction: nothing to do
    expect(await (await t.request(req(`${s.url}/`))).body.text()).toBe('r2');
    expect(s.connections()).toBe(2);
  });
  it('a body that failed is not read again, and dump() of a finished body is a no-op', async () => {
    const s = await raw((_h, sock) => sock.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'));
    const r = await transport().request(req(`${s.url}/`));
    await expect(r.body.bytes()).rejects.toThrow(/closed/);
    await r.body.dump();
    const s2 = await raw((_h, sock) => sock.write(ok('fine')));
    const r2 = await transport().request(req(`${s2.url}/`));
    expect(await r2.body.text()).toBe('fine');
    await r2.body.dump();
  });
  it('refuses an endless chunk-size line', () => {
    expect(() => new ChunkedDecoder().push(Buffer.from('f'.repeat(5000)), () => undefined)).toThrow(/too long/);
  });
});

describe('requests that never start', () => {
  it('refuses on a closed transport, and on a signal aborted before sending', async () => {
    const s = await raw((_h, sock) => sock.write(ok('x')));
    const t = transport();
    const ac = new AbortController();
    ac.abort('not an Error');
    await expect(t.request(req(`${s.url}/`, { signal: ac.signal }))).rejects.toThrow(/aborted/);
    const mid = new AbortController();
    const silent = await raw(() => undefined);
    setTimeout(() => mid.abort('also not an Error'), 30);
    await expect(t.request(req(`${silent.url}/`, { signal: mid.signal }))).rejects.toThrow(/aborted/);
    await t.close();
    await expect(t.request(req(`${s.url}/`))).rejects.toThrow(/transport closed/);
  });
  it('uses the scheme default port', async () => {
    // Nothing listens on loopback's 80/443 here: the point is where it went.
    for (const url of ['http://127.0.0.1/', 'https://127.0.0.1/']) {
      await expect(transport({ connectTimeoutMs: 2000 }).request(req(url))).rejects.toMatchObject({ message: expect.stringMatching(/ECONNREFUSED|127\.0\.0\.1:(80|443)/) });
    }
  });
  it('streams a body that has empty chunks', async () => {
    let got = '';
    const s = await raw((_h, sock) => sock.write(ok('done')));
    const server = createServer((sock) => {
      sock.on('data', (d) => {
        got += d.toString('latin1');
        if (got.endsWith('0\r\n\r\n')) sock.write(ok('done'));
      });
    });
    const port = await listen(server);
    void s;
    const src = new PassThrough();
    const p = transport().request(req(`http://127.0.0.1:${port}/`, { method: 'PATCH', body: src }));
    src.write(Buffer.alloc(0));
    src.write('abc');
    src.end();
    expect(await (await p).body.text()).toBe('done');
    expect(got).toContain('3\r\nabc\r\n0\r\n\r\n');
  });
});

describe('TLS to a vetted address', () => {
  it('verifies the certificate against the URL host while connecting to the given address', async () => {
    const ca = createTestCa();
    const { keyFile, certFile } = ca.issue('upstream', ['storage.test']);
    const tls = { key: readFileSync(keyFile), cert: readFileSync(certFile) };
    const server = createHttpsServer(tls, (q, res) => res.end(`host ${q.headers.host}`));
    const port = await listen(server as unknown as Server);
    const t = transport({ ca: ca.caPem });
    const r = await t.request(req(`https://storage.test:${port}/b`, { connectTo: '127.0.0.1' }));
    expect(await r.body.text()).toBe(`host storage.test:${port}`);
    await expect(t.request(req(`https://other.test:${port}/b`, { connectTo: '127.0.0.1' }))).rejects.toThrow(/altnames|does not match/i);
  });
});

describe('retry edges', () => {
  it('passes an UpstreamUnavailableError through, and stops on an aborted signal before an attempt', async () => {
    const e = new UpstreamUnavailableError('up', 'status', 'x');
    expect(classify('up', e)).toBe(e);
    expect(classify('up', 'a string').message).toMatch(/a string/);
    const ac = new AbortController();
    ac.abort(new Error('gone'));
    await expect(
      withRetry(
        'up',
        { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
        'GET',
        ac.signal,
        async () => ({ statusCode: 200 }),
        async () => undefined,
      ),
    ).rejects.toMatchObject({ kind: 'connection' });
    await expect(
      withRetry(
        'up',
        { attempts: 0, baseDelayMs: 1, maxDelayMs: 1 },
        'GET',
        undefined,
        async () => ({ statusCode: 200 }),
        async () => undefined,
      ),
    ).rejects.toThrow(/no attempt/);
  });
  it('retries a refused connection for GET, within the attempts', async () => {
    let n = 0;
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    await expect(
      withRetry(
        'up',
        { attempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
        'GET',
        undefined,
        async () => (n++, Promise.reject(refused)),
        async () => undefined,
      ),
    ).rejects.toMatchObject({ kind: 'connection' });
    expect(n).toBe(3);
  });
});

describe('redirect vetting with the system resolver', () => {
  it('resolves localhost and refuses it', async () => {
    await expect(vetRedirect('up', new URL('http://reg.example'), new URL('http://localhost:1/'), new Set())).rejects.toMatchObject({ kind: 'redirect' });
  });
});

describe('buffer pool', () => {
  it('keeps at most its bound of released buffers, and ignores foreign and second releases', () => {
    const lent = Array.from({ length: 40 }, () => takeBig());
    for (const b of lent) releaseChunk(b.subarray(0, 10));
    releaseChunk(lent[0] as Buffer);
    releaseChunk(Buffer.alloc(10));
    const again = Array.from({ length: 40 }, () => takeBig());
    expect(again.filter((b) => lent.some((l) => l.buffer === b.buffer)).length).toBeLessThanOrEqual(32);
    expect(again.every((b) => b.length === BIG_READ)).toBe(true);
    for (const b of again) releaseChunk(b);
  });
});

describe('pool and framing corners', () => {
  it('two kept connections that both die unanswered are each reported as stale, and the pool starts afresh', async () => {
    // Each connection answers its first request and drops the second unanswered: the shape of
    // a server that closed idle connections while the requests were on their way.
    const seen = new WeakMap<Socket, number>();
    const s = await raw((_h, sock) => {
      const k = (seen.get(sock) ?? 0) + 1;
      seen.set(sock, k);
      if (k === 1) sock.write(ok('hi'));
      else sock.destroy();
    });
    const t = transport();
    const first = await Promise.all([t.request(req(`${s.url}/a`)), t.request(req(`${s.url}/b`))]);
    for (const r of first) expect(await r.body.text()).toBe('hi');
    const again = await Promise.allSettled([t.request(req(`${s.url}/a`)), t.request(req(`${s.url}/b`))]);
    for (const r of again) expect(r).toMatchObject({ status: 'rejected', reason: { reusedConnection: true } });
    expect(again[0]?.status === 'rejected' && again[0].reason).toBeInstanceOf(NoResponseError);
    expect(await (await t.request(req(`${s.url}/c`))).body.text()).toBe('hi');
    expect(s.connections()).toBe(3);
  });

  it('reads Transfer-Encoding sent as two header lines as one list (chunked last: chunked)', async () => {
    const s = await raw((_h, sock) => sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'));
    const t = transport();
    expect(await (await t.request(req(`${s.url}/`))).body.text()).toBe('ok');
    expect(await (await t.request(req(`${s.url}/`))).body.text()).toBe('ok');
    expect(s.connections()).toBe(1);
  });
});
