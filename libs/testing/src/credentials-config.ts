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

/** An app's configuration parser, as the shared cases need it. */
export interface CredentialsParser {
  /** registry-core's upstreamCredentialsSchema; passed in, since this test library depends on no project package. */
  readonly schema: { safeParse(value: unknown): { success: boolean; data?: unknown } };
  /** The app's whole configuration file (YAML) with `credentials` (JSON text) where its credentials go. */
  yaml(credentials: string): string;
  /** Parses that file (named `t`) and returns the credentials object it holds. */
  parse(yaml: string): unknown;
  /** Where the credentials sit in the parser's error lines, e.g. `t: upstreams.0.credentials.`. */
  readonly errorPrefix: string;
}

/**
 * One test per case of {@link CREDENTIALS_CASES}, through `app`'s own parser: an accepted case
 * must parse to what the shared schema makes of it, a refused one must fail with an error line
 * that names the case's field and matches its message. Call it inside a `describe`.
 */
export function testCredentialsCases(app: CredentialsParser): void {
  it.each(CREDENTIALS_CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const yaml = app.yaml(JSON.stringify(c.config));
    const expected = app.schema.safeParse(c.config);
    if (!c.refused) {
      expect(expected.success).toBe(true);
      expect(app.parse(yaml)).toEqual(expected.data);
      return;
    }
    expect(expected.success).toBe(false);
    let message = '';
    try {
      app.parse(yaml);
    } catch (e) {
      message = (e as Error).message;
    }
    const prefix = `${app.errorPrefix}${c.refused.field}: `;
    const line = message.split('\n').find((l) => l.startsWith(prefix));
    expect(line).toBeDefined();
    expect(line?.slice(prefix.length)).toMatch(c.refused.message);
  });
}
