import { createHash, randomUUID, sign as cryptoSign, type KeyObject, type SignKeyObjectInput } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type JWTHeaderParameters, type JWTPayload } from 'jose';
import type { Identity } from '../identity.js';
import type { Access } from '../scope.js';
import type { KeySet, SigningKey, TokenAlgorithm } from './keys.js';
import { VerifiedCache } from './verified-cache.js';

/** Options of the token service; validated by whoever builds them (the proxy's config schema). */
export interface TokenServiceOptions {
  /** `iss` of issued tokens, checked on verification. */
  readonly issuer: string;
  /** The service name clients ask for: `aud` of issued tokens, checked on verification. */
  readonly service: string;
  readonly keys: KeySet;
  /** Access token lifetime in seconds; the token spec's minimum is 60. */
  readonly accessTokenTtl: number;
  /** Refresh token lifetime in seconds (how long a `docker login` lasts). */
  readonly refreshTokenTtl: number;
  /** Algorithms accepted on verification. */
  readonly algorithms: readonly TokenAlgorithm[];
  /** Allowed clock skew in seconds when checking exp and nbf. */
  readonly clockTolerance: number;
}

/** A token failed verification; the message is safe to show to the client. */
export class InvalidTokenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidTokenError';
  }
}

/** An issued access token. */
export interface IssuedToken {
  readonly token: string;
  readonly expiresIn: number;
  readonly issuedAt: Date;
}

const REFRESH_USE = 'refresh';

const base64url = (json: string) => Buffer.from(json).toString('base64url');

const VERIFIED_CACHE_SIZE = 10_000;

/** Issues and verifies the JWTs of the distribution token spec (docs/content/spec/auth/jwt.md). */
export class TokenService {
  /**
   * Access tokens already verified, until their `exp`: clients send one token with many
   * requests, and a signature check costs more than everything else the proxy does for a
   * manifest HEAD.
   */
  private readonly verified: VerifiedCache<VerifiedAccess>;
  /**
   * Refresh tokens already verified, keyed by their SHA-256 (a refresh token is a credential
   * that lives for days; the heap keeps only its hash). `docker` sends the same refresh token
   * for every pull, and verifying it was a third of the CPU of a refresh grant. Revocations and
   * re-checks are not cached here: RefreshCheck runs them (revocations, re-validation) on every use.
   */
  private readonly verifiedRefresh: VerifiedCache<VerifiedRefresh>;

  constructor(private readonly opts: TokenServiceOptions) {
    if (opts.accessTokenTtl < 60) throw new RangeError('accessTokenTtl must be at least 60 seconds');
    this.verified = new VerifiedCache(opts.clockTolerance, VERIFIED_CACHE_SIZE);
    this.verifiedRefresh = new VerifiedCache(opts.clockTolerance, VERIFIED_CACHE_SIZE);
  }

  get service(): string {
    return this.opts.service;
  }

  /** The signer's encoded JWS header and its key argument for sign(), made once per signing key. */
  private signing: { readonly signer: SigningKey; readonly header: string; readonly key: SignKeyObjectInput | KeyObject } | undefined;

  /**
   * A compact JWS, signed with node:crypto's one-shot sign() rather than jose's SignJWT: jose
   * signs through WebCrypto (a promise and a thread-pool job per token), which cost about twice
   * the CPU of the signature itself, on every token the endpoint issues. ES256 signatures are
   * the raw r||s form JWS requires (RFC 7518 §3.4: `ieee-p1363`), not DER. Verification stays
   * with jose. The header is the same for every token of a key, so it is encoded once; `claims`
   * is the caller's fresh object and gets the registered claims added in place.
   */
  private sign(claims: Record<string, unknown>, subject: string, ttl: number, now: Date): string {
    const { signer } = this.opts.keys;
    let s = this.signing;
    if (s?.signer !== signer) {
      const key = signer.alg === 'ES256' ? { key: signer.privateKey, dsaEncoding: 'ieee-p1363' as const } : signer.privateKey;
      s = this.signing = { signer, header: base64url(JSON.stringify({ alg: signer.alg, typ: 'JWT', kid: signer.kid })), key };
    }
    const iat = Math.floor(now.getTime() / 1000);
    claims['iss'] = this.opts.issuer;
    claims['sub'] = subject;
    claims['aud'] = this.opts.service;
    claims['iat'] = iat;
    claims['nbf'] = iat;
    claims['exp'] = iat + ttl;
    claims['jti'] = randomUUID();
    // Every character of the input is base64url or '.': latin1 is its exact (and quickest) encoding.
    const input = `${s.header}.${base64url(JSON.stringify(claims))}`;
    return `${input}.${cryptoSign('sha256', Buffer.from(input, 'latin1'), s.key).toString('base64url')}`;
  }

  /**
   * Signs an access token granting `access` to `subject`. With `identity`, the token also carries
   * the method, groups and labels, for endpoints that evaluate the access rules themselves (the
   * catalog lists only the repositories the caller may pull).
   */
  async issueAccessToken(subject: string, access: readonly Access[], now = new Date(), identity?: Identity, host?: string): Promise<IssuedToken> {
    const claims: Record<string, unknown> = { access: access.map((a) => ({ type: a.type, name: a.name, actions: [...a.actions], ...(a.upstream !== undefined ? { upstream: a.upstream } : {}) })) };
    if (identity) claims['identity'] = identityClaims(identity);
    // A token granted by host-aware rules is good only on the host it was issued for.
    if (host !== undefined) claims['host'] = host;
    const token = this.sign(claims, subject, this.opts.accessTokenTtl, now);
    return { token, expiresIn: this.opts.accessTokenTtl, issuedAt: new Date(Math.floor(now.getTime() / 1000) * 1000) };
  }

  /**
   * Signs a refresh token that carries the identity, so access is re-evaluated on every refresh.
   * It expires with the identity's own credential when that comes first (an OIDC token), and is
   * not issued at all when that credential has less than a minute left.
   */
  async issueRefreshToken(identity: Identity, now = new Date()): Promise<string | undefined> {
    const iat = Math.floor(now.getTime() / 1000);
    const ttl = identity.expiresAt === undefined ? this.opts.refreshTokenTtl : Math.min(this.opts.refreshTokenTtl, identity.expiresAt - iat);
    if (ttl < 60) return undefined;
    return this.sign({ token_use: REFRESH_USE, ...identityClaims(identity) }, identity.subject, ttl, now);
  }

  /** Signature and registered claims; protected so tests can count how often it runs. */
  protected async verify(token: string): Promise<JWTPayload> {
    const verifiers = this.opts.keys.verifiers;
    const keyFor = (header: JWTHeaderParameters) => {
      const k = header.kid === undefined ? undefined : verifiers.get(header.kid);
      if (!k || k.alg !== header.alg) throw new InvalidTokenError('token signed by an unknown key');
      return k.key;
    };
    try {
      const { payload } = await jwtVerify(token, keyFor, {
        issuer: this.opts.issuer,
        audience: this.opts.service,
        algorithms: [...this.opts.algorithms],
        clockTolerance: this.opts.clockTolerance,
        requiredClaims: ['exp', 'sub'],
      });
      return payload;
    } catch (err) {
      if (err instanceof InvalidTokenError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new InvalidTokenError('token expired', { cause: err });
      if (err instanceof joseErrors.JOSEError) throw new InvalidTokenError(`token invalid: ${err.code}`, { cause: err });
      throw new InvalidTokenError('token invalid', { cause: err });
    }
  }

  /** Verifies an access token and returns its subject, granted access, and the identity when it carries one. */
  async verifyAccessToken(token: string): Promise<VerifiedAccess> {
    const hit = this.verified.get(token);
    if (hit) return hit;
    const p = await this.verify(token);
    if (p['token_use'] !== undefined) throw new InvalidTokenError('not an access token');
    const access = p['access'];
    if (!Array.isArray(access)) throw new InvalidTokenError('token has no access claim');
    const list: Access[] = [];
    for (const a of access as unknown[]) {
      const e = a as Partial<Access> | null;
      if (!e || typeof e.type !== 'string' || typeof e.name !== 'string' || !Array.isArray(e.actions)) throw new InvalidTokenError('malformed access claim');
      if (e.upstream !== undefined && typeof e.upstream !== 'string') throw new InvalidTokenError('malformed access claim');
      list.push({ type: e.type, name: e.name, actions: e.actions.filter((x): x is string => typeof x === 'string'), ...(e.upstream !== undefined ? { upstream: e.upstream } : {}) });
    }
    const idn = p['identity'];
    const result: VerifiedAccess = {
      subject: p.sub as string,
      access: list,
      ...(typeof p['host'] === 'string' ? { host: p['host'] } : {}),
      ...(typeof idn === 'object' && idn !== null ? { identity: identityFrom(p.sub as string, idn as Record<string, unknown>) } : {}),
    };
    this.verified.set(token, result, p.exp as number);
    return result;
  }

  /** Verifies a refresh token and returns the identity it was issued to. */
  async verifyRefreshToken(token: string): Promise<Identity> {
    return (await this.verifyRefresh(token)).identity;
  }

  /** Verifies a refresh token: the identity, when it was issued (the login, epoch seconds), and its id. */
  async verifyRefresh(token: string): Promise<VerifiedRefresh> {
    const key = createHash('sha256').update(token).digest('base64');
    const hit = this.verifiedRefresh.get(key);
    if (hit) return hit;
    const p = await this.verify(token);
    if (p['token_use'] !== REFRESH_USE) throw new InvalidTokenError('not a refresh token');
    const identity = identityFrom(p.sub as string, p);
    // Shared by every later use of the token: frozen so no caller can change what the next one sees.
    Object.freeze(identity.groups);
    Object.freeze(identity.labels);
    const result: VerifiedRefresh = Object.freeze({ identity: Object.freeze(identity), issuedAt: typeof p.iat === 'number' ? p.iat : 0, id: typeof p.jti === 'string' ? p.jti : key });
    this.verifiedRefresh.set(key, result, p.exp as number);
    return result;
  }
}

/** What a verified refresh token says. */
export interface VerifiedRefresh {
  readonly identity: Identity;
  /** `iat`: when the login it was issued at happened, epoch seconds. */
  readonly issuedAt: number;
  /** `jti`. */
  readonly id: string;
}

/** What a verified access token says. */
export interface VerifiedAccess {
  readonly subject: string;
  readonly access: Access[];
  /** The host the token is bound to (host-aware rules), without port. */
  readonly host?: string;
  readonly identity?: Identity;
}

function identityClaims(identity: Identity): Record<string, unknown> {
  return { method: identity.method, groups: [...identity.groups], labels: { ...identity.labels } };
}

function identityFrom(subject: string, p: Record<string, unknown>): Identity {
  const groups = Array.isArray(p['groups']) ? (p['groups'] as unknown[]).filter((g): g is string => typeof g === 'string') : [];
  const rawLabels = typeof p['labels'] === 'object' && p['labels'] !== null ? (p['labels'] as Record<string, unknown>) : {};
  const labels = Object.fromEntries(Object.entries(rawLabels).filter((e): e is [string, string] => typeof e[1] === 'string'));
  const method = typeof p['method'] === 'string' ? p['method'] : 'unknown';
  return { subject, method, groups, labels };
}
