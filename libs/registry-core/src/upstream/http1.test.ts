import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { ChunkedDecoder } from './body.js';
import { createTestCa, Loopback } from '@registry-proxy/testing';
import { Http1Transport, type Http1Request } from './http1.js';

const loop = new Loopback();
afterEach(() => loop.closeAll());

const listen = async (server: Server) => `127.0.0.1:${await loop.listen(server)}`;
async function http(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createHttpServer(handler);
  let connections = 0;
  server.on('connection', () => connections++);
  const host = await listen(server);
  return { url: `http://${host}`, connections: () => connections };
}
/** A TCP server that answers every request with fixed raw bytes, for framing the http module would not produce. */
const raw = async (answer: (request: string, socket: Socket) => void) => (await loop.raw(answer)).url;

const transport = (o = {}) => {
  const t = new Http1Transport(o);
  loop.defer(() => void t.close());
  return t;
};
const req = (url: string, over: Partial<Http1Request> = {}): Http1Request => ({ url: new URL(url), method: 'GET', headers: {}, headersTimeoutMs: 2000, bodyIdleTimeoutMs: 2000, ...over });

describe('Http1Transport', () => {
  it('keeps connections alive across GET and HEAD', async () => {
    const s = await http((_q, res) => {
      res.setHeader('content-length', '5');
      res.end(_q.method === 'HEAD' ? undefined : 'hello');
    });
    const t = transport();
    for (let i = 0; i < 5; i++) {
      const head = await t.request(req(`${s.url}/x`, { method: 'HEAD' }));
      expect(head.headers['content-length']).toBe('5');
      await head.body.dump();
      const get = await t.request(req(`${s.url}/x`));
      expect(await get.body.text()).toBe('hello');
    }
    expect(s.connections()).toBe(1);
  });

  it('keeps as many idle connections as 100 requests at once needed, instead of reopening them', async () => {
    const s = await http((_q, res) => setTimeout(() => res.end('ok'), 20));
    const t = transport();
    const round = () => Promise.all(Array.from({ length: 100 }, async () => (await t.request(req(`${s.url}/x`))).body.text()));
    await round();
    expect(s.connections()).toBe(100);
    await round();
    expect(s.connections()).toBe(100);
  });

  it('relays a large body intact, in large reads, with backpressure', async () => {
    const data = randomBytes(24 << 20);
    const s = await http((_q, res) => {
      res.setHeader('content-length', String(data.length));
      res.end(data);
    });
    const r = await transport().request(req(`${s.url}/blob`));
    const hash = createHash('sha256');
    let chunks = 0;
    let biggest = 0;
    for await (const c of r.body as AsyncIterable<Buffer>) {
      hash.update(c);
      chunks++;
      biggest = Math.max(biggest, c.length);
      if (chunks === 2) {
        // A slow reader: the transport must pause, not buffer the rest of the body.
        await new Promise((res) => setTimeout(res, 100));
        expect(r.body.readableLength).toBeLessThanOrEqual(2 << 20);
      }
    }
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(biggest).toBeGreaterThan(64 * 1024);
  });

  it('reuses the memory of released chunks, and never hands out a buffer still in use', async () => {
    const data = randomBytes(16 << 20);
    const s = await http((_q, res) => {
      res.setHeader('content-length', String(data.length));
      res.end(data);
    });
    const t = transport();
    const seen = new Set<ArrayBufferLike>();
    let reused = 0;
    for (let round = 0; round < 2; round++) {
      const r = await t.request(req(`${s.url}/blob`));
      const hash = createHash('sha256');
      const held: Buffer[] = [];
      for await (const c of r.body as AsyncIterable<Buffer>) {
        if (seen.has(c.buffer)) reused++;
        seen.add(c.buffer);
        hash.update(c);
        held.push(c);
        // Release all but the last two chunks: those must not be overwritten while held.
        while (held.length > 2) r.body.release(held.shift() as Buffer);
      }
      expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
      const copy = Buffer.concat(held);
      for (const c of held) r.body.release(c);
      for (const c of held) r.body.release(c); // a second release is ignored
      r.body.release(Buffer.alloc(10)); // so is a buffer the pool never lent
      expect(copy.equals(data.subarray(data.length - copy.length))).toBe(true);
    }
    expect(reused).toBeGreaterThan(0);
  });

  it('does not cut a transfer on a reused connection when its old idle timer would have fired', async () => {
    let n = 0;
    const s = await http((_q, res) => {
      n++;
      if (n === 1) {
        res.setHeader('content-length', '2');
        res.end('ok');
        return;
      }
      // The second response takes longer than the pool's idle timeout to arrive in full.
      res.setHeader('content-length', '6');
      res.write('abc');
      setTimeout(() => res.end('def'), 400);
    });
    const t = transport({ idleTimeoutMs: 300 });
    expect(await (await t.request(req(`${s.url}/a`))).body.text()).toBe('ok');
    await new Promise((r) => setTimeout(r, 100));
    expect(await (await t.request(req(`${s.url}/b`))).body.text()).toBe('abcdef');
    expect(s.connections()).toBe(1);
  });

  it('closes a connection idle for the idle timeout each time it goes back, though that timer ran out while it was in use', async () => {
    let n = 0;
    const s = await http((_q, res) => {
      n++;
      // The second answer takes longer than the idle timeout.
      setTimeout(() => res.end('ok'), n === 2 ? 250 : 0);
    });
    const t = transport({ idleTimeoutMs: 100 });
    expect(await (await t.request(req(`${s.url}/a`))).body.text()).toBe('ok');
    expect(await (await t.request(req(`${s.url}/b`))).body.text()).toBe('ok');
    expect(s.connections()).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(await (await t.request(req(`${s.url}/c`))).body.text()).toBe('ok');
    expect(s.connections()).toBe(2);
  });

  it('gives every request on a kept-alive connection its headers timeout, also after that timer ran out while idle', async () => {
    let n = 0;
    const url = await raw((_h, s) => {
      if (++n < 3) s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'); // the third gets no answer
    });
    const t = transport();
    expect(await (await t.request(req(`${url}/`, { headersTimeoutMs: 100 }))).body.text()).toBe('ok');
    await new Promise((r) => setTimeout(r, 200));
    expect(await (await t.request(req(`${url}/`, { headersTimeoutMs: 100 }))).body.text()).toBe('ok');
    const started = Date.now();
    await expect(t.request(req(`${url}/`, { headersTimeoutMs: 100 }))).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('does not count a slow reader against the upstream idle timeout', async () => {
    const data = randomBytes(24 << 20);
    const s = await http((_q, res) => {
      res.setHeader('content-length', String(data.length));
      res.end(data);
    });
    const r = await transport().request(req(`${s.url}/blob`, { bodyIdleTimeoutMs: 150 }));
    let n = 0;
    let got = 0;
    for await (const c of r.body as AsyncIterable<Buffer>) {
      got += c.length;
      // The reader stalls for longer than the idle timeout while the upstream has plenty to send.
      if (++n === 2) await new Promise((res) => setTimeout(res, 500));
    }
    expect(got).toBe(data.length);
  });

  it('decodes chunked bodies, however the bytes are split', async () => {
    const url = await raw((_r, s) => {
      const msg = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nx-trailer: t\r\n\r\n';
      let i = 0;
      const drip = () => {
        if (i >= msg.length) return;
        s.write(msg.slice(i, i + 3));
        i += 3;
        setImmediate(drip);
      };
      drip();
    });
    const t = transport();
    expect(await (await t.request(req(`${url}/a`))).body.text()).toBe('hello world!');
    expect(await (await t.request(req(`${url}/b`))).body.text()).toBe('hello world!');
  });

  it('reads a body delimited by close, and does not reuse that connection', async () => {
    let n = 0;
    const url = await raw((_r, s) => {
      n++;
      s.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end');
    });
    const t = transport();
    expect(await (await t.request(req(`${url}/a`))).body.text()).toBe('until the end');
    expect(await (await t.request(req(`${url}/a`))).body.text()).toBe('until the end');
    expect(n).toBe(2);
  });

  it('skips interim 1xx responses and keeps repeated headers', async () => {
    const url = await raw((_r, s) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nlink: <a>\r\nlink: <b>\r\ncontent-length: 2\r\n\r\nok'));
    const r = await transport().request(req(`${url}/`));
    expect(r.headers['link']).toEqual(['<a>', '<b>']);
    expect(await r.body.text()).toBe('ok');
  });

  it("notices a kept-alive connection the server closed while idle, and opens a new one (retries are retry.ts's)", async () => {
    let first = true;
    const url = await raw((_r, s) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      if (first) {
        first = false;
        // The server closes its side right after the response, as idle servers do.
        setTimeout(() => s.destroy(), 20);
      }
    });
    const t = transport();
    expect(await (await t.request(req(`${url}/`))).body.text()).toBe('ok');
    await new Promise((r) => setTimeout(r, 60));
    expect(await (await t.request(req(`${url}/`))).body.text()).toBe('ok');
  });

  it.each([
    ['a bad status line', 'HTTP/2 200\r\n\r\n', /bad status line/],
    ['a bad header line', 'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', /bad header line/],
    ['conflicting lengths', 'HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n', /content-length/],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', /chunk size/],
  ])('rejects %s', async (_l, answer, re) => {
    const url = await raw((_r, s) => s.write(answer));
    const t = transport();
    const r = t.request(req(`${url}/`));
    await expect(r.then((x) => x.body.text())).rejects.toThrow(re);
  });

  it('rejects oversized headers', async () => {
    const url = await raw((_r, s) => s.write(`HTTP/1.1 200 OK\r\nx: ${'a'.repeat(70_000)}\r\n\r\n`));
    await expect(transport().request(req(`${url}/`))).rejects.toThrow(/headers too large/);
  });

  it('fails a body cut short', async () => {
    const url = await raw((_r, s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort'));
    const r = await transport().request(req(`${url}/`));
    await expect(r.body.text()).rejects.toThrow();
  });

  it('times out waiting for headers, and on a stalled body', async () => {
    const silent = await raw(() => undefined);
    await expect(transport().request(req(`${silent}/`, { headersTimeoutMs: 100 }))).rejects.toMatchObject({ name: 'TimeoutError' });
    const stall = await raw((_r, s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'));
    const r = await transport().request(req(`${stall}/`, { bodyIdleTimeoutMs: 100 }));
    await expect(r.body.text()).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('times out connecting (a TLS handshake that never completes)', async () => {
    const silent = await raw(() => undefined);
    const t = transport({ connectTimeoutMs: 100 });
    const started = Date.now();
    await expect(t.request(req(silent.replace('http:', 'https:') + '/'))).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('fails fast when nothing listens', async () => {
    const probe = createTcpServer();
    const host = await listen(probe);
    probe.close();
    await expect(transport().request(req(`http://${host}/`))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('aborts before headers and mid-body', async () => {
    const silent = await raw(() => undefined);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('client left')), 30);
    await expect(transport().request(req(`${silent}/`, { signal: ac.signal }))).rejects.toThrow('client left');
    const s = await http((_q, res) => {
      res.setHeader('content-length', String(10 << 20));
      res.write(Buffer.alloc(1 << 16));
    });
    const ac2 = new AbortController();
    const r = await transport().request(req(`${s.url}/`, { signal: ac2.signal }));
    ac2.abort(new Error('gone'));
    await expect(r.body.text()).rejects.toThrow();
  });

  it('refuses header injection', async () => {
    const s = await http((_q, res) => res.end());
    await expect(transport().request(req(`${s.url}/`, { headers: { accept: 'a\r\nx-evil: 1' } }))).rejects.toBeInstanceOf(TypeError);
    await expect(transport().request(req(`${s.url}/`, { headers: { 'bad name': 'x' } }))).rejects.toBeInstanceOf(TypeError);
  });

  it('speaks TLS, verifying the server against the given CA', async () => {
    const ca = createTestCa();
    const { keyFile, certFile } = ca.issue('upstream');
    const tls = { key: readFileSync(keyFile), cert: readFileSync(certFile) };
    const data = randomBytes(3 << 20);
    const server = createHttpsServer(tls, (_q, res) => {
      res.setHeader('content-length', String(data.length));
      res.end(data);
    });
    const host = await listen(server);
    const r = await transport({ ca: ca.caPem }).request(req(`https://${host}/`));
    const got: Buffer[] = [];
    for await (const c of r.body as AsyncIterable<Buffer>) got.push(c);
    expect(Buffer.concat(got).equals(data)).toBe(true);
    await expect(transport().request(req(`https://${host}/`))).rejects.toThrow(/self.signed|certificate/i);
  });
});

describe('ChunkedDecoder', () => {
  it('returns what follows the last chunk', () => {
    const d = new ChunkedDecoder();
    const out: string[] = [];
    const rest = d.push(Buffer.from('3\r\nabc\r\n0\r\n\r\nNEXT'), (b) => out.push(b.toString()));
    expect(out.join('')).toBe('abc');
    expect(d.done).toBe(true);
    expect(rest?.toString()).toBe('NEXT');
  });
});

describe('Http1Transport request bodies', () => {
  /** An upstream that echoes what it received: method, framing headers, digest and length of the body. */
  async function echo() {
    return http((q, res) => {
      const h = createHash('sha256');
      let n = 0;
      q.on('data', (d: Buffer) => (h.update(d), (n += d.length)));
      q.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ method: q.method, te: q.headers['transfer-encoding'] ?? null, cl: q.headers['content-length'] ?? null, n, sha: h.digest('hex') }));
      });
    });
  }
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  it('sends a Buffer with its length, and reuses the connection afterwards', async () => {
    const s = await echo();
    const t = transport();
    const data = randomBytes(100_000);
    const r = await t.request(req(`${s.url}/v2/x/manifests/1`, { method: 'PUT', body: data }));
    expect(JSON.parse(await r.body.text())).toEqual({ method: 'PUT', te: null, cl: '100000', n: 100_000, sha: sha(data) });
    await (await t.request(req(`${s.url}/v2/`))).body.dump();
    expect(s.connections()).toBe(1);
  });

  it('streams a body of unknown length chunked, and one of known length as it is', async () => {
    const s = await echo();
    const t = transport();
    const parts = [randomBytes(3 << 20), randomBytes(17), randomBytes(1 << 20)];
    const all = Buffer.concat(parts);
    const { Readable } = await import('node:stream');
    const r1 = await t.request(req(`${s.url}/up`, { method: 'PATCH', body: Readable.from(parts) }));
    expect(JSON.parse(await r1.body.text())).toEqual({ method: 'PATCH', te: 'chunked', cl: null, n: all.length, sha: sha(all) });
    const r2 = await t.request(req(`${s.url}/up`, { method: 'PUT', headers: { 'content-length': String(all.length) }, body: Readable.from(parts) }));
    expect(JSON.parse(await r2.body.text())).toEqual({ method: 'PUT', te: null, cl: String(all.length), n: all.length, sha: sha(all) });
  });

  it('stops sending when the upstream answers early, and does not reuse that connection', async () => {
    const s = await http((_q, res) => {
      res.statusCode = 413;
      res.end('too big');
    });
    const t = transport();
    const { PassThrough } = await import('node:stream');
    const src = new PassThrough();
    src.write(randomBytes(64 * 1024));
    const r = await t.request(req(`${s.url}/up`, { method: 'PATCH', body: src }));
    expect(r.statusCode).toBe(413);
    expect(await r.body.text()).toBe('too big');
    src.end(randomBytes(1024)); // the rest is drained, not stuck
    await new Promise((resolve) => src.once('end', resolve));
    await (await t.request(req(`${s.url}/v2/`))).body.dump();
    expect(s.connections()).toBe(2);
  });

  it('fails the request when the source breaks, instead of sending a short body', async () => {
    let got = -1;
    let ended = false;
    const s = await http((q, res) => {
      got = 0;
      q.on('data', (d: Buffer) => (got += d.length));
      q.on('end', () => ((ended = true), res.end('ok')));
      q.on('error', () => undefined);
    });
    const t = transport();
    const { PassThrough } = await import('node:stream');
    const src = new PassThrough();
    const p = t.request(req(`${s.url}/up`, { method: 'PATCH', headers: { 'content-length': '1000000' }, body: src }));
    src.write(randomBytes(1000));
    setTimeout(() => src.destroy(new Error('client went away')), 50);
    await expect(p).rejects.toThrow(/client went away/);
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toBeGreaterThanOrEqual(0);
    expect(ended).toBe(false);
  });

  it('gives a slow upstream the headers timeout only after the body is sent', async () => {
    const s = await http((q, res) => {
      q.resume();
      q.on('end', () => setTimeout(() => res.end('late'), 300));
    });
    const t = transport();
    const { Readable } = await import('node:stream');
    async function* slow() {
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, 100));
        yield randomBytes(1000);
      }
    }
    // 500 ms of upload plus 300 ms of thinking: more than the 400 ms headers timeout in total, less than it after the upload.
    const r = await t.request(req(`${s.url}/up`, { method: 'PATCH', headersTimeoutMs: 400, body: Readable.from(slow()) }));
    expect(await r.body.text()).toBe('late');
  });
});
