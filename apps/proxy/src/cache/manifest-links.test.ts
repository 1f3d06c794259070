import { createHash } from 'node:crypto';
import { linksOf, MAX_LINKS } from './manifest-links.js';

const d = (i: number) => `sha256:${createHash('sha256').update(String(i)).digest('hex')}`;
const body = (doc: unknown) => Buffer.from(JSON.stringify(doc));

describe('linksOf', () => {
  it("an image manifest's config and layers, each once; an index's manifests with their media types", () => {
    expect(linksOf(body({ config: { digest: d(0) }, layers: [{ digest: d(1) }, { digest: d(1) }, { digest: d(2) }] })).blobs).toEqual([d(0), d(1), d(2)]);
    const index = linksOf(body({ manifests: [{ digest: d(3), mediaType: 'application/vnd.oci.image.manifest.v1+json' }] }));
    expect(index).toEqual({ blobs: [], manifests: [{ digest: d(3), mediaType: 'application/vnd.oci.image.manifest.v1+json' }] });
  });

  it('ignores what is not a sha256 descriptor, and a body that is not JSON', () => {
    expect(linksOf(body({ config: { digest: 'sha256:abc' }, layers: [null, 7, { digest: 'sha512:' + 'a'.repeat(128) }, { digest: d(1).toUpperCase() }], manifests: [{ digest: d(2) }] }))).toEqual({
      blobs: [],
      manifests: [],
    });
    expect(linksOf(Buffer.from('{"layers": ['))).toEqual({ blobs: [], manifests: [] });
    expect(linksOf(body({ layers: 'all of them' }))).toEqual({ blobs: [], manifests: [] });
  });

  it(`links at most ${MAX_LINKS} blobs and ${MAX_LINKS} manifests of a hostile manifest, the first ones`, () => {
    const n = MAX_LINKS + 500;
    const links = linksOf(
      body({ config: { digest: d(-1) }, layers: Array.from({ length: n }, (_, i) => ({ digest: d(i) })), manifests: Array.from({ length: n }, (_, i) => ({ digest: d(i), mediaType: 'x' })) }),
    );
    expect([links.blobs.length, links.manifests.length]).toEqual([MAX_LINKS, MAX_LINKS]);
    expect(links.blobs.slice(0, 2)).toEqual([d(-1), d(0)]);
  });
});
