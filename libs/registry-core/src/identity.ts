import { ProxyError } from './codes.js';

/** Who a client is, as established by an authentication strategy. */
export interface Identity {
  /** The account name that access rules match on. */
  readonly subject: string;
  /** Which strategy established it: `htpasswd`, `ldap`, `oidc`, `anonymous`, ... */
  readonly method: string;
  readonly groups: readonly string[];
  /** Facts from the method (an OIDC claim, an AWS account) that access rules can match. */
  readonly labels: Readonly<Record<string, string>>;
  /**
   * When the credential the identity was established from stops being valid (an OIDC token's
   * `exp`, epoch seconds): refresh tokens issued for it do not outlive it.
   */
  readonly expiresAt?: number;
}

/** A strategy's answer: allow with an identity, deny (the username is mine, the secret is wrong), or "not mine". */
export type AuthOutcome = { readonly result: 'allow'; readonly identity: Identity } | { readonly result: 'deny'; readonly reason: string } | { readonly result: 'skip' };

/**
 * Verifies a username and password. Rejects (with {@link AuthBackendError}) only when it cannot
 * decide, e.g. its directory is down; a wrong password is a `deny`, never a rejection.
 */
export interface CredentialVerifier {
  readonly name: string;
  verify(username: string, password: string): Promise<AuthOutcome>;
  /**
   * Spends the time a wrong password for a known user would cost (a bcrypt compare against a
   * hash no password matches). Called by {@link VerifierChain} when no verifier knows the
   * username, so the answer time does not tell which usernames exist.
   */
  decoy?(username: string, password: string): Promise<void>;
  /**
   * Re-checks an identity this verifier established earlier, without its credential (a refresh
   * grant): allow with the identity as it is now (fresh groups), deny when the account is gone
   * or no longer allowed, skip when the identity is not this verifier's.
   */
  lookup?(identity: Identity): Promise<AuthOutcome>;
}

/** A backend (directory, identity provider) could not be reached; the token endpoint answers 503. */
export class AuthBackendError extends ProxyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RP_ERR_AUTH_BACKEND', message, options);
  }
}

/** Too many verifications are queued (password hashing is saturated); answered 503 with Retry-After. */
export class AuthOverloadedError extends AuthBackendError {
  constructor(
    message: string,
    readonly retryAfterSeconds = 1,
  ) {
    super(message);
  }
}

/**
 * An ordered chain of verifiers: the first that answers allow or deny decides; when every
 * verifier says "not mine", the answer is deny.
 */
export class VerifierChain implements CredentialVerifier {
  readonly name = 'chain';
  private readonly verifiers: readonly CredentialVerifier[];
  constructor(verifiers: readonly CredentialVerifier[]) {
    this.verifiers = Object.freeze([...verifiers]);
  }

  async verify(username: string, password: string): Promise<AuthOutcome> {
    for (const v of this.verifiers) {
      const outcome = await v.verify(username, password);
      if (outcome.result !== 'skip') return outcome;
    }
    // An unknown username costs what a wrong password costs, so timing does not enumerate users.
    await this.verifiers.find((v) => v.decoy)?.decoy?.(username, password);
    return { result: 'deny', reason: 'no strategy knows this user' };
  }

  /** Asks each verifier to re-check `identity`; deny when none recognises it (nothing vouches for it any more). */
  async lookup(identity: Identity): Promise<AuthOutcome> {
    for (const v of this.verifiers) {
      const outcome = (await v.lookup?.(identity)) ?? { result: 'skip' };
      if (outcome.result !== 'skip') return outcome;
    }
    return { result: 'deny', reason: `no strategy can re-check a ${identity.method} identity` };
  }
}

/** Decodes an `Authorization: Basic` header; undefined when it is absent or not Basic, null when malformed. */
export function parseBasicAuthorization(header: string | undefined): { username: string; password: string } | undefined | null {
  if (header === undefined) return undefined;
  const m = /^Basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i.exec(header);
  if (!m) return /^Basic\b/i.test(header) ? null : undefined;
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
