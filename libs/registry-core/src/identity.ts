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
export type AuthOutcome =
  | { readonly result: 'allow'; readonly identity: Identity }
  | { readonly result: 'deny'; readonly reason: string }
  | { readonly result: 'skip' };

/**
 * Verifies a username and password. Rejects (with {@link AuthBackendError}) only when it cannot
 * decide, e.g. its directory is down; a wrong password is a `deny`, never a rejection.
 */
export interface CredentialVerifier {
  readonly name: string;
  verify(username: string, password: string): Promise<AuthOutcome>;
}

/** A backend (directory, identity provider) could not be reached; the token endpoint answers 503. */
export class AuthBackendError extends ProxyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RP_ERR_AUTH_BACKEND', message, options);
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
    return { result: 'deny', reason: 'no strategy knows this user' };
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
