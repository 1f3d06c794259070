import { AuthBackendError, mergedRevocations, MemoryRevocations, StateUnavailableError, type RevocationList, type RevocationStore, type StateStore } from '@registry-proxy/registry-core';

/*
 * Refresh-token revocations: one RevocationStore interface (registry-core), two sources that
 * feed it, and one check (RefreshCheck) that reads both on every refresh.
 *  - `tokens.revocationsFile`: each replica reads the operators' file into its own memory
 *    (RevocationsFile -> MemoryRevocations); every replica reads the same file.
 *  - `registry-proxy --revoke-subject S`: one record in the shared state store (Redis when
 *    configured), seen by every replica at its next read (StateRevocations).
 * A subject's cut-off is the latest either source has.
 */

const key = (subject: string) => `revoked:subject:${subject}`;

/**
 * Revocations kept in the shared state store, each for the refresh-token lifetime (after that a
 * token issued before the cut-off has expired anyway). The record holds the last revoked second
 * (inclusive), the format `--revoke-subject` has always written, so records written by an
 * earlier version keep their meaning.
 */
export class StateRevocations implements RevocationStore {
  constructor(
    private readonly store: StateStore,
    private readonly refreshTtlSeconds: number,
  ) {}

  async revoke(subject: string, before: number): Promise<void> {
    await this.store.put(key(subject), String(before - 1), this.refreshTtlSeconds * 1000);
  }

  /** The store has no delete: a record that revokes nothing, gone a moment later. */
  async unrevoke(subject: string): Promise<void> {
    await this.store.put(key(subject), '-1', 1);
  }

  /** Fails closed: a store that cannot answer makes the refresh a 503 (AuthBackendError), never a grant. */
  async revokedBefore(subject: string): Promise<number | undefined> {
    let last: string | undefined;
    try {
      last = await this.store.get(key(subject));
    } catch (err) {
      if (err instanceof StateUnavailableError) throw new AuthBackendError('refresh-token revocations unavailable', { cause: err });
      throw err;
    }
    return last === undefined ? undefined : Number(last) + 1;
  }
}

/** Refuses `subject`'s refresh tokens issued up to and including the current second. */
export async function revokeSubject(revocations: RevocationStore, subject: string, now = Date.now()): Promise<void> {
  await revocations.revoke(subject, Math.floor(now / 1000) + 1);
}

/** A replica's revocations: the file's (fed by RevocationsFile) and the shared store's, read as one. */
export function replicaRevocations(store: StateStore, refreshTtlSeconds: number): { file: MemoryRevocations; shared: StateRevocations; all: RevocationList } {
  const file = new MemoryRevocations();
  const shared = new StateRevocations(store, refreshTtlSeconds);
  return { file, shared, all: mergedRevocations([file, shared]) };
}
