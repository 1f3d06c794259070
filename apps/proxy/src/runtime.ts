import { IidStrategy } from '@registry-proxy/auth-iid';
import { LdapStrategy } from '@registry-proxy/auth-ldap';
import { OidcStrategy } from '@registry-proxy/auth-oidc';
import { StaticStrategy } from '@registry-proxy/auth-static';
import {
  AccessRules,
  DockerConfigProvider,
  EcrProvider,
  GcpProvider,
  KeySet,
  ProxyError,
  TokenEndpoint,
  TokenService,
  UpstreamClient,
  VerifierChain,
  anonymousProvider,
  outboundProxyFromEnv,
  staticProvider,
  type CredentialVerifier,
  type UpstreamCredentialProvider,
} from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import { readConfiguredFile, resolveSecret } from './config/load.js';
import type { Config, UpstreamConfig } from './config/schema.js';
import { Flights, type SharedResponse } from './coalesce.js';
import { Router, normaliseRegistryHost } from './routing.js';

/** Everything the HTTP layer needs, built once from a validated configuration. */
export interface Runtime {
  readonly config: Config;
  readonly tokens: TokenService;
  readonly keys: KeySet;
  readonly tokenEndpoint: TokenEndpoint;
  readonly router: Router;
  readonly rules: AccessRules;
  close(): Promise<void>;
}

function credentialsFor(u: UpstreamConfig, i: number): UpstreamCredentialProvider {
  const c = u.credentials;
  const key = `upstreams.${i}.credentials`;
  if (c.type === 'static') return staticProvider({ kind: 'basic', username: c.username, password: resolveSecret(c.password, `${key}.password`) });
  if (c.type === 'bearer') return staticProvider({ kind: 'bearer', token: resolveSecret(c.token, `${key}.token`) });
  if (c.type === 'docker-config') return new DockerConfigProvider({ ...(c.path ? { path: c.path } : {}), cacheSeconds: c.cacheSeconds });
  if (c.type === 'ecr') return new EcrProvider({ ...(c.region ? { region: c.region } : {}), ...(c.registryId ? { registryId: c.registryId } : {}), ...(c.endpoint ? { endpoint: c.endpoint } : {}) });
  if (c.type === 'gcp') return new GcpProvider({ ...(c.keyFile ? { keyFile: c.keyFile } : {}), ...(c.metadataUrl ? { metadataUrl: c.metadataUrl } : {}) });
  return anonymousProvider;
}

function verifiers(config: Config): Array<CredentialVerifier & { close?(): Promise<void> }> {
  return config.auth.map((a, i) => {
    if (a.type === 'iid') {
      const { aws, gcp } = a;
      return configured(`auth.${i}`, () =>
        new IidStrategy({
          name: a.name,
          realm: config.service,
          ...(aws ? { aws: { ...aws, certificates: aws.certificates.map((c, j) => resolveSecret(c, `auth.${i}.aws.certificates.${j}`)) } } : {}),
          ...(gcp ? { gcp } : {}),
        }),
      );
    }
    if (a.type === 'oidc') {
      return configured(`auth.${i}`, () =>
        new OidcStrategy({
          name: a.name,
          realm: config.service,
          timeoutMs: a.timeoutMs,
          ...(a.jwksCooldownMs !== undefined ? { jwksCooldownMs: a.jwksCooldownMs } : {}),
          issuers: a.issuers.map(({ introspection, ...iss }, j) => ({
            ...iss,
            ...(introspection ? { introspection: { ...introspection, clientSecret: resolveSecret(introspection.clientSecret, `auth.${i}.issuers.${j}.introspection.clientSecret`) } } : {}),
          })),
        }),
      );
    }
    if (a.type === 'ldap') {
      const key = `auth.${i}`;
      const ca = a.tlsOptions?.ca === undefined ? undefined : resolveSecret(a.tlsOptions.ca, `${key}.tlsOptions.ca`);
      const tlsOptions = a.tlsOptions ? { ...(ca ? { ca } : {}), ...(a.tlsOptions.servername ? { servername: a.tlsOptions.servername } : {}) } : undefined;
      return configured(key, () =>
        new LdapStrategy({
          name: a.name,
          realm: config.service,
          url: a.url,
          ...(a.bindDN !== undefined ? { bindDN: a.bindDN } : {}),
          ...(a.bindCredentials !== undefined ? { bindCredentials: resolveSecret(a.bindCredentials, `${key}.bindCredentials`) } : {}),
          ...pick(a, ['searchBase', 'searchFilter', 'searchScope', 'bindDnTemplate', 'groupSearchBase', 'groupSearchFilter', 'groupSearchScope', 'groupNameAttribute', 'usernameAttribute'] as const),
          starttls: a.starttls,
          ...(tlsOptions ? { tlsOptions } : {}),
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
    });
  });
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
  const chain = verifiers(config);
  const tokenEndpoint = new TokenEndpoint({ tokens, verifier: new VerifierChain(chain), rules, basicRealm: config.service });
  // HTTP_PROXY / HTTPS_PROXY / NO_PROXY, read once, as curl and Go's net/http read them.
  const outboundProxy = outboundProxyFromEnv(process.env);
  const clients = config.upstreams.map(
    (u, i) =>
      new UpstreamClient({
        name: u.name,
        url: u.url,
        credentials: credentialsFor(u, i),
        followRedirects: u.redirects === 'follow',
        redirectHosts: u.redirectHosts,
        ...(outboundProxy ? { outboundProxy } : {}),
        tokenRealms: u.tokenRealms,
        timeouts: u.timeouts,
        ...(u.ca ? { ca: resolveSecret(u.ca, `upstreams.${i}.ca`) } : {}),
        retry: { attempts: u.attempts, baseDelayMs: 100, maxDelayMs: 2000 },
        userAgent: 'registry-proxy/0.1',
      }),
  );
  const router = new Router(
    config.upstreams.map((u, i) => ({
      prefix: u.prefix,
      namespace: u.namespace,
      dockerHub: u.dockerHub ?? new URL(u.url).hostname === 'registry-1.docker.io',
      hosts: u.hosts,
      mirrorOf: u.mirrorOf.map(normaliseRegistryHost),
      client: clients[i] as UpstreamClient,
      ...(u.coalesce ? { flights: new Flights<SharedResponse | undefined>() } : {}),
    })),
  );
  return {
    config,
    tokens,
    keys,
    tokenEndpoint,
    router,
    rules,
    close: async () => {
      await Promise.all([...clients.map((c) => c.close()), ...chain.map((v) => v.close?.())]);
    },
  };
}
