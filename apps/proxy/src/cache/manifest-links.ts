const SHA256 = /^sha256:[a-f0-9]{64}$/;
/**
 * At most this many blobs, and as many manifests, are linked per manifest: each link is a write
 * to the store (a record PUT for the registry store), and a hostile upstream's 4 MiB manifest
 * could list some 48,000. Real images have at most a few hundred layers (overlayfs stops at
 * 128), indexes a few dozen manifests. A blob past the bound is still served through this
 * repository, after a HEAD upstream shows it there.
 */
export const MAX_LINKS = 1000;

interface Descriptor {
  digest?: unknown;
  mediaType?: unknown;
}

/**
 * What a manifest references: its config and layers (blobs) and, for an index, its manifests.
 * Fetching a manifest through a repository shows that the repository has them all.
 */
export function linksOf(body: Buffer): { blobs: string[]; manifests: Array<{ digest: string; mediaType: string }> } {
  let doc: { config?: Descriptor; layers?: Descriptor[]; fsLayers?: Array<{ blobSum?: unknown }>; manifests?: Descriptor[] };
  try {
    doc = JSON.parse(body.toString('utf8')) as typeof doc;
  } catch {
    return { blobs: [], manifests: [] };
  }
  const ok = (d: unknown): d is string => typeof d === 'string' && SHA256.test(d);
  const blobs = new Set<string>();
  if (doc.config && ok(doc.config.digest)) blobs.add(doc.config.digest);
  for (const l of Array.isArray(doc.layers) ? doc.layers : []) if (blobs.size < MAX_LINKS && ok(l?.digest)) blobs.add(l.digest);
  const manifests: Array<{ digest: string; mediaType: string }> = [];
  for (const m of Array.isArray(doc.manifests) ? doc.manifests : []) {
    if (manifests.length < MAX_LINKS && ok(m?.digest) && typeof m.mediaType === 'string') manifests.push({ digest: m.digest, mediaType: m.mediaType });
  }
  return { blobs: [...blobs], manifests };
}
