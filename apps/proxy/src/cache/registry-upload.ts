import type { Readable } from 'node:stream';
import type { UpstreamResponse } from '@registry-proxy/registry-core';

/** A request to the store registry, with its credentials (RegistryStore's). */
export type StoreRequest = (method: 'POST' | 'PUT' | 'DELETE', path: string, extra?: { headers?: Record<string, string>; body?: Buffer | Readable }) => Promise<UpstreamResponse>;

/**
 * A monolithic blob upload (distribution's spec: POST to start a session, then one PUT with
 * ?digest= and the whole body). The session's Location must stay on the store's origin (a store
 * that points elsewhere would get the object, and the credentials, sent to another host); a
 * failed PUT cancels the session. `body` is called once, when the PUT goes out.
 */
export async function uploadBlob(request: StoreRequest, origin: string, repository: string, digest: string, body: () => Buffer | Readable, size: number): Promise<void> {
  const start = await request('POST', `/v2/${repository}/blobs/uploads/`, { headers: { 'content-length': '0' } });
  await start.body.dump();
  const location = start.headers['location'];
  if (start.statusCode !== 202 || typeof location !== 'string') throw new Error(`store registry answered ${start.statusCode} to an upload start`);
  const at = new URL(location, origin);
  if (at.origin !== new URL(origin).origin) throw new Error('store registry sent an upload Location on another host');
  at.searchParams.set('digest', digest);
  try {
    const put = await request('PUT', `${at.pathname}${at.search}`, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) }, body: body() });
    await put.body.dump();
    if (put.statusCode !== 201) throw new Error(`store registry answered ${put.statusCode} to the upload`);
  } catch (err) {
    const cancel = new URL(location, origin);
    await request('DELETE', `${cancel.pathname}${cancel.search}`)
      .then((d) => d.body.dump())
      .catch(() => undefined);
    throw err;
  }
}
