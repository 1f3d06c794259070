import { decodeJwt } from 'jose';
import { CredentialError, type CredentialRequest, type UpstreamCredentialProvider, type UpstreamCredentials } from '../credentials.js';
import { TokenCache } from '../upstream/token-cache.js';
import { Refreshing } from './refresh.js';

/** Where the Entra ID (AAD) access token comes from. */
export type AcrIdentity =
  /** The VM's or pod's managed identity, from IMDS; `clientId` picks a user-assigned one. */
  | { readonly type: 'managed-identity'; readonly imdsUrl?: string | undefined; readonly clientId?: string | undefined }
  /** A service principal's client secret, at Entra ID's v2 token endpoint. */
  | { readonly type: 'service-principal'; readonly tenantId: string; readonly clientId: string; readonly clientSecret: string; readonly tokenUrl?: string | undefined };

export interface AcrProviderOptions {
  readonly identity: AcrIdentity;
  /** The tenant named to the exchange; default the service principal's, or the access token's `tid`. */
  readonly tenantId?: string | undefined;
  /** The audience of the Entra ID token; default Azure Resource Manager, which ACR accepts. */
  readonly resource?: string | undefined;
  /** ACR's exchange endpoint; default `https://<registry>/oauth2/exchange`. */
  readonly exchangeUrl?: string | undefined;
  /** The registry's service name; default the registry host (ACR's login server). */
  readonly service?: string | undefined;
  /** A refused credential is fetched anew only when it is older than this. Default 30 s. */
  readonly minRefetchMs?: number;
  readonly timeoutMs?: number;
}

const NAME = 'acr';
/** The user name that tells ACR the password is an ACR refresh token (Azure/acr docs/AAD-OAuth.md). */
export const ACR_REFRESH_TOKEN_USER = '00000000-0000-0000-0000-000000000000';
const ARM = 'https://management.azure.com/';

/**
 * Azure Container Registry: an Entra ID access token (managed identity from IMDS, or a service
 * principal's client credentials) exchanged at the registry's `POST /oauth2/exchange` for an
 * ACR refresh token, which then is the password of the null-GUID user: the upstream client
 * presents it to the registry's token realm like any Basic credential, as docker does after
 * `az acr login`. Renewed at 90% of the refresh token's life (its JWT `exp`).
 */
export class AcrProvider implements UpstreamCredentialProvider {
  private readonly perRegistry = new Map<string, Refreshing<UpstreamCredentials>>();

  constructor(private readonly opts: AcrProviderOptions) {}

  credentials(request: CredentialRequest): Promise<UpstreamCredentials> {
    let r = this.perRegistry.get(request.registry);
    if (!r) {
      r = new Refreshing(() => this.fetch(request.registry), { minAgeMs: this.opts.minRefetchMs ?? 30_000 });
      this.perRegistry.set(request.registry, r);
    }
    return r.get();
  }

  invalidate(request: CredentialRequest): void {
    this.perRegistry.get(request.registry)?.invalidate();
  }

  private async fetch(registry: string) {
    const started = Date.now();
    const aad = await this.aadToken();
    let tenant = this.opts.tenantId ?? (this.opts.identity.type === 'service-principal' ? this.opts.identity.tenantId : undefined);
    if (tenant === undefined) {
      try {
        const tid = decodeJwt(aad)['tid'];
        if (typeof tid === 'string') tenant = tid;
      } catch {
        /* not a JWT: the exchange goes without a tenant */
      }
    }
    const form = new URLSearchParams({ grant_type: 'access_token', service: this.opts.service ?? registry, ...(tenant ? { tenant } : {}), access_token: aad });
    const body = await this.post(this.opts.exchangeUrl ?? `https://${registry}/oauth2/exchange`, form, "the registry's /oauth2/exchange");
    const refresh = body['refresh_token'];
    if (typeof refresh !== 'string' || !refresh) throw new CredentialError(NAME, 'the exchange sent no refresh_token');
    let exp: number | undefined;
    try {
      exp = decodeJwt(refresh).exp;
    } catch {
      /* opaque: assume a short life below */
    }
    const expiresAt = exp !== undefined ? exp * 1000 : started + 600_000;
    const value: UpstreamCredentials = { kind: 'basic', username: ACR_REFRESH_TOKEN_USER, password: refresh };
    return { value, expiresAt, refreshAt: TokenCache.refreshAt(started, Math.max(0, (expiresAt - started) / 1000)) };
  }

  private async aadToken(): Promise<string> {
    const id = this.opts.identity;
    const resource = this.opts.resource ?? ARM;
    let body: Record<string, unknown>;
    if (id.type === 'managed-identity') {
      const q = new URLSearchParams({ 'api-version': '2018-02-01', resource, ...(id.clientId ? { client_id: id.clientId } : {}) });
      body = await this.call(`${(id.imdsUrl ?? 'http://169.254.169.254').replace(/\/+$/, '')}/metadata/identity/oauth2/token?${q}`, { headers: { Metadata: 'true' } }, 'IMDS managed identity');
    } else {
      const url = id.tokenUrl ?? `https://login.microsoftonline.com/${encodeURIComponent(id.tenantId)}/oauth2/v2.0/token`;
      const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: id.clientId, client_secret: id.clientSecret, scope: `${resource.replace(/\/+$/, '')}/.default` });
      body = await this.post(url, form, 'the Entra ID token endpoint');
    }
    const token = body['access_token'];
    if (typeof token !== 'string' || !token) throw new CredentialError(NAME, 'the identity provider sent no access_token');
    return token;
  }

  private post(url: string, form: URLSearchParams, what: string) {
    return this.call(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() }, what);
  }

  private async call(url: string, init: RequestInit, what: string): Promise<Record<string, unknown>> {
    let res: Response;
    try {
      res = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = (err as Error).name === 'TimeoutError' ? 'timed out' : (cause?.code ?? cause?.message ?? (err as Error).message);
      throw new CredentialError(NAME, `${what} unreachable: ${why}`, { cause: err });
    }
    const text = await res.text();
    // Error bodies may echo the request (client secret, tokens): only the status is reported.
    if (res.status !== 200) throw new CredentialError(NAME, `${what} answered HTTP ${res.status}`);
    try {
      const body = JSON.parse(text) as unknown;
      if (body && typeof body === 'object') return body as Record<string, unknown>;
    } catch {
      /* below */
    }
    throw new CredentialError(NAME, `${what} sent something that is not a JSON object`);
  }
}
