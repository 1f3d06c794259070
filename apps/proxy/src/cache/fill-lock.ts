/**
 * Who fills an object when several proxies share one store. Within a process, requests for an
 * object being filled join that fill (./fill.ts); the lock decides between processes. This
 * in-process lock is right for one replica, or replicas with a store each. Replicas sharing a
 * volume need one lock for all of them: ./shared-fill-lock.ts backs this interface with the
 * shared state store (Redis) when `state.redis` is configured.
 */
export interface FillLease {
  release(): Promise<void>;
}

export interface FillLock {
  /** True when a refused lock may be held by another replica sharing the store (./shared-fill-lock.ts): worth waiting for. */
  readonly shared?: boolean;
  /**
   * Tries to become the one filler of `key` for at most `ttlMs`; resolves to a lease, or to
   * undefined when someone else is filling it (the caller then relays without caching).
   */
  tryAcquire(key: string, ttlMs: number): Promise<FillLease | undefined>;
}

/** A FillLock for one process. */
export class LocalFillLock implements FillLock {
  private readonly held = new Map<string, NodeJS.Timeout>();

  async tryAcquire(key: string, ttlMs: number): Promise<FillLease | undefined> {
    if (this.held.has(key)) return undefined;
    // The TTL frees a key whose holder never released it, as a Redis key would expire.
    const timer = setTimeout(() => this.held.delete(key), ttlMs);
    timer.unref();
    this.held.set(key, timer);
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        if (this.held.get(key) === timer) {
          clearTimeout(timer);
          this.held.delete(key);
        }
      },
    };
  }
}
