/**
 * The /v2 routes run outside Express (./app.ts), so the host and scheme they bind tokens to
 * must be worked out exactly as Express works them out for the token route. Differential: the
 * same raw requests (repeated, listed and untrusted X-Forwarded-* headers, absolute-form
 * targets) go to one server whose handler reads both Express's req.host/req.protocol and
 * Call's, under each `trust proxy` setting the configuration allows.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import express from 'express';
import { Call, type TrustFn } from './call.js';
import { v2Target } from './app.js';

describe('v2Target', () => {
  it.each([
    ['/v2/', ['/', '']],
    ['/v2', ['', '']],
    ['/v2?x=1', ['', 'x=1']],
    ['/v2/team/app/manifests/latest?ns=docker.io&a=b', ['/team/app/manifests/latest', 'ns=docker.io&a=b']],
    ['http://registry.test/v2/a/tags/list?n=1', ['/a/tags/list', 'n=1']],
    ['HTTPS://registry.test:5000/v2/', ['/', '']],
  ])('%s is a /v2 request', (url, expected) => {
    expect(v2Target(url)).toEqual(expected);
  });
  it.each(['/v2foo', '/v3/', '/token', '/', '*', 'registry.test:443', 'http://registry.test', 'http://registry.test/v2x', '/V2/', ''])('%s is not', (url) => {
    expect(v2Target(url)).toBeUndefined();
  });
});

const requests = [
  'Host: a.test',
  'Host: a.test:5000',
  'Host: a.test\r\nX-Forwarded-Host: b.test',
  'Host: a.test\r\nX-Forwarded-Host: b.test, c.test',
  'Host: a.test\r\nX-Forwarded-Host: b.test \t, c.test',
  'Host: a.test\r\nX-Forwarded-Host: b.test\r\nX-Forwarded-Host: c.test',
  'Host: a.test\r\nX-Forwarded-Host: ',
  'Host: \r\nX-Forwarded-Host: b.test',
  'X-Forwarded-Host: b.test',
  'Host: a.test\r\nX-Forwarded-Proto: https',
  'Host: a.test\r\nX-Forwarded-Proto: https, http',
  'Host: a.test\r\nX-Forwarded-Proto:  HTTPS ',
  'Host: a.test\r\nX-Forwarded-Proto: ',
  'Host: a.test\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Proto: https',
];

describe.each([
  ['no proxy trusted', false],
  ['loopback trusted', ['127.0.0.1']],
  ['another address trusted', ['10.0.0.1']],
  ['a subnet holding loopback trusted', ['127.0.0.0/8']],
])('Call reads host and scheme as Express does: %s', (_name, trustSetting) => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    const app = express();
    app.set('trust proxy', trustSetting);
    const trust = app.get('trust proxy fn') as TrustFn;
    app.use((req, res) => {
      const call = new Call(req, res, '', '', trust);
      res.json({ express: [req.host ?? null, req.protocol], call: [call.host ?? null, call.protocol] });
    });
    server = createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const ask = (head: string, target = '/v2/') =>
    new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => s.end(`GET ${target} HTTP/1.1\r\n${head}\r\nConnection: close\r\n\r\n`));
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (out += d));
      s.on('end', () => resolve(out));
      s.on('error', reject);
    });

  it.each(requests.flatMap((h) => [[h, '/v2/'] as const, [h, 'http://z.test/v2/'] as const]))('%j to %s', async (head, target) => {
    const answer = await ask(head, target);
    const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
    const seen = JSON.parse(body) as { express: unknown; call: unknown };
    expect(seen.call).toEqual(seen.express);
  });
});
