/**
 * The token endpoint reads its POST form itself (outside Express, see ../app.ts): what a
 * broken or hostile client sends as a form gets a registry error, never a crash or a hang, and
 * an oversized form is refused before it is read whole.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import bcrypt from 'bcryptjs';
import { stringify } from 'yaml';
import { createApp } from '../app.js';
import { parseConfig } from '../config/load.js';
import { createLogger } from '../logging.js';
import { Metrics } from '../metrics.js';
import { createRuntime, type Runtime } from '../runtime.js';

let server: Server;
let url: string;
let port: number;
let runtime: Runtime;
const logs: string[] = [];
const FORM = 'grant_type=password&username=alice&password=pw-alice&service=registry-proxy&client_id=t&scope=repository:team/app:pull';

beforeAll(async () => {
  const config = parseConfig(
    stringify({
      listen: { port: 0 },
      auth: [{ type: 'static', users: [{ username: 'alice', passwordHash: bcrypt.hashSync('pw-alice', 4) }] }],
      rules: [{ account: 'alice', repository: '**', actions: ['pull'] }],
      upstreams: [{ name: 'up', url: 'http://127.0.0.1:1' }],
    }),
    'test',
  );
  const logger = createLogger('info', new Writable({ write: (c: Buffer, _e, cb) => (logs.push(c.toString()), cb()) }));
  runtime = await createRuntime(config, logger);
  server = createServer(createApp(runtime, new Metrics(false), logger));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  url = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await runtime.close();
});

const post = (body: string | Buffer, headers: Record<string, string>) => fetch(`${url}/token`, { method: 'POST', headers, body });
const code = async (res: Response) => ((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code;

describe('the token form', () => {
  it('a form with a charset parameter (utf-8, any case) issues a token', async () => {
    for (const type of ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-8', 'Application/X-WWW-Form-Urlencoded;Charset="UTF-8"']) {
      const res = await post(FORM, { 'content-type': type });
      expect([type, res.status]).toEqual([type, 200]);
      expect(((await res.json()) as { token?: string }).token).toMatch(/^ey/);
    }
  });

  it('a body that is not a form is read as none: 400, the grant is missing', async () => {
    const res = await post(FORM, { 'content-type': 'text/plain' });
    expect(res.status).toBe(400);
    expect(await code(res)).toBe('UNSUPPORTED');
  });

  it('a charset it cannot read, or a compressed form: 415 MEDIA_UNSUPPORTED', async () => {
    const a = await post(FORM, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-16le' });
    expect([a.status, await code(a)]).toEqual([415, 'UNSUPPORTED']);
    for (const charset of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const r = await post(FORM, { 'content-type': `application/x-www-form-urlencoded; charset=${charset}` });
      expect([charset, r.status, await code(r)]).toEqual([charset, 415, 'UNSUPPORTED']);
    }
    const b = await post(FORM, { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' });
    expect([b.status, await code(b)]).toEqual([415, 'UNSUPPORTED']);
  });

  it('larger than 64 KiB: 413, declared or streamed, and the server goes on serving', async () => {
    const big = Buffer.alloc(65 * 1024, 'a');
    const declared = await post(big, { 'content-type': 'application/x-www-form-urlencoded' });
    expect([declared.status, await code(declared)]).toEqual([413, 'SIZE_INVALID']);
    // Chunked, so only the bytes tell: the limit is counted as they come.
    const chunked = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => {
        s.write(`POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n`);
        for (let i = 0; i < 20; i++) s.write(`1000\r\n${'b'.repeat(0x1000)}\r\n`);
        s.write('0\r\n\r\n');
      });
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (out += d));
      s.on('close', () => resolve(out));
      s.on('error', reject);
    });
    expect(chunked).toMatch(/^HTTP\/1\.1 413 /);
    expect(chunked).toContain('SIZE_INVALID');
    expect((await post(FORM, { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(200);
  });

  it('HEAD and GET share the endpoint; other methods and paths below it are not found', async () => {
    expect((await fetch(`${url}/token?service=registry-proxy`, { method: 'HEAD' })).status).toBe(200);
    for (const [method, path] of [
      ['PUT', '/token'],
      ['DELETE', '/token'],
      ['GET', '/token/x'],
    ] as const) {
      const res = await fetch(`${url}${path}`, { method });
      expect([method, path, res.status, await code(res)]).toEqual([method, path, 404, 'NAME_UNKNOWN']);
    }
  });

  it('never logs the password', () => {
    expect(logs.join('')).not.toContain('pw-alice');
  });
});
