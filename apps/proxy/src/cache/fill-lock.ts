/**
 * Who fills an object when several proxies share one store. Within a process, requests for an
 * object being filled join that fill (./fill.ts); the lock decides between processes. This
 * in-process lock is right for one replica, or replicas with a store each. Replicas sharing a
 * volume need one lock for all of them: the shared-state work backs this interface with Redis
 * (`SET key token NX PX ttl`, released by a compare-and-delete script), and nothing else here changes.
 */
export interface FillLease {
  release(): Promise<void>;
}

export interface FillLock {
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
