/**
 * A manifest that lists many blobs (a hostile upstream's, or a large index) through a proxy whose
 * cache is a `registry` store: every blob it lists gets a link record in the store, and those
 * record PUTs go a few at a time, not all at once (each PUT is a fresh store connection). The
 * upstream is the blob stand-in (it serves any manifest it is given); the store is a real
 * docker-registry behind a pass-through that counts the requests in flight.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getGlobalDispatcher } from 'undici';
import { requireCommands, startRegistry, type TestRegistry } from '@registry-proxy/testing';
import { startBlobUpstream, type BlobUpstream } from './support/blob-upstream.js';
import { startFlightRelay, type FlightRelay } from './support/counting-relay.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { ALICE_PW as PW, registryStoreProxyConfig } from './support/registry-store-proxy.js';

jest.setTimeout(120_000);
const OCI = 'application/vnd.oci.image.manifest.v1+json';
let upstream: BlobUpstream;
let store: TestRegistry;
let front: FlightRelay;
let proxy: TestProxy;
let spool: string;

beforeAll(async () => {
  await requireCommands('docker-registry', 'htpasswd');
  upstream = await startBlobUpstream();
  store = await startRegistry({ store: 'store-pw' });
  front = await startFlightRelay(store.url);
  spool = mkdtempSync(join(tmpdir(), 'rp-spool-links-'));
  proxy = await startTestProxy(
    registryStoreProxyConfig({
      upstream: upstream.url,
      store: front.url,
      repository: 'cache/objects',
      spoolDir: spool,
      name: 'standin',
      upstreamCredentials: false,
    }),
  );
});
afterAll(async () => {
  await proxy?.close();
  await front?.close();
  await upstream?.stop();
  await store?.stop();
  if (spool) rmSync(spool, { recursive: true, force: true });
  await getGlobalDispatcher().close();
});

it('regression: a manifest listing 500 blobs writes their link records a few at a time (it was 500 store connections at once); the pull succeeds', async () => {
  const layers = Array.from({ length: 500 }, () => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${randomBytes(32).toString('hex')}`, size: 1 }));
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${randomBytes(32).toString('hex')}`, size: 1 };
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI, config, layers }));
  upstream.manifests.set('team/big:v1', { body, mediaType: OCI });
  const tok = (
    (await (
      await fetch(`${proxy.url}/token?service=registry-proxy&scope=repository:team/big:pull`, { headers: { authorization: `Basic ${Buffer.from(`alice:${PW}`).toString('base64')}` } })
    ).json()) as { token: string }
  ).token;
  front.flight.max = 0;
  front.flight.puts = 0;
  const r = await fetch(`${proxy.url}/v2/team/big/manifests/v1`, { headers: { authorization: `Bearer ${tok}`, accept: OCI } });
  expect(r.status).toBe(200);
  expect(
    createHash('sha256')
      .update(Buffer.from(await r.arrayBuffer()))
      .digest('hex'),
  ).toBe(createHash('sha256').update(body).digest('hex'));
  const seen = { puts: front.flight.puts, max: front.flight.max };
  expect(seen.puts).toBeGreaterThan(500); // every link written (and the manifest, its record, the tag)
  expect(seen.max).toBeLessThanOrEqual(16);
  expect(proxy.logs.join('')).not.toContain('cache store failed');
});
