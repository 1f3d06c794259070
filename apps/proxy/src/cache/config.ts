import { z } from 'zod';
// The store's credentials are the upstreams' credential providers: one schema for both.
import { upstreamCredentialsSchema } from '@registry-proxy/registry-core';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  ki: 2 ** 10,
  kib: 2 ** 10,
  mi: 2 ** 20,
  mib: 2 ** 20,
  gi: 2 ** 30,
  gib: 2 ** 30,
  ti: 2 ** 40,
  tib: 2 ** 40,
};

/** A size in bytes: a number, or a string such as `50GiB`, `512Mi`, `10GB`. */
export const byteSize = z.union([
  z.number().int().positive(),
  z
    .string()
    .regex(/^\s*\d+(?:\.\d+)?\s*(?:[kmgt]i?b?|b)?\s*$/i, 'a size such as 50GiB, 512Mi or 10GB')
    .transform((s) => {
      const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(s) as RegExpExecArray;
      return Math.floor(Number(m[1]) * (UNITS[(m[2] as string).toLowerCase()] ?? 1));
    })
    .pipe(z.number().int().positive()),
]);

/** `upstreams[].cache`: a pull-through cache for that upstream (off when absent). */
export const cacheConfig = z.strictObject({
  store: z.discriminatedUnion('type', [
    /** A directory, content-addressed; replicas may share it (files are written to a temporary name, then renamed). */
    z.strictObject({ type: z.literal('filesystem'), path: z.string().min(1) }),
    /** Another OCI registry (e.g. distribution on S3/GCS/Azure): objects are blobs of `repository` there (./registry-store.ts). */
    z.strictObject({
      type: z.literal('registry'),
      url: z
        .url({ protocol: /^https?$/ })
        // The URL names the store in logs, metrics and CLI output: a password in it would be shown there.
        .refine((u) => !/^[a-z]+:\/\/[^/]*@/i.test(u), 'must not carry credentials (user:password@): put them in credentials')
        .transform((u) => u.replace(/\/+$/, '')),
      repository: z
        .string()
        .regex(/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/, 'a repository name such as registry-proxy/cache')
        .default('registry-proxy/cache'),
      credentials: upstreamCredentialsSchema.default({ type: 'anonymous' }),
      /** Extra CA certificates (PEM) for an HTTPS store registry. */
      ca: z.string().min(1).optional(),
      /** Local directory for fills in progress (the upload starts once the object is verified). */
      spoolDir: z.string().min(1).default('/tmp/registry-proxy-spool'),
    }),
  ]),
  /** Size quota of the store; the least recently used objects go first (never one being read or filled). */
  maxBytes: byteSize,
  /** How long a tag's digest is used without asking the upstream; after that a conditional request revalidates it. */
  tagFreshnessSeconds: z
    .number()
    .int()
    .min(0)
    .max(31 * 86_400)
    .default(300),
  /** How long past its freshness a tag (and what it points to) is still served while the upstream fails (5xx, 429, timeout, refused). */
  staleIfErrorSeconds: z
    .number()
    .int()
    .min(0)
    .max(365 * 86_400)
    .default(86_400),
});

export type CacheConfig = z.infer<typeof cacheConfig>;
