import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { resolveSecret } from '../config/load.js';
import type { Config, LoginConfig } from '../config/schema.js';
import { LoginProvider } from './provider.js';
import { Sealer } from './seal.js';
import { CliSecrets, MemoryCliSecretStore, type CliSecretStore } from './secrets.js';

/** What browser sign-in needs at run time: the provider, the secrets it hands out, the cookie sealer. */
export interface Login {
  readonly config: LoginConfig;
  readonly provider: LoginProvider;
  readonly secrets: CliSecrets;
  readonly sealer: Sealer;
}

/** Builds browser sign-in from `config.login`; undefined when it is not configured. */
export function createLogin(config: Config, logger: Logger, store: CliSecretStore = new MemoryCliSecretStore()): Login | undefined {
  const l = config.login;
  if (!l) return undefined;
  // The schema guarantees the issuer belongs to an oidc entry: its claim mapping is the one people get.
  const issuer = config.auth.flatMap((a) => (a.type === 'oidc' ? a.issuers : [])).find((i) => i.issuer === l.issuer);
  const provider = new LoginProvider({
    issuer: l.issuer,
    clientId: l.clientId,
    clientSecret: resolveSecret(l.clientSecret, 'login.clientSecret'),
    scopes: l.scopes,
    allowInsecure: issuer?.allowInsecure ?? false,
    timeoutMs: l.timeoutMs,
    ...(issuer?.subjectClaim ? { subjectClaim: issuer.subjectClaim } : {}),
    ...(issuer?.groupsClaim ? { groupsClaim: issuer.groupsClaim } : {}),
    ...(issuer?.labelClaims ? { labelClaims: issuer.labelClaims } : {}),
  });
  let key: string | Buffer;
  if (l.cookieKey === undefined) {
    logger.warn('no login.cookieKey configured: sign-in cookies are sealed with an in-memory key; sessions die with this process and replicas cannot share them');
    key = randomBytes(32);
  } else {
    key = resolveSecret(l.cookieKey, 'login.cookieKey');
  }
  const secrets = new CliSecrets({
    store,
    ttlSeconds: l.secretTtlSeconds,
    revalidateAfterSeconds: l.revalidateAfterSeconds,
    maxPerSubject: l.maxSecretsPerUser,
    // Without a refresh token the provider cannot be asked again: the secret stops at revalidation.
    revalidate: async (record) => (record.upstreamRefreshToken === undefined ? undefined : provider.refresh(record.upstreamRefreshToken)),
  });
  return { config: l, provider, secrets, sealer: new Sealer(key) };
}
