import { z } from 'zod';
import { anonymousProvider, staticProvider, type UpstreamCredentialProvider } from '../credentials.js';
import { resolveSecret, type SecretRef } from '../secrets.js';
import { AcrProvider, type AcrIdentity } from './acr.js';
import { CredentialHelperProvider, DockerConfigProvider } from './docker-config.js';
import { EcrProvider } from './ecr.js';
import { GcpProvider } from './gcp.js';

// One schema and one factory for upstream credentials, used by the proxy (`upstreams[].credentials`)
// and the kubelet image service (`credentials[].provider`): written twice, they drifted (ECR
// registryId and ACR existed only in the proxy).

/** A secret: given inline, or read from an environment variable or a file when the provider is built. */
export const secretRefSchema = z.union([z.string().min(1), z.strictObject({ env: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })], {
  error: (issue) => `${issue.input === undefined ? 'required: ' : ''}a secret: a non-empty string, {env: NAME} or {file: PATH}`,
});
const httpUrl = z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, ''));

const acrIdentity = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('managed-identity'), clientId: z.string().min(1).optional(), imdsUrl: httpUrl.optional() }),
  z.strictObject({ type: z.literal('service-principal'), tenantId: z.string().min(1), clientId: z.string().min(1), clientSecret: secretRefSchema, tokenUrl: httpUrl.optional() }),
]);

/** The zod schema of upstream credentials; each option is a strict object discriminated by `type`. */
export const upstreamCredentialsSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('anonymous') }),
  z.strictObject({ type: z.literal('static'), username: z.string().min(1), password: secretRefSchema }),
  z.strictObject({ type: z.literal('bearer'), token: secretRefSchema }),
  /** A Docker client config.json: credHelpers, credsStore, auths. */
  z.strictObject({ type: z.literal('docker-config'), path: z.string().min(1).optional(), cacheSeconds: z.number().int().min(0).max(86_400).default(300) }),
  /** One Docker credential helper (`docker-credential-<helper> get`). */
  z.strictObject({ type: z.literal('exec'), helper: z.string().regex(/^[A-Za-z0-9._-]+$/, 'the part after docker-credential-') }),
  /** Amazon ECR through GetAuthorizationToken (AWS SDK default credential chain). */
  z.strictObject({
    type: z.literal('ecr'),
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'an AWS region such as eu-west-1')
      .optional(),
    registryId: z
      .string()
      .regex(/^\d{12}$/, 'a 12-digit AWS account id')
      .optional(),
    endpoint: httpUrl.optional(),
  }),
  /** Google Artifact Registry / GCR: an access token from the metadata server or a service-account key file. */
  z.strictObject({ type: z.literal('gcp'), keyFile: z.string().min(1).optional(), metadataUrl: httpUrl.optional() }),
  /** Azure Container Registry: an Entra ID token (managed identity or service principal) exchanged for an ACR refresh token. */
  z.strictObject({
    type: z.literal('acr'),
    identity: acrIdentity,
    tenantId: z.string().min(1).optional(),
    resource: z.url().optional(),
    exchangeUrl: httpUrl.optional(),
    service: z.string().min(1).optional(),
  }),
]);

/** Validated upstream credentials configuration. */
export type UpstreamCredentialsConfig = z.infer<typeof upstreamCredentialsSchema>;
/** The `type` values of upstream credentials configuration. */
export type UpstreamCredentialsType = UpstreamCredentialsConfig['type'];

/** Keeps only the keys whose value is defined (optional options stay absent, not undefined). */
function defined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

/**
 * Builds the provider a validated configuration describes. `key` is the configuration path,
 * named in errors about secrets (never their values); secrets are read now.
 */
export function createCredentialProvider(c: UpstreamCredentialsConfig, key: string, resolve: (ref: SecretRef, key: string) => string = resolveSecret): UpstreamCredentialProvider {
  switch (c.type) {
    case 'anonymous':
      return anonymousProvider;
    case 'static':
      return staticProvider({ kind: 'basic', username: c.username, password: resolve(c.password, `${key}.password`) });
    case 'bearer':
      return staticProvider({ kind: 'bearer', token: resolve(c.token, `${key}.token`) });
    case 'docker-config':
      return new DockerConfigProvider(defined({ path: c.path, cacheSeconds: c.cacheSeconds }));
    case 'exec':
      return new CredentialHelperProvider(c.helper);
    case 'ecr':
      return new EcrProvider(defined({ region: c.region, registryId: c.registryId, endpoint: c.endpoint }));
    case 'gcp':
      return new GcpProvider(defined({ keyFile: c.keyFile, metadataUrl: c.metadataUrl }));
    case 'acr': {
      const id = c.identity;
      const identity: AcrIdentity = id.type === 'service-principal' ? defined({ ...id, clientSecret: resolve(id.clientSecret, `${key}.identity.clientSecret`) }) : defined(id);
      return new AcrProvider({ identity, ...defined({ tenantId: c.tenantId, resource: c.resource, exchangeUrl: c.exchangeUrl, service: c.service }) });
    }
  }
}
