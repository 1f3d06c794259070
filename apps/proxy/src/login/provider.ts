import * as oidc from 'openid-client';
import { claimList, claimText, readClaim } from '@registry-proxy/auth-oidc';
import { AuthBackendError, type Identity } from '@registry-proxy/registry-core';

/** The OpenID provider people sign in with, and how its claims become an identity. */
export interface LoginProviderOptions {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scopes: readonly string[];
  readonly subjectClaim?: string;
  readonly groupsClaim?: string;
  readonly labelClaims?: Readonly<Record<string, string>>;
  readonly allowInsecure: boolean;
  readonly timeoutMs: number;
}

/** What the browser must carry from the redirect to the callback (sealed in a cookie). */
export interface PendingLogin {
  readonly state: string;
  readonly nonce: string;
  readonly verifier: string;
}

/** A person as the provider vouched for them. */
export interface SignedIn {
  readonly identity: Identity;
  readonly refreshToken?: string;
}

/**
 * openid-client's codes for a response that failed a check (nonce, state, issuer, audience,
 * signature, times): a refused sign-in, not an unreachable provider.
 */
const CHECK_FAILURES = new Set([
  'OAUTH_JWT_CLAIM_COMPARISON_FAILED',
  'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED',
  'OAUTH_JWT_TIMESTAMP_CHECK_FAILED',
  'OAUTH_JWS_SIGNATURE_VERIFICATION_FAILED',
  'OAUTH_KEY_SELECTION_FAILED',
  'OAUTH_INVALID_RESPONSE',
  'OAUTH_INVALID_REQUEST',
]);

/** A callback the provider or the browser got wrong: shown to the person, never a stack trace. */
export class LoginError extends Error {}

/**
 * The authorization-code flow with PKCE (openid-client): the redirect, the callback (state,
 * nonce, PKCE and the ID token are all checked by openid-client), and a refresh that re-reads
 * the person's claims later.
 */
export class LoginProvider {
  private config: Promise<oidc.Configuration> | undefined;

  constructor(private readonly opts: LoginProviderOptions) {}

  private configuration(): Promise<oidc.Configuration> {
    if (!this.config) {
      const p = oidc.discovery(new URL(this.opts.issuer), this.opts.clientId, this.opts.clientSecret, oidc.ClientSecretBasic(this.opts.clientSecret), {
        ...(this.opts.allowInsecure ? { execute: [oidc.allowInsecureRequests] } : {}),
        timeout: Math.ceil(this.opts.timeoutMs / 1000),
      });
      this.config = p;
      p.catch(() => {
        if (this.config === p) this.config = undefined; // retried on the next sign-in
      });
    }
    return this.config;
  }

  /** The provider's authorization URL for a new sign-in, and what the callback will need. */
  async start(redirectUri: string): Promise<{ url: string; pending: PendingLogin }> {
    const config = await this.backend(() => this.configuration(), 'discovery');
    const pending: PendingLogin = { state: oidc.randomState(), nonce: oidc.randomNonce(), verifier: oidc.randomPKCECodeVerifier() };
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.opts.scopes.join(' '),
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
      // offline_access needs consent at most providers; the refresh token is how groups are re-checked.
      ...(this.opts.scopes.includes('offline_access') ? { prompt: 'consent' } : {}),
    });
    return { url: url.href, pending };
  }

  /** Completes the sign-in from the callback URL the browser arrived at. */
  async finish(callbackUrl: URL, redirectUri: string, pending: PendingLogin): Promise<SignedIn> {
    const config = await this.backend(() => this.configuration(), 'discovery');
    if (callbackUrl.searchParams.get('state') !== pending.state) throw new LoginError('The sign-in state does not match: start again from the sign-in page.');
    const err = callbackUrl.searchParams.get('error');
    if (err !== null) throw new LoginError(`The identity provider refused the sign-in (${err.slice(0, 100)}).`);
    // openid-client compares the callback's origin and path with redirect_uri: give it exactly that.
    const current = new URL(redirectUri);
    current.search = callbackUrl.search;
    let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.authorizationCodeGrant(config, current, { pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce, idTokenExpected: true });
    } catch (e) {
      if (e instanceof oidc.ResponseBodyError || e instanceof oidc.AuthorizationResponseError) throw new LoginError(`The identity provider refused the sign-in (${e.error}).`);
      const code = (e as { code?: unknown }).code;
      if (typeof code === 'string' && CHECK_FAILURES.has(code)) {
        // openid-client wraps oauth4webapi's error, whose message names the check (e.g. the nonce).
        const inner = (e as { cause?: { message?: unknown } }).cause?.message;
        throw new LoginError(`The sign-in response failed its checks: ${(typeof inner === 'string' ? inner : (e as Error).message).slice(0, 200)}`);
      }
      throw new AuthBackendError(`login: token exchange failed: ${(e as Error).message}`, { cause: e });
    }
    const claims = tokens.claims();
    if (!claims) throw new LoginError('The identity provider sent no ID token.');
    const identity = this.identity(claims);
    if (!identity) throw new LoginError(`The ID token has no ${this.opts.subjectClaim ?? 'sub'} claim.`);
    return { identity, ...(tokens.refresh_token ? { refreshToken: tokens.refresh_token } : {}) };
  }

  /** Re-reads the person with a refresh token: undefined when the provider no longer accepts it. */
  async refresh(refreshToken: string): Promise<SignedIn | undefined> {
    const config = await this.backend(() => this.configuration(), 'discovery');
    let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.refreshTokenGrant(config, refreshToken);
    } catch (e) {
      // Only invalid_grant says the refresh token (so the person) is no longer good; any other
      // error (invalid_client after a client secret rotation, ...) is ours or the provider's, and
      // must not cost everyone their secrets.
      if (e instanceof oidc.ResponseBodyError && e.error === 'invalid_grant') return undefined;
      throw new AuthBackendError(`login: refresh failed: ${(e as Error).message}`, { cause: e });
    }
    let claims: Record<string, unknown> | undefined = tokens.claims();
    if (!claims) {
      try {
        claims = await oidc.fetchUserInfo(config, tokens.access_token, oidc.skipSubjectCheck);
      } catch (e) {
        throw new AuthBackendError(`login: userinfo failed: ${(e as Error).message}`, { cause: e });
      }
    }
    const identity = this.identity(claims);
    return identity ? { identity, refreshToken: tokens.refresh_token ?? refreshToken } : undefined;
  }

  private identity(claims: Record<string, unknown>): Identity | undefined {
    const subject = claimText(readClaim(claims, this.opts.subjectClaim ?? 'sub'));
    if (!subject) return undefined;
    const groups = this.opts.groupsClaim ? [...new Set(claimList(readClaim(claims, this.opts.groupsClaim)))].sort() : [];
    const labels: Record<string, string> = { 'oidc.issuer': this.opts.issuer };
    for (const [label, path] of Object.entries(this.opts.labelClaims ?? {})) {
      const v = claimText(readClaim(claims, path));
      if (v !== undefined) labels[label] = v;
    }
    return { subject, method: 'oidc-login', groups, labels };
  }

  private async backend<T>(f: () => Promise<T>, what: string): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw new AuthBackendError(`login: ${what} failed: ${(e as Error).message}`, { cause: e });
    }
  }
}
