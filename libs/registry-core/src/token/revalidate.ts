import type { AuthOutcome, Identity } from '../identity.js';
import { isRevoked, type RevocationList } from './revocations.js';
import type { VerifiedRefresh } from './service.js';

/** Options of {@link RefreshCheck}. */
export interface RefreshCheckOptions {
  /** Re-checks an identity with the strategy that established it (VerifierChain.lookup). */
  readonly lookup: (identity: Identity) => Promise<AuthOutcome>;
  /** A login older than this (seconds) is re-checked at each refresh; the answer is kept this long. */
  readonly revalidateAfter: number;
  /** Revoked subjects, checked on every refresh (all sources: mergedRevocations). */
  readonly revocations?: RevocationList;
  readonly now?: () => number;
}

const MAX_REMEMBERED = 10_000;

/**
 * Decides whether a verified refresh token still stands (issue 11, defect 7): a revoked subject's
 * token does not; a login older than `revalidateAfter` is re-checked through its strategy (LDAP
 * re-reads the user and groups, htpasswd looks the user up, IID re-applies its allow-lists), and
 * the rules then see the identity as it is now, not as it was at login, up to 7 days before.
 * Re-check answers are remembered per token for `revalidateAfter`, so a busy client costs one
 * directory lookup per period, and a removed user is refused within it.
 */
export class RefreshCheck {
  private readonly remembered = new Map<string, { identity: Identity; until: number }>();
  private readonly now: () => number;

  constructor(private readonly opts: RefreshCheckOptions) {
    this.now = opts.now ?? (() => Date.now() / 1000);
  }

  /** The identity to evaluate rules for, or why the token no longer stands. Backend failures reject. */
  async check(token: VerifiedRefresh): Promise<{ identity: Identity } | { refused: string }> {
    const { identity, issuedAt, id } = token;
    if (this.opts.revocations && (await isRevoked(this.opts.revocations, identity.subject, issuedAt))) return { refused: 'refresh token revoked' };
    const now = this.now();
    if (now - issuedAt < this.opts.revalidateAfter) return { identity };
    const hit = this.remembered.get(id);
    if (hit && hit.until > now) return { identity: hit.identity };
    const outcome = await this.opts.lookup(identity);
    if (outcome.result !== 'allow') {
      this.remembered.delete(id);
      return { refused: `re-check failed: ${outcome.result === 'deny' ? outcome.reason : 'identity unknown'}` };
    }
    // The token's own bound (an OIDC token's exp) still holds.
    const fresh: Identity = identity.expiresAt === undefined ? outcome.identity : { ...outcome.identity, expiresAt: identity.expiresAt };
    if (this.opts.revalidateAfter > 0) {
      this.remembered.delete(id);
      this.remembered.set(id, { identity: fresh, until: now + this.opts.revalidateAfter });
      if (this.remembered.size > MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value as string);
    }
    return { identity: fresh };
  }
}
