/**
 * Records of the registry store (links, tags) against a real docker-registry (htpasswd, as a
 * store would be): written and read back, shared by two store instances (two replicas), a
 * manifest under a record's tag that carries another key, the empty config blob gone, and a
 * forged manifest link whose media type would break a Content-Type header.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UpstreamClient } from '@registry-proxy/registry-core';
import { requireCommands, startRegistry, type TestRegistry } from '@registry-proxy/testing';
import { RegistryStore } from './registry-store.js';
import { storeClient } from '../../test/support/registry-store-proxy.js';

jest.setTimeout(60_000);
const REPO = 'cache/objects';
const D = `sha256:${'ab'.repeat(32)}`;
let reg: TestRegistry;
let spool: string;
const clients: UpstreamClient[] = [];
const auth = { authorization: `Basic ${Buffer.from('store:store-pw').toString('base64')}` };

function store(): RegistryStore {
  const client = storeClient(reg.url);
  clients.push(client);
  return new RegistryStore({ client, repository: REPO, spoolDir: spool, onUploadFailed: () => undefined });
}
const tagOf = (key: string[]) => `rp-${createHash('sha256').update(JSON.stringify(key)).digest('hex')}`;
async function rawManifest(tag: string): Promise<string> {
  return (await fetch(`${reg.url}/v2/${REPO}/manifests/${tag}`, { headers: { ...auth, accept: 'application/vnd.oci.image.manifest.v1+json' } })).text();
}
async function putRaw(tag: string, body: string): Promise<number> {
  return (await fetch(`${reg.url}/v2/${REPO}/manifests/${tag}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body })).status;
}

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd');
  reg = await startRegistry({ store: 'store-pw' });
  spool = mkdtempSync(join(tmpdir(), 'rp-records-'));
});
afterAll(async () => {
  for (const c of clients) await c.close();
  await reg?.stop();
  rmSync(spool, { recursive: true, force: true });
});

it('a link or tag written by one replica is read by another (and by a restarted one); others are absent', async () => {
  const a = store();
  const b = store();
  await a.addLink('hub', 'library/alpine', 'manifest', D, 'application/vnd.oci.image.index.v1+json');
  await a.addLink('hub', 'library/alpine', 'blob', D);
  await a.putTag('hub', 'library/alpine', '3.20', 'any', { digest: D, mediaType: 'application/vnd.oci.image.index.v1+json', validatedAt: 1234, etag: '"x"' });
  expect(await b.link('hub', 'library/alpine', 'manifest', D)).toBe('application/vnd.oci.image.index.v1+json');
  expect(await b.link('hub', 'library/alpine', 'blob', D)).toBe('');
  expect(await b.tag('hub', 'library/alpine', '3.20', 'any')).toEqual({ digest: D, mediaType: 'application/vnd.oci.image.index.v1+json', validatedAt: 1234, etag: '"x"' });
  // Another repository, another upstream, another variant: nothing.
  expect(await b.link('hub', 'library/busybox', 'blob', D)).toBeUndefined();
  expect(await b.link('ghcr', 'library/alpine', 'blob', D)).toBeUndefined();
  expect(await b.tag('hub', 'library/alpine', '3.20', 'other')).toBeUndefined();
});

it('a manifest under a record tag that carries another key is not that record', async () => {
  const a = store();
  await a.addLink('hub', 'team/a', 'blob', D);
  // Copy team/a's record to the tag team/b's link would have.
  expect(await putRaw(tagOf(['link', 'hub', 'team/b', 'blob', D]), await rawManifest(tagOf(['link', 'hub', 'team/a', 'blob', D])))).toBe(201);
  expect(await store().link('hub', 'team/b', 'blob', D)).toBeUndefined();
});

it('a forged manifest link whose media type carries a line break is refused', async () => {
  const a = store();
  await a.addLink('hub', 'team/x', 'manifest', D, 'text/plain\r\nX-Injected: 1');
  expect(await store().link('hub', 'team/x', 'manifest', D)).toBeUndefined();
  await a.addLink('hub', 'team/y', 'manifest', D, 'application/vnd.docker.distribution.manifest.v2+json; charset=utf-8');
  expect(await store().link('hub', 'team/y', 'manifest', D)).toBe('application/vnd.docker.distribution.manifest.v2+json; charset=utf-8');
});

it('the empty config blob removed from the store (garbage collection): pushed again, and the record written', async () => {
  const a = store();
  await a.addLink('hub', 'team/gc', 'blob', D);
  const empty = `sha256:${createHash('sha256').update('{}').digest('hex')}`;
  expect((await fetch(`${reg.url}/v2/${REPO}/blobs/${empty}`, { method: 'DELETE', headers: auth })).status).toBe(202);
  await a.addLink('hub', 'team/gc2', 'blob', D);
  expect(await store().link('hub', 'team/gc2', 'blob', D)).toBe('');
});
