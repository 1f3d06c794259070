/**
 * The /v2 routes run outside Express (./app.ts), so the host and scheme they bind tokens to
 * must be worked out exactly as Express works them out for the token route. Differential: the
 * same raw requests (repeated, listed and untrusted X-Forwarded-* headers, absolute-form
 * targets) go to one server whose handler reads both Express's req.host/req.protocol and
 * Call's (and req.ip against Call.ip), under each `trust proxy` setting the configuration allows.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import express from 'express';
import { Call, type TrustFn } from './call.js';
import { apiTarget } from './app.js';

describe('apiTarget', () => {
  it.each([
    ['/v2/', 'v2', '/', ''],
    ['/v2', 'v2', '', ''],
    ['/v2?x=1', 'v2', '', 'x=1'],
    ['/v2/team/app/manifests/latest?ns=docker.io&a=b', 'v2', '/team/app/manifests/latest', 'ns=docker.io&a=b'],
    ['http://registry.test/v2/a/tags/list?n=1', 'v2', '/a/tags/list', 'n=1'],
    ['HTTPS://registry.test:5000/v2/', 'v2', '/', ''],
    ['/token?service=s&scope=a&scope=b', 'token', '', 'service=s&scope=a&scope=b'],
    ['/token/', 'token', '/', ''],
    ['/token/x?y', 'token', '/x', 'y'],
  ])('%s is for %s', (url, api, path, search) => {
    expect(apiTarget(url)).toEqual({ api, path, search });
  });
  it.each(['/v2foo', '/v3/', '/tokens', '/', '*', 'registry.test:443', 'http://registry.test', 'http://registry.test/v2x', '/V2/', '/Token', '/healthz', '/jwks', ''])('%s is for neither', (url) => {
    expect(apiTarget(url)).toBeUndefined();
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
  'Host: a.test\r\nX-Forwarded-For: 10.0.0.1',
  'Host: a.test\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1',
  'Host: a.test\r\nX-Forwarded-For: 203.0.113.9,  127.0.0.1 ,, 10.0.0.1',
  'Host: a.test\r\nX-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 10.0.0.1, 127.0.0.2',
  'Host: a.test\r\nX-Forwarded-For: ',
  'Host: a.test\r\nX-Forwarded-For: ,,, ',
  'Host: a.test\r\nX-Forwarded-For: not-an-address, 10.0.0.1',
];

describe.each([
  ['no proxy trusted', false],
  ['loopback trusted', ['127.0.0.1']],
  ['another address trusted', ['10.0.0.1']],
  ['a subnet holding loopback trusted', ['127.0.0.0/8']],
  ['loopback and a private subnet trusted', ['127.0.0.1', '10.0.0.0/8']],
])('Call reads host and scheme as Express does: %s', (_name, trustSetting) => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    const app = express();
    app.set('trust proxy', trustSetting);
    const trust = app.get('trust proxy fn') as TrustFn;
    app.use((req, res) => {
      const call = new Call(req, res, '', '', trust);
      res.json({ express: [req.host ?? null, req.protocol, req.ip ?? null], call: [call.host ?? null, call.protocol, call.ip ?? null] });
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
