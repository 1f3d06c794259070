import type { FillLease, FillLock } from './fill-lock.js';
import type { CacheStore } from './store.js';

/** How long a request waits for another replica's fill before it relays from the upstream itself. */
export const REPLICA_WAIT_MS = 60_000;
const POLL_MS = 100;

export type ReplicaWait = { readonly stored: true } | { readonly lease: FillLease } | undefined;

/**
 * Another replica holds the fill lock of `digest` on a shared store: wait for the object to
 * appear there (`stored`), or, when the lock frees without it (the filler died or gave up), take
 * the lock and fill it here (`lease`). After `maxWaitMs`, or when the store cannot be read,
 * undefined: the caller relays from the upstream without caching, so a stuck replica costs a
 * client at most this wait, never its pull.
 */
export async function awaitReplicaFill(store: CacheStore, lock: FillLock, digest: string, lockTtlMs: number, maxWaitMs = REPLICA_WAIT_MS, pollMs = POLL_MS): Promise<ReplicaWait> {
  const present = async (): Promise<boolean> => {
    const obj = await store.open(digest);
    await obj?.handle.close();
    return obj !== undefined;
  };
  const deadline = Date.now() + maxWaitMs;
  try {
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(0, deadline - Date.now()))));
      if (await present()) return { stored: true };
      const lease = await lock.tryAcquire(digest, lockTtlMs);
      if (!lease) continue;
      // The filler may have published and released between the two checks.
      if (await present()) {
        await lease.release();
        return { stored: true };
      }
      return { lease };
    }
  } catch {
    return undefined; // the store or the lock failed: relaying is always possible
  }
  return undefined;
}
