import { IidStrategy } from '@registry-proxy/auth-iid';
import { LdapStrategy } from '@registry-proxy/auth-ldap';
import { OidcStrategy } from '@registry-proxy/auth-oidc';
import { BcryptWorkers, StaticStrategy } from '@registry-proxy/auth-static';
import {
  AccessRules,
  KeySet,
  ProxyError,
  RefreshCheck,
  TokenEndpoint,
  TokenService,
  UpstreamClient,
  VerifierChain,
  createCredentialProvider,
  outboundProxyFromEnv,
  type CredentialVerifier,
  type RevocationList,
  type SecretRef,
  type StateStore,
} from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import { ReloadingVerifier, secretFiles } from './auth-reload.js';
import { RevocationsFile } from './revocations-file.js';
import { readConfiguredFile, resolveSecret } from './config/load.js';
import type { Config } from './config/schema.js';
import { openCaches } from './cache/setup.js';
import { Flights, type SharedResponse } from './coalesce.js';
import { Router, normaliseRegistryHost } from './routing.js';
import { createLogin, type Login } from './login/index.js';
import { RedisCliSecretStore } from './login/redis-store.js';
import { replicaRevocations } from './state/revocations.js';
import { createSharedState, type SharedState } from './state/shared.js';

/** Everything the HTTP layer needs, built once from a validated configuration. */
export interface Runtime {
  readonly config: Config;
  readonly tokens: TokenService;
  readonly keys: KeySet;
  readonly tokenEndpoint: TokenEndpoint;
  readonly router: Router;
  readonly rules: AccessRules;
  /** Refresh tokens revoked by operators: tokens.revocationsFile and --revoke-subject (state/revocations.ts), read as one. */
  readonly revocations: RevocationList;
  /** The verifiers of `auth`, in order; each is rebuilt when a file it reads changes. */
  readonly verifiers: readonly ReloadingVerifier[];
  /** The bcrypt pool and its bounded queue (its stats feed metrics). */
  readonly bcrypt: BcryptWorkers;
  /** Browser sign-in, when `login` is configured. */
  readonly login?: Login | undefined;
  /** Rate-limit counters, replay records, revocations and locks: memory, or Redis when configured. */
  readonly state: SharedState;
  close(): Promise<void>;
}

type AuthConfig = Config['auth'][number];

/** Builds the strategy of `auth.<i>`, reading its files and secrets as they are now. */
function strategy(config: Config, a: AuthConfig, i: number, bcrypt: BcryptWorkers, store: StateStore): CredentialVerifier & { close?(): Promise<void> } {
  if (a.type === 'iid') {
    const { aws, gcp, azure } = a;
    const pems = (list: readonly SecretRef[], key: string) => list.map((c, j) => resolveSecret(c, `auth.${i}.${key}.${j}`));
    return configured(
      `auth.${i}`,
      () =>
        new IidStrategy({
          name: a.name,
          realm: config.service,
          aws: aws && { ...aws, store, certificates: aws.certificates.map((c, j) => resolveSecret(c, `auth.${i}.aws.certificates.${j}`)) },
          gcp,
          azure: azure && { ...azure, roots: pems(azure.roots, 'azure.roots'), intermediates: pems(azure.intermediates, 'azure.intermediates') },
        }),
    );
  }
  if (a.type === 'oidc') {
    return configured(
      `auth.${i}`,
      () =>
        new OidcStrategy({
          name: a.name,
          realm: config.service,
          timeoutMs: a.timeoutMs,
          jwksCooldownMs: a.jwksCooldownMs,
          issuers: a.issuers.map(({ introspection, ...iss }, j) => ({
            ...iss,
            introspection: introspection && { ...introspection, clientSecret: resolveSecret(introspection.clientSecret, `auth.${i}.issuers.${j}.introspection.clientSecret`) },
          })),
        }),
    );
  }
  if (a.type === 'ldap') {
    const key = `auth.${i}`;
    const ca = a.tlsOptions?.ca === undefined ? undefined : resolveSecret(a.tlsOptions.ca, `${key}.tlsOptions.ca`);
    const tlsOptions = a.tlsOptions && { ca, servername: a.tlsOptions.servername };
    return configured(
      key,
      () =>
        new LdapStrategy({
          name: a.name,
          realm: config.service,
          url: a.url,
          bindDN: a.bindDN,
          bindCredentials: a.bindCredentials === undefined ? undefined : resolveSecret(a.bindCredentials, `${key}.bindCredentials`),
          ...pick(a, ['searchBase', 'searchFilter', 'searchScope', 'bindDnTemplate', 'groupSearchBase', 'groupSearchFilter', 'groupSearchScope', 'groupNameAttribute', 'usernameAttribute'] as const),
          starttls: a.starttls,
          tlsOptions,
          timeout: a.timeoutMs,
          cacheSeconds: a.cacheSeconds,
        }),
    );
  }
  return new StaticStrategy({
    name: a.name,
    realm: config.service,
    htpasswd: (a.htpasswd ?? []).map((path, j) => ({ source: path, text: readConfiguredFile(path, `auth.${i}.htpasswd.${j}`) })),
    users: a.users,
    groups: a.groups,
    workers: bcrypt,
    cacheSeconds: a.cacheSeconds,
  });
}

/** The `auth` chain; each strategy is rebuilt when one of its files changes (issue 11, defect 11). */
function verifiers(config: Config, logger: Logger, bcrypt: BcryptWorkers, store: StateStore): ReloadingVerifier[] {
  const built: ReloadingVerifier[] = [];
  try {
    for (const [i, a] of config.auth.entries()) {
      const files = [...(a.type === 'static' ? (a.htpasswd ?? []) : []), ...secretFiles(a)];
      built.push(new ReloadingVerifier({ key: `auth.${i}`, files, build: () => strategy(config, a, i, bcrypt, store), logger, intervalMs: config.authFiles.reloadIntervalMs }));
    }
  } catch (err) {
    void Promise.all(built.map((v) => v.close()));
    throw err;
  }
  return built;
}

/** Builds a strategy; its configuration errors name the configuration key. */
function configured<T>(key: string, build: () => T): T {
  try {
    return build();
  } catch (err) {
    if (err instanceof ProxyError) throw new ProxyError(err.code, `${key}: ${err.message.replace(/^RP_ERR_\w+: /, '')}`);
    throw err;
  }
}

/** The keys of `o` among `keys` whose values are defined. */
function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** Builds the runtime; throws a ProxyError naming the configuration key when something is unusable. */
export async function createRuntime(config: Config, logger: Logger): Promise<Runtime> {
  const t = config.tokens;
  let keys: KeySet;
  if (t.signingKey === undefined) {
    logger.warn('no tokens.signingKey configured: using an in-memory key; tokens die with this process and replicas cannot share it');
    keys = await KeySet.ephemeral();
  } else {
    const extra = t.verificationKeys.map((k, i) => resolveSecret(k, `tokens.verificationKeys.${i}`));
    keys = await KeySet.fromPem(resolveSecret(t.signingKey, 'tokens.signingKey'), extra);
  }
  if (!t.algorithms.includes(keys.signer.alg)) {
    throw new ProxyError('RP_ERR_CONFIG_INVALID', `tokens.algorithms: does not include ${keys.signer.alg}, the signing key's algorithm`);
  }
  const state = await createSharedState(config.state, logger);
  const tokens = new TokenService({
    issuer: config.issuer,
    service: config.service,
    keys,
    accessTokenTtl: t.ttlSeconds,
    refreshTokenTtl: t.refreshTtlSeconds,
    algorithms: t.algorithms,
    clockTolerance: t.clockToleranceSeconds,
  });
  const rules = new AccessRules(config.rules);
  const bcrypt = new BcryptWorkers({ maxQueue: config.passwordChecks.maxQueue, size: config.passwordChecks.workers });
  const { file: fileRevocations, all: revocations } = replicaRevocations(state.store, t.refreshTtlSeconds);
  const revocationsFile = t.revocationsFile ? new RevocationsFile(t.revocationsFile, fileRevocations, logger, config.authFiles.reloadIntervalMs) : undefined;
  await revocationsFile?.start();
  const chain = verifiers(config, logger, bcrypt, state.store);
  const login = configured('login', () => createLogin(config, logger, state.redis ? new RedisCliSecretStore(state.redis) : undefined));
  // CLI secrets first: they are recognised by their prefix, and no other strategy should see one.
  const verifier = new VerifierChain(login ? [login.secrets, ...chain] : chain);
  const refreshCheck = new RefreshCheck({ lookup: (identity) => verifier.lookup(identity), revalidateAfter: t.revalidateAfterSeconds, revocations });
  // HTTP_PROXY / HTTPS_PROXY / NO_PROXY, read once, as curl and Go's net/http read them.
  const outboundProxy = outboundProxyFromEnv(process.env);
  const clients = config.upstreams.map(
    (u, i) =>
      new UpstreamClient({
        name: u.name,
        url: u.url,
        credentials: createCredentialProvider(u.credentials, `upstreams.${i}.credentials`, resolveSecret),
        followRedirects: u.redirects === 'follow',
        redirectHosts: u.redirectHosts,
        outboundProxy,
        tokenRealms: u.tokenRealms,
        timeouts: u.timeouts,
        ca: u.ca === undefined ? undefined : resolveSecret(u.ca, `upstreams.${i}.ca`),
        retry: { attempts: u.attempts, baseDelayMs: 100, maxDelayMs: 2000 },
        userAgent: 'registry-proxy/0.1',
      }),
  );
  const caches = await openCaches(config, clients, logger, config.state.redis ? state.store : undefined, (c, key) => createCredentialProvider(c, key, resolveSecret));
  const router = new Router(
    config.upstreams.map((u, i) => ({
      prefix: u.prefix,
      namespace: u.namespace,
      dockerHub: u.dockerHub ?? new URL(u.url).hostname === 'registry-1.docker.io',
      hosts: u.hosts,
      mirrorOf: u.mirrorOf.map(normaliseRegistryHost),
      client: clients[i] as UpstreamClient,
      flights: u.coalesce ? new Flights<SharedResponse | undefined>() : undefined,
      cache: caches[i],
    })),
  );
  // Grants are made on the upstream a name resolves to, and the token says which (issue 11).
  const tokenEndpoint = new TokenEndpoint({ tokens, verifier, rules, basicRealm: config.service, refreshCheck, locate: (name, host) => router.locate(name, host) });
  return {
    config,
    tokens,
    keys,
    tokenEndpoint,
    router,
    rules,
    revocations,
    verifiers: chain,
    bcrypt,
    login,
    state,
    close: async () => {
      revocationsFile?.stop();
      await Promise.all([...clients.map((c) => c.close()), ...chain.map((v) => v.close()), bcrypt.close()]);
      await state.close();
    },
  };
}
