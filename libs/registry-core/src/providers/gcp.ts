import { readFile } from 'node:fs/promises';
import { importPKCS8, SignJWT } from 'jose';
import { CredentialError, type UpstreamCredentialProvider, type UpstreamCredentials } from '../credentials.js';
import { TokenCache } from '../upstream/token-cache.js';
import { Refreshing } from './refresh.js';

export interface GcpProviderOptions {
  /** A refused credential is fetched anew only when it is older than this. Default 30 s. */
  readonly minRefetchMs?: number;
  /** A service-account key file (JSON). Without it, the metadata server of the GCE/GKE node. */
  readonly keyFile?: string;
  /** The metadata server; default `http://$GCE_METADATA_HOST` or `http://metadata.google.internal`. */
  readonly metadataUrl?: string;
  /** OAuth scopes for a key file's token. Default cloud-platform. */
  readonly scopes?: readonly string[];
  readonly timeoutMs?: number;
}

const NAME = 'gcp';
/** The user name Google's registries expect with an OAuth access token. */
export const GCP_TOKEN_USER = 'oauth2accesstoken';

interface KeyFile {
  type?: string;
  client_email?: string;
  private_key?: string;
  private_key_id?: string;
  token_uri?: string;
}

/**
 * Google Artifact Registry / Container Registry: an OAuth access token as the password of
 * `oauth2accesstoken`, from the metadata server (the node's service account on GCE and GKE,
 * Workload Identity included) or by signing a JWT with a service-account key. Renewed at 90%
 * of its life.
 */
export class GcpProvider implements UpstreamCredentialProvider {
  private readonly token: Refreshing<UpstreamCredentials>;

  constructor(private readonly opts: GcpProviderOptions = {}) {
    this.token = new Refreshing(() => this.fetch(), { minAgeMs: this.opts.minRefetchMs ?? 30_000 });
  }

  credentials(): Promise<UpstreamCredentials> {
    return this.token.get();
  }

  invalidate(): void {
    this.token.invalidate();
  }

  private async fetch() {
    const started = Date.now();
    const { access_token, expires_in } = this.opts.keyFile ? await this.fromKeyFile(this.opts.keyFile) : await this.fromMetadata();
    const value: UpstreamCredentials = { kind: 'basic', username: GCP_TOKEN_USER, password: access_token };
    return { value, refreshAt: TokenCache.refreshAt(started, expires_in), expiresAt: started + expires_in * 1000 };
  }

  private async request(url: string, init: RequestInit, what: string): Promise<{ access_token: string; expires_in: number }> {
    let res: Response;
    try {
      res = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = (err as Error).name === 'TimeoutError' ? 'timed out' : (cause?.code ?? cause?.message ?? (err as Error).message);
      throw new CredentialError(NAME, `${what} unreachable: ${why}`, { cause: err });
    }
    const text = await res.text();
    // An error body may echo the request, never the answer's token: only the status is reported.
    if (res.status !== 200) throw new CredentialError(NAME, `${what} answered HTTP ${res.status}`);
    let body: { access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new CredentialError(NAME, `${what} sent something that is not JSON`);
    }
    if (typeof body.access_token !== 'string' || !body.access_token) throw new CredentialError(NAME, `${what} sent no access_token`);
    const expires = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 300;
    return { access_token: body.access_token, expires_in: expires };
  }

  private fromMetadata() {
    const base = this.opts.metadataUrl ?? `http://${process.env['GCE_METADATA_HOST'] ?? 'metadata.google.internal'}`;
    const url = `${base.replace(/\/+$/, '')}/computeMetadata/v1/instance/service-accounts/default/token`;
    return this.request(url, { headers: { 'Metadata-Flavor': 'Google' } }, 'the metadata server');
  }

  private async fromKeyFile(path: string) {
    let key: KeyFile;
    try {
      key = JSON.parse(await readFile(path, 'utf8')) as KeyFile;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CredentialError(NAME, code ? `cannot read key file ${path}: ${code}` : `key file ${path} is not JSON`);
    }
    if (key.type !== 'service_account' || !key.client_email || !key.private_key || !key.token_uri) {
      throw new CredentialError(NAME, `key file ${path} is not a service-account key (type, client_email, private_key, token_uri)`);
    }
    let pk: Awaited<ReturnType<typeof importPKCS8>>;
    try {
      pk = await importPKCS8(key.private_key, 'RS256');
    } catch {
      throw new CredentialError(NAME, `key file ${path}: private_key is not an RSA PKCS#8 key`);
    }
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ scope: (this.opts.scopes ?? ['https://www.googleapis.com/auth/cloud-platform']).join(' ') })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(key.private_key_id ? { kid: key.private_key_id } : {}) })
      .setIssuer(key.client_email)
      .setAudience(key.token_uri)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(pk);
    const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion });
    return this.request(key.token_uri, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() }, 'the token endpoint');
  }
}
