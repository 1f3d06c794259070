/**
 * The malicious-upstream suite (issue 11, "Prove it"; issue 12 defects 1-2): the proxy in front of
 * a raw TCP server on loopback that answers each request with a broken or hostile framing.
 * Whatever it sends, the client gets a clean registry error (502, or 504 for silence) or, once
 * the status line is gone, a cut connection; never a 500, never a forged answer; and the next
 * request, on whatever pooled connection, gets its own right answer.
 * No real registry can be made to send these bytes, so the upstream is this stand-in.
 */
import bcrypt from 'bcryptjs';
import { Loopback, type RawServer } from '@registry-proxy/testing';
import type { Socket } from 'node:net';
import { getGlobalDispatcher } from 'undici';
import { startTestProxy, type TestProxy } from './support/proxy.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const loop = new Loopback();
let upstream: RawServer;
let proxy: TestProxy;
let token: string;

const ok = (body: string) => `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const forged = ok('FORGED');

/** What the hostile upstream sends for the repository named in the request path. */
const CASES: Record<string, (sock: Socket, path: string, method: string) => void> = {
  // Good answers name the request they answer, so an answer meant for another shows.
  good: (s, path, method) => s.write(method === 'HEAD' ? `HTTP/1.1 200 OK\r\ncontent-length: ${path.length}\r\n\r\n` : ok(path)),
  'cl-te': (s) => {
    const chunk = `${forged.length.toString(16)}\r\n${forged}\r\n0\r\n\r\n`;
    s.write(`HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n${chunk}`);
  },
  'cl-te-long': (s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
  short: (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this'),
  'bad-chunk': (s) => s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n'),
  'bad-chunk-later': (s) => {
    s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
    setTimeout(() => s.write('zz\r\n'), 30);
  },
  '1xx-storm': (s) => s.write(`${'HTTP/1.1 100 Continue\r\n\r\n'.repeat(100)}${ok('late')}`),
  'stray-after-head': (s, path) => s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${path.length}\r\n\r\n${forged}`),
  'stray-after-204': (s) => s.write(`HTTP/1.1 204 No Content\r\n\r\n${forged}`),
  'huge-head': (s) => s.write(`HTTP/1.1 200 OK\r\nx-pad: ${'a'.repeat(100_000)}\r\ncontent-length: 0\r\n\r\n`),
  silence: () => undefined,
  'header-crlf': (s) => s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\rset-cookie: x=1\r\ncontent-length: 0\r\n\r\n'),
  'header-nul': (s) => s.write('HTTP/1.1 200 OK\r\ndocker-content-digest: sha256:\0\r\ncontent-length: 0\r\n\r\n'),
  'status-600': (s) => s.write('HTTP/1.1 600 Weird\r\ncontent-length: 0\r\n\r\n'),
  'status-099': (s) => s.write('HTTP/1.1 099 Weird\r\ncontent-length: 0\r\n\r\n'),
  'not-http': (s) => s.write('SSH-2.0-OpenSSH_9.6\r\n\r\n'),
  'reset-now': (s) => s.destroy(),
};

beforeAll(async () => {
  upstream = await loop.raw((head, s) => {
    const [method = '', path = ''] = (head.split('\r\n')[0] ?? '').split(' ');
    const repo = /^\/v2\/ns\/([^/]+)\//.exec(path)?.[1] ?? 'good';
    (CASES[repo] ?? (CASES['good'] as NonNullable<(typeof CASES)['good']>))(s, path, method);
  });
  proxy = await startTestProxy({
    auth: [{ type: 'static', users: [{ username: 'u', passwordHash: bcrypt.hashSync('p', 4) }] }],
    rules: [{ account: 'u', repository: '**', actions: ['pull'] }],
    upstreams: [{ name: 'evil', prefix: 'x', namespace: 'ns', url: upstream.url, coalesce: false, timeouts: { headersMs: 300, bodyIdleMs: 300 }, attempts: 1 }],
  });
  const scopes = Object.keys(CASES).map((c) => `scope=${encodeURIComponent(`repository:x/${c}:pull`)}`);
  const res = await fetch(`${proxy.url}/token?service=registry-proxy&${scopes.join('&')}`, {
    headers: { authorization: `Basic ${Buffer.from('u:p').toString('base64')}` },
  });
  token = ((await res.json()) as { token: string }).token;
});

afterAll(async () => {
  await proxy.close();
  loop.closeAll();
  await getGlobalDispatcher().close();
});

const get = (path: string, method = 'GET') => fetch(`${proxy.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });

/** The next requests, two at once so that both a pooled and a fresh connection serve one, get their own answers. */
async function nextAnswersAreRight(): Promise<void> {
  const paths = ['/v2/ns/good/blobs/one', '/v2/ns/good/blobs/two'];
  const answers = await Promise.all([get(`/v2/x/good/blobs/${DIGEST}?one`), get(`/v2/x/good/blobs/${DIGEST}?two`)]);
  for (const [i, a] of answers.entries()) {
    expect(a.status).toBe(200);
    expect(await a.text()).toBe(`${(paths[i] as string).replace(/\/(one|two)$/, `/${DIGEST}`)}`);
  }
}

describe('a malicious upstream', () => {
  const warnsAboutEvil = (from: number) => proxy.logs.slice(from).some((l) => l.includes('"level":40') && l.includes('upstream evil'));

  it.each([
    ['Content-Length beside Transfer-Encoding (forged response inside)', 'cl-te', 502],
    ['Content-Length: 100 beside 5 chunked bytes', 'cl-te-long', 502],
    ['a bad chunk in the first packet', 'bad-chunk', 502],
    ['a 1xx storm', '1xx-storm', 502],
    ['an oversized head', 'huge-head', 502],
    ['CR inside a header value', 'header-crlf', 502],
    ['NUL inside a header value', 'header-nul', 502],
    ['status 600', 'status-600', 502],
    ['status 099', 'status-099', 502],
    ['something that is not HTTP', 'not-http', 502],
    ['a reset before any answer', 'reset-now', 502],
    ['silence', 'silence', 504],
  ])('%s: a registry error, a warning naming the upstream, and the next answers are right', async (_n, repo, status) => {
    const logged = proxy.logs.length;
    for (const path of [`/v2/x/${repo}/blobs/${DIGEST}`, `/v2/x/${repo}/manifests/v1`]) {
      const res = await get(path);
      expect(res.status).toBe(status);
      const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
      expect(body.errors[0]?.code).toBe(status === 504 ? 'UNAVAILABLE' : 'BAD_GATEWAY');
    }
    expect(warnsAboutEvil(logged)).toBe(true);
    expect(proxy.logs.slice(logged).some((l) => l.includes('"statusCode":500') || l.includes('UNKNOWN'))).toBe(false);
    await nextAnswersAreRight();
  });

  it.each([
    ['a short body', 'short'],
    ['a bad chunk after the first packet', 'bad-chunk-later'],
  ])('%s after the status line: the client connection is cut, never a complete wrong body', async (_n, repo) => {
    const res = await get(`/v2/x/${repo}/blobs/${DIGEST}`);
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow();
    await nextAnswersAreRight();
  });

  it.each([
    ['a HEAD answer', 'stray-after-head', 'HEAD', 200],
    ['a 204', 'stray-after-204', 'GET', 204],
  ])('stray bytes after %s are never taken for the next answer', async (_n, repo, method, status) => {
    const before = upstream.connections();
    for (let i = 0; i < 3; i++) {
      const res = await get(`/v2/x/${repo}/manifests/v1`, method);
      expect(res.status).toBe(status);
      await res.arrayBuffer();
      await nextAnswersAreRight();
    }
    expect(upstream.connections()).toBeGreaterThan(before);
  });
});
