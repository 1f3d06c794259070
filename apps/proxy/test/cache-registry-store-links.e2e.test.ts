/**
 * A manifest that lists many blobs (a hostile upstream's, or a large index) through a proxy whose
 * cache is a `registry` store: every blob it lists gets a link record in the store, and those
 * record PUTs go a few at a time, not all at once (each PUT is a fresh store connection). The
 * upstream is the blob stand-in (it serves any manifest it is given); the store is a real
 * docker-registry behind a pass-through that counts the requests in flight.
 * Past MAX_LINKS blobs a manifest links no more (a bound on store writes): a blob past it is still
 * served through that repository, after one upstream HEAD shows it there.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getGlobalDispatcher } from 'undici';
import { requireCommands, startRegistry, type TestRegistry } from '@registry-proxy/testing';
import { MAX_LINKS } from '../src/cache/manifest-links.js';
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

const tokenFor = async (repo: string) =>
  (
    (await (
      await fetch(`${proxy.url}/token?service=registry-proxy&scope=repository:${repo}:pull`, { headers: { authorization: `Basic ${Buffer.from(`alice:${PW}`).toString('base64')}` } })
    ).json()) as { token: string }
  ).token;

it(`a blob past the first ${MAX_LINKS} of a manifest is not linked, and is still served through that repository after one upstream HEAD; one inside the bound needs none`, async () => {
  // Two real blobs, cached through another repository first; the manifest of team/wide lists
  // MAX_LINKS + 10 layers, the first of them `inside`, the last `past`.
  const inside = randomBytes(2048);
  const past = randomBytes(2048);
  const dIn = upstream.add(inside, ['team/other', 'team/wide']);
  const dPast = upstream.add(past, ['team/other', 'team/wide']);
  const other = await tokenFor('team/other');
  for (const d of [dIn, dPast]) expect((await fetch(`${proxy.url}/v2/team/other/blobs/${d}`, { headers: { authorization: `Bearer ${other}` } })).status).toBe(200);
  const filler = Array.from({ length: MAX_LINKS + 8 }, () => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${randomBytes(32).toString('hex')}`, size: 1 }));
  const layer = (digest: string, size: number) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size });
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${randomBytes(32).toString('hex')}`, size: 1 };
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI, config, layers: [layer(dIn, inside.length), ...filler, layer(dPast, past.length)] }));
  upstream.manifests.set('team/wide:v1', { body, mediaType: OCI });
  const wide = await tokenFor('team/wide');
  expect((await fetch(`${proxy.url}/v2/team/wide/manifests/v1`, { headers: { authorization: `Bearer ${wide}`, accept: OCI } })).status).toBe(200);

  const pull = async (d: string) => {
    const r = await fetch(`${proxy.url}/v2/team/wide/blobs/${d}`, { headers: { authorization: `Bearer ${wide}` } });
    return { status: r.status, bytes: Buffer.from(await r.arrayBuffer()) };
  };
  const before = {
    headIn: upstream.count('HEAD', 'team/wide', dIn),
    getIn: upstream.count('GET', 'team/wide', dIn),
    headPast: upstream.count('HEAD', 'team/wide', dPast),
    getPast: upstream.count('GET', 'team/wide', dPast),
  };
  // Linked by the manifest: served from the store with no upstream request at all.
  expect(await pull(dIn)).toEqual({ status: 200, bytes: inside });
  expect([upstream.count('HEAD', 'team/wide', dIn) - before.headIn, upstream.count('GET', 'team/wide', dIn) - before.getIn]).toEqual([0, 0]);
  // Past the bound: not linked, so one HEAD upstream decides; the bytes still come from the store.
  expect(await pull(dPast)).toEqual({ status: 200, bytes: past });
  expect([upstream.count('HEAD', 'team/wide', dPast) - before.headPast, upstream.count('GET', 'team/wide', dPast) - before.getPast]).toEqual([1, 0]);
});
