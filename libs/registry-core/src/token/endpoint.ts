import type { AccessRules } from '../access-rules.js';
import { ANONYMOUS } from '../access-rules.js';
import { formatChallenge } from '../challenge.js';
import { RegistryError, registryErrorBody } from '../errors.js';
import { AuthBackendError, AuthOverloadedError, type CredentialVerifier, type Identity } from '../identity.js';
import { intersectActions, type Access } from '../scope.js';
import type { TokenRequest } from './request.js';
import type { RefreshCheck } from './revalidate.js';
import { InvalidTokenError, type TokenService } from './service.js';

/** What the token endpoint decided: the HTTP answer plus the facts for the audit log (never a secret). */
export interface TokenDecision {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Set when the answer is an error, for the app's one error writer; `status`/`body` say the same. */
  readonly error?: RegistryError;
  readonly outcome: 'issued' | 'denied' | 'unavailable' | 'overloaded' | 'invalid';
  readonly identity?: Identity;
  readonly requested: readonly Access[];
  readonly granted: readonly Access[];
  readonly reason?: string;
}

/** The framework-free core of the token endpoint: authenticate, evaluate rules, sign. */
export class TokenEndpoint {
  constructor(
    private readonly opts: {
      tokens: TokenService;
      verifier: CredentialVerifier;
      rules: AccessRules;
      /**
       * Where a requested repository name lives: its upstream, and the name the rules see. A
       * name that resolves nowhere is granted nothing. Without it, names are not resolved.
       */
      locate?: (name: string, host: string | undefined) => { readonly upstream: string; readonly name: string } | undefined;
      /** Realm named in the Basic challenge of a 401. */
      basicRealm: string;
      /** Revocations and re-checks of refresh grants; without it a valid refresh token is enough. */
      refreshCheck?: RefreshCheck;
    },
  ) {}

  /** `issued_at` of the tokens of one whole second: toISOString once per second, not per token. */
  private iso = { ms: Number.NaN, text: '' };
  private isoSecond(at: Date): string {
    const ms = at.getTime();
    if (ms !== this.iso.ms) this.iso = { ms, text: at.toISOString() };
    return this.iso.text;
  }

  private error(outcome: TokenDecision['outcome'], err: RegistryError, req: TokenRequest, reason: string): TokenDecision {
    return { status: err.status, headers: err.headers, body: registryErrorBody(err), error: err, outcome, requested: req.scopes, granted: [], reason };
  }

  private unauthorized(req: TokenRequest, reason: string): TokenDecision {
    const headers = { 'WWW-Authenticate': formatChallenge('Basic', { realm: this.opts.basicRealm }) };
    return this.error('denied', new RegistryError('UNAUTHORIZED', { headers }), req, reason);
  }

  /** 503 with Retry-After: the directory is down, or password checks are saturated (issue 11, defect 4). */
  private backendDown(req: TokenRequest, err: AuthBackendError): TokenDecision {
    if (err instanceof AuthOverloadedError) {
      const e = new RegistryError('UNAVAILABLE', { message: 'too many logins being checked; try again shortly', headers: { 'Retry-After': String(err.retryAfterSeconds) } });
      return this.error('overloaded', e, req, err.message);
    }
    const e = new RegistryError('UNAVAILABLE', { message: 'authentication backend unavailable', headers: { 'Retry-After': '5' } });
    return this.error('unavailable', e, req, err.message);
  }

  /**
   * The access `identity` gets: requested ∩ allowed, per resource; resources with nothing granted
   * are left out. `registry:catalog:*` is granted to every signed-in caller: the catalog lists only the
   * repositories the caller may pull.
   */
  grant(identity: Identity, requested: readonly Access[], host?: string): Access[] {
    const out: Access[] = [];
    for (const r of requested) {
      if (r.type === 'registry' && r.name === 'catalog' && r.actions.includes('*') && identity.method !== 'anonymous') {
        out.push({ type: 'registry', name: 'catalog', actions: ['*'] });
        continue;
      }
      if (r.type !== 'repository') continue;
      const where = this.opts.locate ? this.opts.locate(r.name, host) : { name: r.name, upstream: undefined };
      if (!where) continue;
      const actions = intersectActions(r.actions, this.opts.rules.allowedActions(identity, where.name, host, where.upstream));
      if (actions.length > 0) out.push({ type: r.type, name: r.name, actions, ...(where.upstream !== undefined ? { upstream: where.upstream } : {}) });
    }
    return out;
  }

  /**
   * `host`: the virtual host the token is asked for (the Host of the token request, since the
   * realm is on the registry's host). With host-aware rules the token is bound to that host.
   */
  async handle(req: TokenRequest, host?: string): Promise<TokenDecision> {
    const { tokens } = this.opts;
    if (req.service !== undefined && req.service !== tokens.service) {
      return this.error('invalid', new RegistryError('REQUEST_INVALID', { message: `unknown service ${JSON.stringify(req.service)}` }), req, 'unknown service');
    }
    // Host-aware rules bind every token to a host: without one there is nothing to bind to.
    if (this.opts.rules.hostAware && !host) {
      return this.error('invalid', new RegistryError('REQUEST_INVALID', { message: 'the token request names no host' }), req, 'no host');
    }
    let identity: Identity;
    if (req.grant === 'anonymous') {
      identity = ANONYMOUS;
    } else if (req.grant === 'refresh_token') {
      try {
        const verified = await tokens.verifyRefresh(req.refreshToken);
        const checked = this.opts.refreshCheck ? await this.opts.refreshCheck.check(verified) : { identity: verified.identity };
        if ('refused' in checked) return { ...this.unauthorized(req, checked.refused), identity: verified.identity };
        identity = checked.identity;
      } catch (err) {
        if (err instanceof InvalidTokenError) return this.unauthorized(req, `refresh token: ${err.message}`);
        if (err instanceof AuthBackendError) return this.backendDown(req, err);
        throw err;
      }
    } else {
      if (req.password.length === 0) return this.unauthorized(req, 'empty password');
      try {
        const outcome = await this.opts.verifier.verify(req.username, req.password);
        if (outcome.result !== 'allow') return this.unauthorized(req, outcome.result === 'deny' ? outcome.reason : 'no strategy knows this user');
        identity = outcome.identity;
      } catch (err) {
        if (err instanceof AuthBackendError) return this.backendDown(req, err);
        throw err;
      }
    }
    const granted = this.grant(identity, req.scopes, host);
    if (identity === ANONYMOUS && req.scopes.length > 0 && granted.length === 0) return this.unauthorized(req, 'anonymous access not allowed');

    const catalog = granted.some((a) => a.type === 'registry');
    const boundHost = this.opts.rules.hostAware && host !== undefined ? host.toLowerCase().replace(/:\d+$/, '') : undefined;
    const issued = await tokens.issueAccessToken(identity.subject, granted, new Date(), catalog ? identity : undefined, boundHost);
    // The answer is written out, not built as an object for JSON.stringify (that and toISOString
    // were about 2% of a token's CPU in a profile): a token is compact JWS (base64url and dots),
    // issued_at an ISO date, expires_in an integer, and the scope, made of the client's names,
    // is escaped by JSON.stringify. Byte for byte what JSON.stringify of these fields in this
    // order gives (endpoint.test.ts checks).
    let body = `{"token":"${issued.token}","access_token":"${issued.token}","expires_in":${issued.expiresIn},"issued_at":"${this.isoSecond(issued.issuedAt)}"`;
    if (req.offline && req.grant === 'password') {
      const refresh = await tokens.issueRefreshToken(identity);
      if (refresh) body += `,"refresh_token":"${refresh}"`;
    }
    if (req.form) body += `,"scope":${JSON.stringify(granted.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' '))}`;
    body += '}';
    return {
      status: 200,
      headers: { 'Cache-Control': 'no-store' },
      body,
      outcome: 'issued',
      identity,
      requested: req.scopes,
      granted,
    };
  }
}
