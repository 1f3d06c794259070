/**
 * Outbound proxies that misbehave, and what goes on the wire to them. Each "proxy" here is a raw
 * TCP server that writes exactly the bytes under test (a CONNECT answer split, oversized, with
 * bytes after it, without a status line, never sent) and records the request it was sent.
 */
import type { Socket } from 'node:net';
import { Loopback } from '@registry-proxy/testing';
import { Http1Transport, type Http1Request } from './http1.js';
import { outboundProxyFromEnv, proxyAddress, proxyFor } from './outbound-proxy.js';

const loop = new Loopback();
afterEach(() => loop.closeAll());
/** A proxy that records each request head it receives and lets `answer` write raw bytes back. */
async function rawProxy(answer: (s: Socket) => void, userinfo = '') {
  const server = await loop.raw((_head, s) => answer(s));
  const url = new URL(server.url);
  if (userinfo) [url.username, url.password] = userinfo.split(':') as [string, string];
  return {
    url,
    get heads() {
      return server.requests.map((r) => r.head);
    },
  };
}
const transport = (proxy: URL, o: { connectTimeoutMs?: number } = {}) => {
  const t = new Http1Transport({ ...o, proxy: { http: proxy, https: proxy, noProxy: [] } });
  loop.defer(() => void t.close());
  return t;
};
const req = (url: string, over: Partial<Http1Request> = {}): Http1Request => ({ url: new URL(url), method: 'GET', headers: {}, headersTimeoutMs: 2000, bodyIdleTimeoutMs: 2000, ...over });

describe('CONNECT through a proxy that misbehaves (https upstreams)', () => {
  it.each([
    ['refuses with a non-2xx status', (s: Socket) => s.write('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n'), /refused CONNECT localhost:443 \(407\)/],
    ['answers without an HTTP status line', (s: Socket) => s.write('SSH-2.0-OpenSSH\r\n\r\n'), /refused CONNECT localhost:443 \(no status\)/],
    ['sends bytes after its answer (they would be read as TLS)', (s: Socket) => s.write('HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01'), /bytes after its CONNECT answer/],
    ['never ends its answer', (s: Socket) => s.write(`HTTP/1.1 200 OK\r\nx: ${'a'.repeat(17 * 1024)}`), /oversized CONNECT answer/],
    ['closes without answering', (s: Socket) => s.end(), /closed the CONNECT/],
    ['resets the connection', (s: Socket) => s.resetAndDestroy(), /ECONNRESET|closed the CONNECT/],
  ])('fails clearly when the proxy %s', async (_what, answer, error) => {
    const proxy = await rawProxy(answer);
    await expect(transport(proxy.url).request(req('https://localhost/v2/'))).rejects.toThrow(error);
    expect(proxy.heads[0]).toBe('CONNECT localhost:443 HTTP/1.1\r\nhost: localhost:443');
  });

  it('times out a proxy that never answers the CONNECT', async () => {
    const proxy = await rawProxy(() => undefined);
    const err = await transport(proxy.url, { connectTimeoutMs: 150 })
      .request(req('https://localhost:8443/'))
      .catch((e: Error & { code?: string }) => e);
    expect(err).toMatchObject({ name: 'TimeoutError', code: 'ETIMEDOUT' });
    expect(String(err)).toMatch(/CONNECT through 127\.0\.0\.1:\d+ timed out/);
  });

  it('reads an answer that arrives in pieces, sends proxy credentials, and CONNECTs to the vetted IPv6 address', async () => {
    const proxy = await rawProxy((s) => {
      s.write('HTTP/1.1 403 Forb');
      setTimeout(() => s.write('idden\r\n\r\n'), 20);
    }, 'u%20ser:p%3Ass');
    await expect(transport(proxy.url).request(req('https://registry.example:5000/', { connectTo: '::1' }))).rejects.toThrow(/refused CONNECT \[::1\]:5000 \(403\)/);
    const basic = Buffer.from('u ser:p:ss').toString('base64');
    expect(proxy.heads).toEqual([`CONNECT [::1]:5000 HTTP/1.1\r\nhost: [::1]:5000\r\nproxy-authorization: Basic ${basic}`]);
  });
});

describe('plain-http requests through a proxy, on the wire', () => {
  const ok = (s: Socket) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');

  it('sends the vetted address in the absolute-form target, bracketed for IPv6, with proxy credentials', async () => {
    const proxy = await rawProxy(ok, 'me:secret');
    const t = transport(proxy.url);
    expect(await (await t.request(req('http://registry.example:5000/v2/?n=1', { connectTo: '::1' }))).body.text()).toBe('ok');
    expect(await (await t.request(req('http://registry.example/v2/', { connectTo: '10.1.2.3' }))).body.text()).toBe('ok');
    const auth = `proxy-authorization: Basic ${Buffer.from('me:secret').toString('base64')}`;
    expect(proxy.heads).toEqual([`GET http://[::1]:5000/v2/?n=1 HTTP/1.1\r\nhost: registry.example:5000\r\n${auth}`, `GET http://10.1.2.3:80/v2/ HTTP/1.1\r\nhost: registry.example\r\n${auth}`]);
  });
});

describe('proxy settings', () => {
  it('takes either proxy alone, without NO_PROXY', () => {
    expect(outboundProxyFromEnv({ HTTP_PROXY: 'http://p:3128' })).toEqual({ http: new URL('http://p:3128'), noProxy: [] });
    expect(outboundProxyFromEnv({ https_proxy: 'p:3128' })).toEqual({ https: new URL('http://p:3128'), noProxy: [] });
    expect(proxyFor(outboundProxyFromEnv({ HTTP_PROXY: 'http://p:3128' }), new URL('https://a/'))).toBeUndefined();
  });

  it('matches NO_PROXY entries with ports and IPv6 addresses', () => {
    const p = { https: new URL('http://p:1'), noProxy: ['[::1]:5000', 'a.example:444', '*.b.example'] };
    expect(proxyFor(p, new URL('https://[::1]:5000/'))).toBeUndefined();
    expect(proxyFor(p, new URL('https://[::1]/'))).toBeDefined();
    expect(proxyFor(p, new URL('https://a.example/'))).toBeDefined(); // 443 is not 444
    expect(proxyFor(p, new URL('https://a.example:444/'))).toBeUndefined();
    expect(proxyFor(p, new URL('https://c.b.example/'))).toBeUndefined();
  });

  it('connects to a proxy on port 80 when its URL names none, and unbrackets IPv6 hosts', () => {
    expect(proxyAddress(new URL('http://proxy.corp'))).toEqual({ host: 'proxy.corp', port: 80 });
    expect(proxyAddress(new URL('http://[::1]:3128'))).toEqual({ host: '::1', port: 3128 });
  });
});
