import { AuthBackendError, InvalidTokenError, StateUnavailableError, TokenService, type StateStore, type TokenServiceOptions, type VerifiedRefresh } from '@registry-proxy/registry-core';

/*
 * A minimal revocation path (issue 14's "a revoked refresh token is refused by every replica"):
 * revoking a subject refuses every refresh token issued to it up to that second. The token
 * endpoint's own revocation interface (issue 11) may replace the entry points; the records stay
 * in the shared store either way.
 */

const key = (subject: string) => `revoked:subject:${subject}`;

/** Refuses, on every replica sharing `store`, the refresh tokens `subject` holds now. */
export async function revokeSubject(store: StateStore, subject: string, refreshTtlSeconds: number, now = Date.now()): Promise<void> {
  // Kept as long as a refresh token issued just before can live; after that nothing is left to refuse.
  await store.put(key(subject), String(Math.floor(now / 1000)), refreshTtlSeconds * 1000);
}

/** The token service, with refresh tokens checked against the revocation records. */
export class RevocableTokenService extends TokenService {
  constructor(
    opts: TokenServiceOptions,
    private readonly store: StateStore,
  ) {
    super(opts);
  }

  /** Fails closed: when the records cannot be read, the refresh is refused with a 503, never granted. */
  override async verifyRefresh(token: string): Promise<VerifiedRefresh> {
    const verified = await super.verifyRefresh(token);
    const identity = verified.identity;
    let revokedAt: string | undefined;
    try {
      revokedAt = await this.store.get(key(identity.subject));
    } catch (err) {
      if (err instanceof StateUnavailableError) throw new AuthBackendError('refresh-token revocations unavailable', { cause: err });
      throw err;
    }
    // Read on every use, also when the signature check came from the verified-token cache, so a
    // revocation takes effect at once. issuedAt is the token's iat (whole seconds; 0 when absent).
    if (revokedAt !== undefined && verified.issuedAt <= Number(revokedAt)) throw new InvalidTokenError('refresh token revoked');
    return verified;
  }
}
