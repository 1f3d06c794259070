/**
 * Upstream credentials configurations with the verdict both apps must reach: the proxy
 * (`upstreams[].credentials`) and the kubelet image service (`credentials[].provider`) validate
 * them with registry-core's one schema. Each app's test runs every case through its own config
 * parser, so an app that grows its own schema again fails the moment the two disagree.
 */
export interface CredentialsCase {
  readonly name: string;
  readonly config: Record<string, unknown>;
  /** Undefined: accepted. Otherwise the field (relative to the credentials object) and message expected. */
  readonly refused?: { readonly field: string; readonly message: RegExp };
}

export const CREDENTIALS_CASES: readonly CredentialsCase[] = [
  { name: 'anonymous', config: { type: 'anonymous' } },
  { name: 'static, password from the environment', config: { type: 'static', username: 'bot', password: { env: 'BOT_PASSWORD' } } },
  { name: 'bearer', config: { type: 'bearer', token: { file: '/etc/token' } } },
  { name: 'docker-config', config: { type: 'docker-config', path: '/root/.docker/config.json', cacheSeconds: 60 } },
  { name: 'exec (one credential helper)', config: { type: 'exec', helper: 'ecr-login' } },
  { name: 'ecr with registryId', config: { type: 'ecr', region: 'eu-west-1', registryId: '123456789012', endpoint: 'http://127.0.0.1:4566' } },
  { name: 'gcp', config: { type: 'gcp', metadataUrl: 'http://127.0.0.1:8080' } },
  { name: 'acr, managed identity', config: { type: 'acr', identity: { type: 'managed-identity', clientId: 'c1' }, service: 'x.azurecr.io' } },
  { name: 'acr, service principal', config: { type: 'acr', identity: { type: 'service-principal', tenantId: 't', clientId: 'c', clientSecret: { env: 'SP_SECRET' } } } },
  { name: 'an unknown type', config: { type: 'vault' }, refused: { field: 'type', message: /Invalid discriminator value/ } },
  {
    name: 'static without a password',
    config: { type: 'static', username: 'bot' },
    refused: { field: 'password', message: /^required: a secret: a non-empty string, \{env: NAME\} or \{file: PATH\}$/ },
  },
  { name: 'a secret given as a number', config: { type: 'bearer', token: 42 }, refused: { field: 'token', message: /^a secret: a non-empty string/ } },
  { name: 'an unknown key', config: { type: 'bearer', token: 't', username: 'u' }, refused: { field: 'username', message: /unknown key/ } },
  { name: 'docker-config kept longer than a day', config: { type: 'docker-config', cacheSeconds: 100_000 }, refused: { field: 'cacheSeconds', message: /<=86400/ } },
  { name: 'exec with a path as helper', config: { type: 'exec', helper: '../bin/sh' }, refused: { field: 'helper', message: /the part after docker-credential-/ } },
  { name: 'ecr with a short registryId', config: { type: 'ecr', registryId: '1234' }, refused: { field: 'registryId', message: /a 12-digit AWS account id/ } },
  { name: 'ecr with a bad region', config: { type: 'ecr', region: 'Europe' }, refused: { field: 'region', message: /an AWS region such as eu-west-1/ } },
  { name: 'gcp with a non-HTTP metadata URL', config: { type: 'gcp', metadataUrl: 'ftp://127.0.0.1' }, refused: { field: 'metadataUrl', message: /Invalid URL/ } },
  { name: 'acr without identity', config: { type: 'acr' }, refused: { field: 'identity', message: /expected object, received undefined/ } },
  {
    name: 'acr service principal without a secret',
    config: { type: 'acr', identity: { type: 'service-principal', tenantId: 't', clientId: 'c' } },
    refused: { field: 'identity.clientSecret', message: /^required: a secret/ },
  },
];
