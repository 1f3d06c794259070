/**
 * Request-handling defects of issue 11, each pinned against a real docker-registry behind the
 * proxy, with raw sockets where the framing itself is the point (fetch would fix it up).
 */
import { requireCommands } from '@registry-proxy/testing';
import { startWorld, token, type World } from './support/fixture.js';
import { bodyOf, raw, write } from './support/raw.js';

jest.setTimeout(60_000);
let w: World;
let port: number;
const rejections: unknown[] = [];
const onRejection = (r: unknown) => rejections.push(r);

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd');
  process.on('unhandledRejection', onRejection);
  w = await startWorld();
  port = Number(new URL(w.proxy.url).port);
});
afterAll(async () => {
  process.off('unhandledRejection', onRejection);
  await w?.stop();
});

const errorCodes = (text: string) => (bodyOf(text) as { errors: Array<{ code: string }> }).errors.map((e) => e.code);

/** The proxy still answers: /v2/ without a token is its 401 challenge. */
async function stillServing(): Promise<void> {
  const res = await fetch(`${w.proxy.url}/v2/`);
  expect(res.status).toBe(401);
}

describe('defect 1: an oversized manifest body', () => {
  it('chunked 5,000,000 zero bytes: 413 SIZE_INVALID, Connection: close, and the proxy lives on', async () => {
    const t = await token(w, 'alice', 'repository:push/big:pull,push');
    const reply = await raw(port, async (sock) => {
      await write(sock, `PUT /v2/push/big/manifests/v1 HTTP/1.1\r\nHost: ${w.proxy.host}\r\nAuthorization: Bearer ${t}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = Buffer.alloc(50_000);
      const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
      for (let sent = 0; sent < 5_000_000; sent += chunk.length) await write(sock, frame);
      await write(sock, '0\r\n\r\n');
    });
    expect(reply.statuses).toEqual([413]);
    expect(reply.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(errorCodes(reply.text)).toEqual(['SIZE_INVALID']);
    expect(reply.closed).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(rejections).toEqual([]);
    await stillServing();
  });

  it('a declared Content-Length over 4 MiB: 413 before any byte of the body, and the connection closed', async () => {
    const t = await token(w, 'alice', 'repository:push/big:pull,push');
    const reply = await raw(port, (sock) =>
      write(sock, `PUT /v2/push/big/manifests/v1 HTTP/1.1\r\nHost: ${w.proxy.host}\r\nAuthorization: Bearer ${t}\r\nContent-Length: 5000000\r\n\r\n{`),
      5000, // the proxy waits up to two seconds for the body it drops before it closes
    );
    expect(reply.statuses).toEqual([413]);
    expect(reply.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(errorCodes(reply.text)).toEqual(['SIZE_INVALID']);
    expect(reply.closed).toBe(true);
    expect(rejections).toEqual([]);
    await stillServing();
  });

  it('a client that leaves in the middle of a manifest body does not take the proxy down', async () => {
    const t = await token(w, 'alice', 'repository:push/big:pull,push');
    await raw(port, async (sock) => {
      await write(sock, `PUT /v2/push/big/manifests/v1 HTTP/1.1\r\nHost: ${w.proxy.host}\r\nAuthorization: Bearer ${t}\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789`);
      sock.destroy();
    }, 200);
    await new Promise((r) => setTimeout(r, 200));
    expect(rejections).toEqual([]);
    await stillServing();
  });
});

describe('defect 1: the error middleware keeps the 4xx it is given', () => {
  const form = (body: string, type = 'application/x-www-form-urlencoded') =>
    fetch(`${w.proxy.url}/token`, { method: 'POST', headers: { 'content-type': type }, body });

  it('a form body over the limit is 413 SIZE_INVALID, not UNAUTHORIZED', async () => {
    const res = await form(`grant_type=password&x=${'a'.repeat(70_000)}`);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('SIZE_INVALID');
  });

  it('a form in a charset the parser does not know is 415 UNSUPPORTED', async () => {
    const res = await form('grant_type=password', 'application/x-www-form-urlencoded; charset=koi8-r');
    expect(res.status).toBe(415);
    expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('UNSUPPORTED');
  });

  it('a form shorter than its Content-Length, then a half-close: a 400 in the registry format (Node alone sends a bare 400)', async () => {
    const reply = await raw(port, async (sock) => {
      await write(sock, `POST /token HTTP/1.1\r\nHost: ${w.proxy.host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=password`);
      sock.end();
    });
    expect(reply.statuses).toEqual([400]);
    expect(errorCodes(reply.text)).toEqual(['UNSUPPORTED']);
    await stillServing();
  });

  it('a request Node cannot parse gets a registry error, not a bare 400', async () => {
    const reply = await raw(port, (sock) => write(sock, `GET /v2/ HTTP/1.1\r\nHost: ${w.proxy.host}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n`));
    expect(reply.statuses).toEqual([400]);
    expect(errorCodes(reply.text)).toEqual(['UNSUPPORTED']);
    expect(reply.closed).toBe(true);
    await stillServing();
  });
});
