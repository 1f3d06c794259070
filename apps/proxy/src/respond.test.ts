import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendJson } from './respond.js';

/** One request to a loopback server whose handler is `handle`: status, raw header pairs, body. */
async function exchange(handle: (req: IncomingMessage, res: ServerResponse) => void, method = 'GET') {
  const server = http.createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise<{ status: number; raw: string[]; body: string }>((ok, fail) => {
      const req = http.request({ host: '127.0.0.1', port, method, path: '/', agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => ok({ status: res.statusCode ?? 0, raw: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', fail);
      req.end();
    });
  } finally {
    await new Promise((r) => server.close(r));
  }
}

const named = (raw: string[], name: string) => raw.filter((_, i) => i % 2 === 0 && raw[i]?.toLowerCase() === name).length;
const value = (raw: string[], name: string) => raw[raw.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === name) + 1];

describe('sendJson', () => {
  it('writes the status, the given headers, the JSON type and the exact length of the text', async () => {
    const body = '{"token":"é"}';
    let map: string[] = ['unset'];
    const r = await exchange((_req, res) => {
      sendJson(res, 201, body, { 'Cache-Control': 'no-store' });
      map = res.getHeaderNames();
    });
    expect(r.status).toBe(201);
    // The head went straight from the list to the wire: no per-response header map was built.
    expect(map).toEqual([]);
    expect(r.body).toBe(body);
    expect(value(r.raw, 'content-type')).toBe('application/json; charset=utf-8');
    expect(value(r.raw, 'content-length')).toBe(String(Buffer.byteLength(body)));
    expect(value(r.raw, 'cache-control')).toBe('no-store');
    expect(named(r.raw, 'transfer-encoding')).toBe(0);
  });

  // It writes its head with one writeHead and a header list: headers the route set before stay,
  // and the ones it writes replace theirs, as setHeader did (no duplicate Content-Type).
  it('keeps headers set before it and replaces the ones it writes', async () => {
    const r = await exchange((_req, res) => {
      res.setHeader('Link', '</v2/_catalog?n=1&last=a>; rel="next"');
      res.setHeader('Content-Type', 'text/plain');
      res.setHeader('Cache-Control', 'public');
      sendJson(res, 200, '{}', { 'Cache-Control': 'no-store' });
    });
    expect(value(r.raw, 'link')).toBe('</v2/_catalog?n=1&last=a>; rel="next"');
    expect(named(r.raw, 'content-type')).toBe(1);
    expect(value(r.raw, 'content-type')).toBe('application/json; charset=utf-8');
    expect(named(r.raw, 'cache-control')).toBe(1);
    expect(value(r.raw, 'cache-control')).toBe('no-store');
    expect(r.body).toBe('{}');
  });

  it('answers HEAD with the length of the body it does not send', async () => {
    const r = await exchange((_req, res) => sendJson(res, 200, '{"a":1}'), 'HEAD');
    expect(value(r.raw, 'content-length')).toBe('7');
    expect(r.body).toBe('');
  });
});
