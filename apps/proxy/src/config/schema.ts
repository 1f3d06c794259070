import { globToRegExp, isValidRepositoryName, upstreamCredentialsSchema } from '@registry-proxy/registry-core';
import { z } from 'zod';
import { cacheConfig } from '../cache/config.js';
import { normaliseRegistryHost } from '../routing.js';

/** A secret: given inline, or read from an environment variable or a file at start-up. */
const secret = z.union([z.string().min(1), z.strictObject({ env: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })]);

const list = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));
const repoPrefix = z.string().refine((s) => s === '' || isValidRepositoryName(s), 'must be empty or a valid repository name prefix');
const httpUrl = z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, ''));

const staticAuth = z.strictObject({
  type: z.literal('static'),
  name: z.string().min(1).default('htpasswd'),
  htpasswd: list.optional(),
  users: z
    .array(
      z.strictObject({
        username: z
          .string()
          .min(1)
          .regex(/^[^:]+$/, 'must not contain ":"'),
        passwordHash: z.string().min(1),
        groups: z.array(z.string().min(1)).default([]),
      }),
    )
    .default([]),
  groups: z.record(z.string(), z.array(z.string().min(1))).default({}),
  /** Keep successful logins this long (HMAC-keyed, no password kept; cleared when the files reload); 0 = off. */
  cacheSeconds: z.number().int().min(0).max(3600).default(60),
});

const ldapScope = z.enum(['base', 'one', 'sub']);
const ldapAuth = z.strictObject({
  type: z.literal('ldap'),
  name: z.string().min(1).default('ldap'),
  url: z.string().regex(/^ldaps?:\/\/[^/\s]+\/?$/i, 'ldap://host:port or ldaps://host:port'),
  bindDN: z.string().min(1).optional(),
  bindCredentials: secret.optional(),
  searchBase: z.string().min(1).optional(),
  searchFilter: z.string().min(1).optional(),
  searchScope: ldapScope.optional(),
  bindDnTemplate: z.string().min(1).optional(),
  groupSearchBase: z.string().min(1).optional(),
  groupSearchFilter: z.string().min(1).optional(),
  groupSearchScope: ldapScope.optional(),
  groupNameAttribute: z.string().min(1).optional(),
  usernameAttribute: z.string().min(1).optional(),
  starttls: z.boolean().default(false),
  tlsOptions: z
    .strictObject({
      /** secret: PEM CA certificates to trust for the directory's certificate. */
      ca: secret.optional(),
      servername: z.string().min(1).optional(),
    })
    .optional(),
  timeoutMs: z.number().int().min(100).max(60_000).default(5000),
  cacheSeconds: z.number().int().min(0).max(3600).default(0),
});

const oidcAuth = z.strictObject({
  type: z.literal('oidc'),
  name: z.string().min(1).default('oidc'),
  issuers: z
    .array(
      z.strictObject({
        issuer: z.url(),
        audiences: z.array(z.string().min(1)).min(1),
        algorithms: z
          .array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']))
          .min(1)
          .optional(),
        subjectClaim: z.string().min(1).optional(),
        groupsClaim: z.string().min(1).optional(),
        labelClaims: z.record(z.string().min(1), z.string().min(1)).optional(),
        usernames: z.array(z.string().min(1)).optional(),
        introspection: z.strictObject({ clientId: z.string().min(1), clientSecret: secret, allowedClients: z.array(z.string().min(1)).optional() }).optional(),
        clockToleranceSeconds: z.number().int().min(0).max(300).optional(),
        allowInsecure: z.boolean().optional(),
      }),
    )
    .min(1),
  jwksCooldownMs: z.number().int().min(0).max(3_600_000).optional(),
  timeoutMs: z.number().int().min(100).max(60_000).default(5000),
});

const idList = z.array(z.string().min(1)).optional();
const iidAuth = z
  .strictObject({
    type: z.literal('iid'),
    name: z.string().min(1).default('iid'),
    aws: z
      .strictObject({
        /** secrets: PEM certificates that sign instance identity documents (AWS's RSA-2048 certificate per region). */
        certificates: z.array(secret).min(1),
        accounts: idList,
        regions: idList,
        instanceIds: idList,
        /** How long an instance stays bound to its nonce after it last signed in (trust on first use). */
        bindingTtlSeconds: z
          .number()
          .int()
          .min(3600)
          .default(90 * 86_400),
      })
      .optional(),
    gcp: z
      .strictObject({
        audience: z.string().min(1),
        projects: idList,
        zones: idList,
        instances: idList,
        jwksUrl: httpUrl.optional(),
      })
      .optional(),
    azure: z
      .strictObject({
        /** secrets: PEM root certificates the attested document's signer must chain to. */
        roots: z.array(secret).min(1),
        /** secrets: PEM intermediates (IMDS embeds only the signing certificate). */
        intermediates: z.array(secret).default([]),
        /** DNS names (or parent domains) the signing certificate must carry. */
        signerNames: z.array(z.string().min(1)).min(1).default(['metadata.azure.com']),
        subscriptions: idList,
        vmIds: idList,
      })
      .optional(),
  })
  .refine((a) => a.aws !== undefined || a.gcp !== undefined || a.azure !== undefined, 'configure at least one of aws, gcp, azure');

const upstream = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and "-"'),
  /** Repositories of the proxy under this prefix go to this upstream; '' takes every name. */
  prefix: repoPrefix.default(''),
  url: httpUrl,
  /** Prefix put in front of the remaining name on the upstream (e.g. a GCP project). */
  namespace: repoPrefix.default(''),
  /** Docker Hub naming: single-segment names get `library/`. Defaults to true for registry-1.docker.io. */
  dockerHub: z.boolean().optional(),
  /** Virtual hosts served by this upstream (`host` or `host:port`); requests for other hosts never reach it. */
  hosts: z
    .array(
      z
        .string()
        .regex(/^[A-Za-z0-9.-]+(?::\d{1,5})?$/, 'a host name, optionally with :port')
        .transform((h) => h.toLowerCase()),
    )
    .default([]),
  /** Registry hosts (e.g. `docker.io`) this upstream serves as a containerd mirror (`?ns=`). */
  mirrorOf: z
    .array(
      z
        .string()
        .regex(/^[A-Za-z0-9.-]+(?::\d{1,5})?$/, 'a registry host name')
        .transform((h) => h.toLowerCase()),
    )
    .default([]),
  /** Extra CA certificates (PEM) to trust for an HTTPS upstream. */
  ca: secret.optional(),
  /** Shared with the kubelet image service: registry-core's upstreamCredentialsSchema. */
  credentials: upstreamCredentialsSchema.default({ type: 'anonymous' }),
  tokenRealms: z.array(httpUrl).default([]),
  redirects: z.enum(['follow', 'pass']).default('follow'),
  /**
   * Hosts (names or IP literals, no port) a followed redirect may reach although they resolve to
   * loopback, private, link-local, CGNAT or other non-public addresses. By default none: an
   * upstream's redirect must not make the proxy fetch from inside its own network.
   */
  redirectHosts: z
    .array(
      z
        .string()
        .regex(/^(?:[A-Za-z0-9.-]+|\[?[0-9A-Fa-f:.]+\]?)$/, 'a host name or IP address, without port')
        .transform((h) => h.toLowerCase().replace(/^\[|\]$/g, '')),
    )
    .default([]),
  timeouts: z
    .strictObject({
      connectMs: z.number().int().positive().default(10_000),
      headersMs: z.number().int().positive().default(30_000),
      bodyIdleMs: z.number().int().positive().default(60_000),
    })
    .prefault({}),
  attempts: z.number().int().min(1).max(10).default(3),
  /**
   * Identical manifest GET/HEAD requests that arrive while one is in flight share the next
   * upstream request (never one sent before they arrived): one upstream request per round trip
   * and tag however many nodes ask at once.
   */
  coalesce: z.boolean().default(true),
  /** A pull-through cache of this upstream's blobs, manifests and tags (docs/configuration.md); off when absent. */
  cache: cacheConfig.optional(),
});

/**
 * Browser sign-in for people (`/login`): an OpenID Connect authorization-code flow with PKCE
 * against `issuer`, which must be one of the issuers of an `oidc` auth entry (its subject,
 * groups and label claims are used). The page hands out personal CLI secrets for `docker login`.
 */
const login = z.strictObject({
  issuer: z.url(),
  clientId: z.string().min(1),
  clientSecret: secret,
  /** Scopes asked for; `offline_access` gets a refresh token, with which groups are re-checked. */
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope token')).default(['openid', 'profile', 'offline_access']),
  /** The callback URL registered with the provider. Default: `<publicUrl or request origin>/login/callback`. */
  redirectUrl: httpUrl.optional(),
  /** secret: seals the sign-in cookies; replicas must share it. Default: random per process (with a warning). */
  cookieKey: secret.optional(),
  sessionTtlSeconds: z.number().int().min(60).max(86_400).default(3600),
  /** How long a CLI secret works. */
  secretTtlSeconds: z
    .number()
    .int()
    .min(300)
    .max(366 * 86_400)
    .default(30 * 86_400),
  /** After this long, the next use of a secret re-checks the person with the provider (refresh token). */
  revalidateAfterSeconds: z.number().int().min(0).max(86_400).default(900),
  maxSecretsPerUser: z.number().int().min(1).max(100).default(10),
  /** Members of these groups see and may revoke every user's secrets. */
  operatorGroups: z.array(z.string().min(1)).default([]),
  timeoutMs: z.number().int().min(100).max(60_000).default(5000),
});

const rule = z.strictObject({
  account: list.optional(),
  groups: list.optional(),
  labels: z.record(z.string(), z.string()).optional(),
  repository: list,
  /** Virtual hosts the rule applies to (globs, no port); tokens it grants are bound to that host. */
  hosts: z
    .array(
      z
        .string()
        .regex(/^[A-Za-z0-9.*-]+$/, 'a host name or glob, without port')
        .transform((h) => h.toLowerCase()),
    )
    .min(1)
    .optional(),
  /** Upstream names (globs) the rule applies to: repositories that resolve to them by prefix, host or `ns`. */
  upstreams: z.array(z.string().min(1)).min(1).optional(),
  actions: z.array(z.enum(['pull', 'push', 'delete', '*'])),
});

/** The proxy's configuration file. */
export const ConfigSchema = z
  .strictObject({
    listen: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(5000),
        /** Serve HTTPS with these PEM files; they are re-read when they change, without a restart. */
        tls: z
          .strictObject({
            certFile: z.string().min(1),
            keyFile: z.string().min(1),
            /** How often the files are checked for changes. */
            reloadIntervalMs: z.number().int().min(100).max(3_600_000).default(5000),
          })
          .optional(),
      })
      .prefault({}),
    /**
     * Addresses (IPs or CIDRs) of reverse proxies whose X-Forwarded-Proto/-Host are believed when
     * the proxy builds its own URLs (token realm, upload Locations). Nobody is trusted by default.
     */
    trustedProxies: z.array(z.string().min(1)).default([]),
    /** The URL clients use to reach the proxy; the token realm is `<publicUrl>/token`. Default: from the request's Host. */
    publicUrl: httpUrl.optional(),
    service: z.string().min(1).default('registry-proxy'),
    issuer: z.string().min(1).default('registry-proxy'),
    tokens: z
      .strictObject({
        ttlSeconds: z.number().int().min(60).max(86_400).default(300),
        refreshTtlSeconds: z
          .number()
          .int()
          .min(60)
          .default(7 * 86_400),
        clockToleranceSeconds: z.number().int().min(0).max(300).default(5),
        algorithms: z
          .array(z.enum(['ES256', 'RS256']))
          .min(1)
          .default(['ES256', 'RS256']),
        /** PEM private key (EC P-256 or RSA). Without it an in-memory key is generated, with a warning. */
        signingKey: secret.optional(),
        /** More PEM public keys accepted on verification, for key rotation. */
        verificationKeys: z.array(secret).default([]),
        /**
         * A refresh grant for a login older than this re-checks the identity with its strategy
         * (the account still exists, its groups now) before the rules are evaluated.
         */
        revalidateAfterSeconds: z
          .number()
          .int()
          .min(0)
          .max(7 * 86_400)
          .default(600),
        /** A file of revoked subjects (`subject [ISO-8601 time]` per line), watched for changes. */
        revocationsFile: z.string().min(1).optional(),
      })
      .prefault({}),
    auth: z.array(z.discriminatedUnion('type', [staticAuth, ldapAuth, oidcAuth, iidAuth])).default([]),
    /** Token endpoint rate limits (token buckets): per client address and per account name. */
    rateLimits: z
      .strictObject({
        // A node pulling 20 images at once asks for a token per blob (containerd): well over 60.
        perClient: z.strictObject({ burst: z.number().int().min(1).default(300), perSecond: z.number().positive().default(30) }).prefault({}),
        perAccount: z.strictObject({ burst: z.number().int().min(1).default(300), perSecond: z.number().positive().default(30) }).prefault({}),
        /** Failed password attempts per (account, client address). */
        failures: z.strictObject({ points: z.number().int().min(1).default(10), durationSeconds: z.number().int().min(1).max(86_400).default(300) }).prefault({}),
      })
      .prefault({}),
    /** bcrypt checks of htpasswd and configured users run on worker threads, through one bounded queue. */
    passwordChecks: z
      .strictObject({
        workers: z.number().int().min(1).max(16).optional(),
        maxQueue: z.number().int().min(1).max(10_000).default(32),
      })
      .prefault({}),
    /** Files the auth strategies read (htpasswd, secrets given as {file: ...}) are re-read when they change. */
    authFiles: z.strictObject({ reloadIntervalMs: z.number().int().min(100).max(3_600_000).default(1000) }).prefault({}),
    login: login.optional(),
    /**
     * State the replicas share (rate-limit counters, instance-identity replay records, refresh-token
     * revocations, cache fill locks): this process's memory unless `redis` is set.
     */
    state: z
      .strictObject({
        redis: z
          .strictObject({
            /** secret: `redis://[user:password@]host:port[/db]`, `rediss://...` (TLS) or `unix:///path/redis.sock`. */
            url: secret,
            /** Put in front of every key, so several deployments can share one Redis. */
            keyPrefix: z.string().max(100).default('registry-proxy:'),
            /** The longest one Redis command may take: a frozen Redis costs a request at most this. */
            commandTimeoutMs: z.number().int().min(10).max(10_000).default(500),
            connectTimeoutMs: z.number().int().min(100).max(60_000).default(2000),
          })
          .optional(),
      })
      .prefault({}),
    rules: z.array(rule).default([]),
    upstreams: z.array(upstream).min(1),
    log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).prefault({}),
  })
  .superRefine((c, ctx) => {
    if (c.login) {
      const issuers = c.auth.flatMap((a) => (a.type === 'oidc' ? a.issuers : [])).filter((i) => i.issuer === c.login?.issuer);
      if (issuers.length === 0) {
        ctx.addIssue({ code: 'custom', path: ['login', 'issuer'], message: 'must be the issuer of an `oidc` auth entry (its claim mapping is used)' });
      } else if (c.login.operatorGroups.length > 0 && !issuers[0]?.groupsClaim) {
        // Without a groups claim every person signs in with no groups: no one could be an operator.
        ctx.addIssue({ code: 'custom', path: ['login', 'operatorGroups'], message: 'needs a `groupsClaim` on the `oidc` issuer entry of login.issuer' });
      }
    }
    // Routes must not shadow each other: one upstream per name, per mirrored registry, and per
    // (host, prefix).
    const seen = new Map<string, number>();
    const claim = (key: string, i: number, path: PropertyKey[], what: string) => {
      const prev = seen.get(key);
      if (prev === undefined) seen.set(key, i);
      else ctx.addIssue({ code: 'custom', path: ['upstreams', i, ...path], message: `${what} is already used by upstreams.${prev}` });
    };
    c.upstreams.forEach((u, i) => {
      claim(`name\u0000${u.name}`, i, ['name'], `name ${JSON.stringify(u.name)}`);
      for (const m of u.mirrorOf) claim(`mirror\u0000${normaliseRegistryHost(m)}`, i, ['mirrorOf'], `mirror of ${m}`);
      for (const h of u.hosts.length > 0 ? u.hosts : [''])
        claim(`route\u0000${h}\u0000${u.prefix}`, i, ['prefix'], h ? `host ${h} with prefix ${JSON.stringify(u.prefix)}` : `prefix ${JSON.stringify(u.prefix)}`);
    });
    // Upstreams may share one cache directory or store repository (one quota, one LRU, one client:
    // the first upstream's settings are the ones used): they must agree on its size and settings.
    const quotas = new Map<string, { bytes: number; store: string; i: number }>();
    c.upstreams.forEach((u, i) => {
      if (!u.cache) return;
      const st = u.cache.store;
      const where = st.type === 'filesystem' ? st.path : `${st.url}/${st.repository}`;
      const prev = quotas.get(where);
      if (prev === undefined) quotas.set(where, { bytes: u.cache.maxBytes, store: JSON.stringify(st), i });
      else if (prev.bytes !== u.cache.maxBytes)
        ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'cache', 'maxBytes'], message: `differs from upstreams.${prev.i}.cache.maxBytes, which shares this store` });
      else if (prev.store !== JSON.stringify(st))
        ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'cache', 'store'], message: `differs from upstreams.${prev.i}.cache.store, which names the same store registry repository` });
    });
    // A rule naming an upstream that does not exist never applies: for a deny rule that would
    // fail open, so a typo is refused here.
    c.rules.forEach((r, i) =>
      r.upstreams?.forEach((g, j) => {
        if (!c.upstreams.some((u) => globToRegExp(g).test(u.name)))
          ctx.addIssue({ code: 'custom', path: ['rules', i, 'upstreams', j], message: `matches no upstream name (${c.upstreams.map((u) => u.name).join(', ')})` });
      }),
    );
  });

export type Config = z.infer<typeof ConfigSchema>;
export type UpstreamConfig = Config['upstreams'][number];
export type LoginConfig = NonNullable<Config['login']>;
