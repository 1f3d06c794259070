import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { freePort } from './proc.js';

/** A running oidc-provider and how to get tokens from it. */
export interface TestOidcProvider {
  readonly issuer: string;
  /** A client_credentials token: a JWT for `resource`, or an opaque one without it. */
  token(resource?: string, client?: { id: string; secret: string }): Promise<string>;
  /** Restarts with these signing keys (the first signs): key rotation. */
  restart(keys: object[]): Promise<void>;
  stop(): Promise<void>;
}

export const OIDC_CLIENT = { id: 'ci-pipeline', secret: 'ci-pipeline-secret-0123456789' } as const;

/** A private JWK for the provider's key set. */
export function newSigningJwk(kid: string, kind: 'rsa' | 'ec' = 'rsa'): object {
  const { privateKey } = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: kind === 'rsa' ? 'RS256' : 'ES256' };
}

/** A client that signs people in through a browser (authorization code + PKCE, refresh tokens). */
export interface BrowserClient {
  readonly id: string;
  readonly secret: string;
  readonly redirectUris: readonly string[];
  /** A JSON file `{"<login>": {claims...}}`, read at every use: the people who can sign in. */
  readonly accountsFile: string;
}

export async function startOidcProvider(options: { ttl?: number; extraClaims?: Record<string, unknown>; keys?: object[]; browser?: BrowserClient } = {}): Promise<TestOidcProvider> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  let keys = options.keys ?? [newSigningJwk('k1')];
  let child: ChildProcess | undefined;
  const start = async () => {
    const cfg = {
      port,
      issuer,
      jwks: { keys },
      ttl: options.ttl,
      extraClaims: options.extraClaims,
      clients: [
        { client_id: OIDC_CLIENT.id, client_secret: OIDC_CLIENT.secret, grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: 'registry' },
        ...(options.browser
          ? [
              {
                client_id: options.browser.id,
                client_secret: options.browser.secret,
                grant_types: ['authorization_code', 'refresh_token'],
                redirect_uris: options.browser.redirectUris,
                response_types: ['code'],
                scope: 'openid offline_access profile groups',
              },
            ]
          : []),
      ],
      ...(options.browser ? { accountsFile: options.browser.accountsFile } : {}),
    };
    const c = spawn(process.execPath, [join(__dirname, '../assets/oidc-provider.mjs'), JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let err = '';
    c.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      c.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      c.once('exit', (code) => reject(new Error(`oidc-provider exited ${code}: ${err.slice(0, 2000)}`)));
    });
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((r) => {
      c.once('exit', () => r());
      c.kill('SIGTERM');
    });
  };
  await start();
  return {
    issuer,
    async token(resource, client = OIDC_CLIENT) {
      const form = new URLSearchParams({ grant_type: 'client_credentials', scope: 'registry' });
      if (resource) form.set('resource', resource);
      const res = await fetch(`${issuer}/token`, { method: 'POST', body: form, headers: { authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}` } });
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
      if (!body.access_token) throw new Error(`token: ${res.status} ${body.error} ${body.error_description}`);
      return body.access_token;
    },
    async restart(next) {
      await stop();
      keys = next;
      await start();
    },
    stop,
  };
}
