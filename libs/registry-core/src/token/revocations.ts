/**
 * Revoked refresh tokens, by subject: operators revoke a subject's refresh tokens issued
 * before a moment (or all of them, while revoked). An interface, so replicas can share one
 * store (Redis); {@link MemoryRevocations} serves one process.
 */
export interface RevocationStore {
  /** Refuse `subject`'s refresh tokens issued before `before` (epoch seconds; Infinity: all of them). */
  revoke(subject: string, before: number): Promise<void>;
  /** Lift a revocation. */
  unrevoke(subject: string): Promise<void>;
  /** The cut-off for `subject`, or undefined when nothing is revoked. */
  revokedBefore(subject: string): Promise<number | undefined>;
  /** Every revocation, for replacing the set from a file. */
  list(): Promise<ReadonlyMap<string, number>>;
}

/** A {@link RevocationStore} in this process. */
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

  async list(): Promise<ReadonlyMap<string, number>> {
    return new Map(this.entries);
  }
}

/** True when a refresh token of `subject` issued at `issuedAt` (epoch seconds) is revoked. */
export async function isRevoked(store: RevocationStore, subject: string, issuedAt: number): Promise<boolean> {
  const before = await store.revokedBefore(subject);
  return before !== undefined && issuedAt < before;
}
