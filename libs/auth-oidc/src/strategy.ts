import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { AuthBackendError, BasicCredentialStrategy, ProxyError, type AuthOutcome, type Identity } from '@registry-proxy/registry-core';
import { claimList, claimText, readClaim } from './claims.js';

/** One trusted issuer. */
export interface OidcIssuerOptions {
  /** The issuer URL; its metadata is read from `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string;
  /** Accepted `aud` values; a token must name at least one. */
  readonly audiences: readonly string[];
  /** Accepted JWS algorithms; default RS256 and ES256. `none` and HMAC are never accepted. */
  readonly algorithms?: readonly string[] | undefined;
  /** The claim that becomes the identity's subject; default `sub`, else `client_id`. */
  readonly subjectClaim?: string | undefined;
  /** A claim with group names (an array or a string), e.g. `groups`. */
  readonly groupsClaim?: string | undefined;
  /** Labels from claims: label name -> claim path (`repository_owner`, `kubernetes.io.namespace`). */
  readonly labelClaims?: Readonly<Record<string, string>> | undefined;
  /**
   * Basic usernames this issuer answers to. Empty (the default): any username, for JWTs whose
   * `iss` is this issuer. Opaque tokens are introspected only for these usernames.
   */
  readonly usernames?: readonly string[] | undefined;
  /**
   * RFC 7662 introspection for opaque access tokens, as this client of the issuer. An active
   * token must name one of `audiences` in `aud`, or (tokens without audience) have been issued
   * to one of `allowedClients`.
   */
  readonly introspection?: { readonly clientId: string; readonly clientSecret: string; readonly allowedClients?: readonly string[] | undefined } | undefined;
  readonly clockToleranceSeconds?: number | undefined;
  /** Allow an `http:` issuer (tests, a cluster-internal issuer). */
  readonly allowInsecure?: boolean | undefined;
}

export interface OidcStrategyOptions {
  readonly issuers: readonly OidcIssuerOptions[];
  /** Minimum time between JWKS fetches when a token names an unknown key; default 30 s. */
  readonly jwksCooldownMs?: number | undefined;
  readonly timeoutMs?: number;
  readonly name?: string;
  readonly realm?: string;
}

const DEFAULT_ALGS = ['RS256', 'ES256'];
const REFUSED_ALGS = /^(none|HS\d+)$/i;
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/; // an empty signature (alg none) still counts

interface Issuer {
  readonly opts: OidcIssuerOptions;
  readonly algorithms: string[];
  config?: Promise<oidc.Configuration> | undefined;
  jwks?: ReturnType<typeof createRemoteJWKSet>;
}

/**
 * Passport strategy whose password is a token from a trusted OpenID provider: an ID token, a
 * JWT access token, a GitHub Actions OIDC token or a Kubernetes projected service-account
 * token (verified against the issuer's JWKS, found by discovery), or an opaque access token
 * (RFC 7662 introspection). Claims map to the identity's subject, groups and labels.
 */
export class OidcStrategy extends BasicCredentialStrategy {
  readonly name: string;
  private readonly issuers: Issuer[];

  constructor(private readonly opts: OidcStrategyOptions) {
    super(opts.realm);
    this.name = opts.name ?? 'oidc';
    if (opts.issuers.length === 0) throw new ProxyError('RP_ERR_CONFIG_INVALID', 'oidc: at least one issuer');
    this.issuers = opts.issuers.map((i, n) => {
      let url: URL;
      try {
        url = new URL(i.issuer);
      } catch {
        throw new ProxyError('RP_ERR_CONFIG_INVALID', `oidc issuers.${n}.issuer: not a URL`);
      }
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && i.allowInsecure)) throw new ProxyError('RP_ERR_CONFIG_INVALID', `oidc issuers.${n}.issuer: must be https (or set allowInsecure)`);
      if (i.audiences.length === 0) throw new ProxyError('RP_ERR_CONFIG_INVALID', `oidc issuers.${n}.audiences: at least one`);
      const algorithms = [...(i.algorithms ?? DEFAULT_ALGS)];
      const bad = algorithms.find((a) => REFUSED_ALGS.test(a));
      if (bad) throw new ProxyError('RP_ERR_CONFIG_INVALID', `oidc issuers.${n}.algorithms: ${bad} is not allowed`);
      return { opts: i, algorithms };
    });
  }

  /** The issuer's metadata (discovery), fetched once; a failure is retried on the next use. */
  private configuration(iss: Issuer): Promise<oidc.Configuration> {
    if (!iss.config) {
      const intro = iss.opts.introspection;
      const p = oidc.discovery(
        new URL(iss.opts.issuer),
        intro?.clientId ?? 'registry-proxy',
        intro ? { client_secret: intro.clientSecret } : undefined,
        intro ? oidc.ClientSecretBasic(intro.clientSecret) : oidc.None(),
        {
          ...(iss.opts.allowInsecure ? { execute: [oidc.allowInsecureRequests] } : {}),
          timeout: Math.ceil((this.opts.timeoutMs ?? 5000) / 1000),
        },
      );
      iss.config = p;
      p.catch(() => {
        if (iss.config === p) iss.config = undefined;
      });
    }
    return iss.config;
  }

  async verify(username: string, password: string): Promise<AuthOutcome> {
    if (JWT.test(password)) {
      let claimedIssuer: unknown;
      try {
        claimedIssuer = decodeJwt(password).iss;
      } catch {
        return { result: 'skip' };
      }
      const iss = this.issuers.find((i) => i.opts.issuer === claimedIssuer && this.answersTo(i, username, false));
      return iss ? this.verifyJwt(iss, password) : { result: 'skip' };
    }
    const iss = this.issuers.find((i) => i.opts.introspection && this.answersTo(i, username, true));
    return iss ? this.introspect(iss, password) : { result: 'skip' };
  }

  private answersTo(iss: Issuer, username: string, opaque: boolean): boolean {
    const names = iss.opts.usernames ?? [];
    return names.length === 0 ? !opaque : names.includes(username);
  }

  private async verifyJwt(iss: Issuer, token: string): Promise<AuthOutcome> {
    let config: oidc.Configuration;
    try {
      config = await this.configuration(iss);
    } catch (err) {
      throw new AuthBackendError(`oidc ${iss.opts.issuer}: discovery failed: ${describe(err)}`, { cause: err });
    }
    const jwksUri = config.serverMetadata().jwks_uri;
    if (!jwksUri) throw new AuthBackendError(`oidc ${iss.opts.issuer}: the metadata has no jwks_uri`);
    iss.jwks ??= createRemoteJWKSet(new URL(jwksUri), { cooldownDuration: this.opts.jwksCooldownMs ?? 30_000, timeoutDuration: this.opts.timeoutMs ?? 5000 });
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, iss.jwks, {
        issuer: iss.opts.issuer,
        audience: [...iss.opts.audiences],
        algorithms: iss.algorithms,
        clockTolerance: iss.opts.clockToleranceSeconds ?? 5,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWKSTimeout || (err instanceof TypeError && /fetch/i.test(err.message))) {
        throw new AuthBackendError(`oidc ${iss.opts.issuer}: JWKS unavailable: ${describe(err)}`, { cause: err });
      }
      if (err instanceof joseErrors.JOSEError) return { result: 'deny', reason: `token rejected: ${err.code}${err instanceof joseErrors.JWTClaimValidationFailed ? ` (${err.claim})` : ''}` };
      throw new AuthBackendError(`oidc ${iss.opts.issuer}: ${describe(err)}`, { cause: err });
    }
    return this.allow(iss, payload);
  }

  private async introspect(iss: Issuer, token: string): Promise<AuthOutcome> {
    let res: oidc.IntrospectionResponse;
    try {
      res = await oidc.tokenIntrospection(await this.configuration(iss), token);
    } catch (err) {
      throw new AuthBackendError(`oidc ${iss.opts.issuer}: introspection failed: ${describe(err)}`, { cause: err });
    }
    if (!res.active) return { result: 'deny', reason: 'token not active' };
    const aud = claimList(res.aud);
    const forUs = aud.length > 0 ? aud.some((a) => iss.opts.audiences.includes(a)) : typeof res.client_id === 'string' && (iss.opts.introspection?.allowedClients ?? []).includes(res.client_id);
    if (!forUs) return { result: 'deny', reason: 'token rejected: not meant for this registry (audience or client)' };
    if (typeof res.exp === 'number' && res.exp * 1000 < Date.now() - (iss.opts.clockToleranceSeconds ?? 5) * 1000) return { result: 'deny', reason: 'token expired' };
    return this.allow(iss, res as unknown as JWTPayload);
  }

  /**
   * A refresh grant's re-check. The refresh token already expires with the OIDC token it was
   * issued for, which bounds how long the claims are trusted; here only the issuer must still
   * be configured.
   */
  async lookup(identity: Identity): Promise<AuthOutcome> {
    if (identity.method !== this.name) return { result: 'skip' };
    const issuer = identity.labels['oidc.issuer'];
    if (!this.issuers.some((i) => i.opts.issuer === issuer)) return { result: 'deny', reason: `issuer ${issuer ?? '(none)'} is no longer trusted` };
    return { result: 'allow', identity };
  }

  private allow(iss: Issuer, claims: JWTPayload): AuthOutcome {
    // Without a configured claim: `sub`, else `client_id` (client-credentials tokens may have no sub).
    const subject = iss.opts.subjectClaim ? claimText(readClaim(claims, iss.opts.subjectClaim)) : (claimText(claims.sub) ?? claimText(claims['client_id']));
    if (!subject) return { result: 'deny', reason: `token has no ${iss.opts.subjectClaim ?? 'sub'} claim` };
    const groups = iss.opts.groupsClaim ? [...new Set(claimList(readClaim(claims, iss.opts.groupsClaim)))].sort() : [];
    const labels: Record<string, string> = { 'oidc.issuer': iss.opts.issuer };
    for (const [label, path] of Object.entries(iss.opts.labelClaims ?? {})) {
      const v = claimText(readClaim(claims, path));
      if (v !== undefined) labels[label] = v;
    }
    const identity: Identity = { subject, method: this.name, groups, labels, ...(typeof claims.exp === 'number' ? { expiresAt: claims.exp } : {}) };
    return { result: 'allow', identity };
  }
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  return e.cause?.code ?? e.code ?? e.message ?? String(err);
}
