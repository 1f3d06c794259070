/**
 * Outbound HTTP(S)_PROXY / NO_PROXY against a small honest proxy on loopback: CONNECT tunnels
 * for https (TLS end to end, verified against the upstream's name) and absolute-form requests
 * for plain http, as Squid and corporate proxies serve them.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer, type Server } from 'node:net';
import { createTestCa, Loopback } from '@registry-proxy/testing';
import { Http1Transport, type Http1Request } from './http1.js';
import { outboundProxyFromEnv, proxyFor } from './outbound-proxy.js';

const loop = new Loopback();
afterEach(() => loop.closeAll());
const listen = (server: Server) => loop.listen(server);

/** A proxy that serves CONNECT and absolute-form requests, and records what it was asked. */
async function honestProxy() {
  const asked: string[] = [];
  const server = createServer((client) => {
    client.on('error', () => undefined);
    client.once('data', (first: Buffer) => {
      const head = first.toString('latin1');
      const line = head.slice(0, head.indexOf('\r\n'));
      asked.push(line);
      const [method = '', target = ''] = line.split(' ');
      if (method === 'CONNECT') {
        const [host, port] = target.split(':');
        const up = connect(Number(port), host, () => {
          client.write('HTTP/1.1 200 Connection established\r\n\r\n');
          up.pipe(client);
          client.pipe(up);
        });
        up.on('error', () => client.destroy());
        return;
      }
      const u = new URL(target);
      const up = connect(Number(u.port || 80), u.hostname, () => {
        up.write(first.toString('latin1').replace(line, `${method} ${u.pathname}${u.search} HTTP/1.1`));
        up.pipe(client);
        client.pipe(up);
      });
      up.on('error', () => client.destroy());
    });
  });
  const port = await listen(server);
  return { url: new URL(`http://127.0.0.1:${port}`), asked };
}
const req = (url: string): Http1Request => ({ url: new URL(url), method: 'GET', headers: {}, headersTimeoutMs: 3000, bodyIdleTimeoutMs: 3000 });

describe('outbound proxies', () => {
  it('reads the environment as curl does, and honours NO_PROXY', () => {
    expect(outboundProxyFromEnv({})).toBeUndefined();
    const p = outboundProxyFromEnv({ HTTPS_PROXY: 'proxy.corp:3128', http_proxy: 'http://p2:8080', NO_PROXY: 'internal.example, .corp.example,10.0.0.1,reg.example:5000' });
    expect(p?.https?.href).toBe('http://proxy.corp:3128/');
    expect(proxyFor(p, new URL('https://registry-1.docker.io/v2/'))?.host).toBe('proxy.corp:3128');
    expect(proxyFor(p, new URL('http://x.example/'))?.host).toBe('p2:8080');
    for (const direct of ['https://internal.example/', 'https://a.internal.example/', 'https://corp.example/', 'https://b.corp.example/', 'http://10.0.0.1/', 'https://reg.example:5000/']) {
      expect(proxyFor(p, new URL(direct))).toBeUndefined();
    }
    expect(proxyFor(p, new URL('https://reg.example/'))).toBeDefined();
    expect(proxyFor(outboundProxyFromEnv({ https_proxy: 'http://p:1', no_proxy: '*' }), new URL('https://a/'))).toBeUndefined();
    expect(() => outboundProxyFromEnv({ HTTPS_PROXY: 'socks5://p:1080' })).toThrow(/only http/);
  });

  it('tunnels https through CONNECT, verifying the upstream certificate end to end', async () => {
    const ca = createTestCa();
    const { keyFile, certFile } = ca.issue('upstream');
    const tls = { key: readFileSync(keyFile), cert: readFileSync(certFile) };
    const body = 'y'.repeat(300_000);
    const port = await listen(createHttpsServer(tls, (_q, res) => res.end(body)) as unknown as Server);
    const proxy = await honestProxy();
    const t = new Http1Transport({ ca: ca.caPem, proxy: { https: proxy.url, noProxy: [] } });
    loop.defer(() => void t.close());
    const r = await t.request(req(`https://localhost:${port}/v2/`));
    expect(await r.body.text()).toBe(body);
    expect(await (await t.request(req(`https://localhost:${port}/v2/`))).body.text()).toBe(body); // the tunnel is kept alive
    expect(proxy.asked).toEqual([`CONNECT localhost:${port} HTTP/1.1`]);
  });

  it('sends plain-http requests in absolute form, and refuses a proxy that refuses CONNECT', async () => {
    const port = await listen(createHttpServer((q, res) => res.end(`origin saw ${q.url} for ${q.headers.host}`)) as unknown as Server);
    const proxy = await honestProxy();
    const t = new Http1Transport({ proxy: { http: proxy.url, https: proxy.url, noProxy: [] } });
    loop.defer(() => void t.close());
    expect(await (await t.request(req(`http://localhost:${port}/v2/x?y=1`))).body.text()).toBe(`origin saw /v2/x?y=1 for localhost:${port}`);
    expect(proxy.asked).toEqual([`GET http://localhost:${port}/v2/x?y=1 HTTP/1.1`]);
    const refusing = createServer((s) => s.once('data', () => s.end('HTTP/1.1 403 Forbidden\r\n\r\n')));
    const rp = await listen(refusing);
    const t2 = new Http1Transport({ proxy: { https: new URL(`http://127.0.0.1:${rp}`), noProxy: [] } });
    loop.defer(() => void t2.close());
    await expect(t2.request(req('https://localhost:1/'))).rejects.toThrow(/refused CONNECT/);
  });
});
