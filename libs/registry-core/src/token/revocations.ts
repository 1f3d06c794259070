/**
 * Revoked refresh tokens, by subject: operators revoke a subject's refresh tokens issued
 * before a moment (or all of them, while revoked). An interface, so replicas can share one
 * store (Redis); {@link MemoryRevocations} serves one process.
 */
export interface RevocationStore extends RevocationList {
  /** Refuse `subject`'s refresh tokens issued before `before` (epoch seconds; Infinity: all of them). */
  revoke(subject: string, before: number): Promise<void>;
  /** Lift a revocation. */
  unrevoke(subject: string): Promise<void>;
}

/** What a refresh check reads: the cut-off for a subject, or undefined when nothing is revoked. */
export interface RevocationList {
  revokedBefore(subject: string): Promise<number | undefined>;
}

/**
 * Several sources of revocations read as one (the operators' file and the shared store, say):
 * a subject's cut-off is the latest any of them has. Every source is asked; one that fails
 * fails the read, so a check that cannot see a source refuses rather than grants.
 */
export function mergedRevocations(sources: readonly RevocationList[]): RevocationList {
  return {
    async revokedBefore(subject) {
      let latest: number | undefined;
      for (const before of await Promise.all(sources.map((s) => s.revokedBefore(subject)))) {
        if (before !== undefined && (latest === undefined || before > latest)) latest = before;
      }
      return latest;
    },
  };
}

/** Revocations in this process's memory (a RevocationStore). */
export class MemoryRevocations implements RevocationStore {
  private readonly entries = new Map<string, number>();

  async revoke(subject: string, before: number): Promise<void> {
    this.entries.set(subject, before);
  }

  async unrevoke(subject: string): Promise<void> {
    this.entries.delete(subject);
  }

  async revokedBefore(subject: string): Promise<number | undefined> {
    return this.entries.get(subject);
  }
}

/** True when a refresh token of `subject` issued at `issuedAt` (epoch seconds) is revoked. */
export async function isRevoked(store: RevocationList, subject: string, issuedAt: number): Promise<boolean> {
  const before = await store.revokedBefore(subject);
  return before !== undefined && issuedAt < before;
}
