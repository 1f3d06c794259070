// uploadBlob's decisions against scripted store answers (the happy path against a real
// docker-registry is in test/cache-registry-store*.e2e.test.ts): a hostile or broken store's
// upload session.
import { Readable } from 'node:stream';
import { ResponseBody, type UpstreamResponse } from '@registry-proxy/registry-core';
import { uploadBlob, type StoreRequest } from './registry-upload.js';

const ORIGIN = 'http://127.0.0.1:5999';
const DIGEST = `sha256:${'b'.repeat(64)}`;

function answer(statusCode: number, headers: Record<string, string> = {}): UpstreamResponse {
  const body = new ResponseBody();
  body.complete = true;
  body.push(null);
  return { statusCode, headers, body, url: new URL(ORIGIN) } as unknown as UpstreamResponse;
}

/** A store that answers from `script` in order and records what it was asked. */
function store(script: UpstreamResponse[]): { request: StoreRequest; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    request: async (method, path) => {
      asked.push(`${method} ${path}`);
      const next = script.shift();
      if (!next) throw new Error('unscripted request');
      return next;
    },
  };
}

describe('uploadBlob', () => {
  it('starts a session, PUTs the body with ?digest= at its Location, and sends it once', async () => {
    const s = store([answer(202, { location: '/v2/cache/objects/blobs/uploads/u1?_state=x' }), answer(201)]);
    let made = 0;
    await uploadBlob(s.request, ORIGIN, 'cache/objects', DIGEST, () => (made++, Readable.from([Buffer.from('abc')])), 3);
    expect(s.asked).toEqual(['POST /v2/cache/objects/blobs/uploads/', `PUT /v2/cache/objects/blobs/uploads/u1?_state=x&digest=${encodeURIComponent(DIGEST)}`]);
    expect(made).toBe(1);
  });

  it('refuses a Location on another host: nothing is sent there, the body is never made', async () => {
    for (const location of ['http://attacker.example/v2/x/blobs/uploads/u', '//attacker.example/u', 'http://127.0.0.1:6000/u']) {
      const s = store([answer(202, { location })]);
      let made = 0;
      await expect(uploadBlob(s.request, ORIGIN, 'cache/objects', DIGEST, () => (made++, Buffer.from('x')), 1)).rejects.toThrow('upload Location on another host');
      expect([s.asked, made]).toEqual([['POST /v2/cache/objects/blobs/uploads/'], 0]);
    }
  });

  it('a start that is not 202 with a Location fails without a PUT', async () => {
    for (const start of [answer(500), answer(202), answer(401, { location: '/u' })]) {
      const s = store([start]);
      await expect(uploadBlob(s.request, ORIGIN, 'cache/objects', DIGEST, () => Buffer.from('x'), 1)).rejects.toThrow('to an upload start');
      expect(s.asked).toHaveLength(1);
    }
  });

  it('a PUT that is refused, or fails, cancels the session (DELETE at its Location) and fails the upload', async () => {
    const refused = store([answer(202, { location: '/u/1' }), answer(400), answer(204)]);
    await expect(uploadBlob(refused.request, ORIGIN, 'r', DIGEST, () => Buffer.from('x'), 1)).rejects.toThrow('answered 400 to the upload');
    expect(refused.asked[2]).toBe('DELETE /u/1');
    // The PUT's connection breaks; the cancel itself fails too: the upload's error is the one reported.
    const broken = store([answer(202, { location: '/u/2' })]);
    await expect(uploadBlob(broken.request, ORIGIN, 'r', DIGEST, () => Buffer.from('x'), 1)).rejects.toThrow('unscripted request');
    expect(broken.asked).toEqual(['POST /v2/r/blobs/uploads/', `PUT /u/2?digest=${encodeURIComponent(DIGEST)}`, 'DELETE /u/2']);
  });
});
