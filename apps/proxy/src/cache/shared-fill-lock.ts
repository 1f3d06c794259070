import { StateUnavailableError, type Lock, type StateStore } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import { LocalFillLock, type FillLease, type FillLock } from './fill-lock.js';

/** A lease lives this long unless renewed; renewed every third of it while the fill runs, so a dead filler frees the key within this. */
export const LEASE_MS = 15_000;

export interface SharedFillLockOptions {
  /** Names the store in the lock keys: replicas share a fill only when they share the store too. */
  readonly scope: string;
  readonly leaseMs?: number;
  /** Called once per fall-back to the local lock (Redis unreachable): counts it in metrics. */
  readonly onFallback?: () => void;
}

/**
 * Fill locks across replicas, on the shared state store (Redis when `state.redis` is
 * configured). The lock key holds a fence (an increasing number) as its owner token: renewals
 * and the release touch the key only while it still holds our fence, so a filler whose lease
 * expired (frozen, partitioned) never extends or deletes the next filler's lock.
 *
 * Fails open: when the state store cannot answer, this replica falls back to its own
 * in-process lock (warned once a minute, counted by `onFallback`). The worst case is what
 * replicas without a shared lock do anyway: two replicas fetch the same blob from the upstream
 * once each. A double fill is harmless for correctness: each fill is verified against the
 * digest and published by an atomic rename under a content address, so the second one writes
 * the same bytes.
 */
export class SharedFillLock implements FillLock {
  /** Tells the blob cache that a refused lock may be held by another replica: worth waiting for. */
  readonly shared = true;
  private readonly local = new LocalFillLock();
  private readonly leaseMs: number;
  private lastWarn = -Infinity;

  constructor(
    private readonly state: StateStore,
    private readonly logger: Logger,
    private readonly opts: SharedFillLockOptions,
  ) {
    this.leaseMs = opts.leaseMs ?? LEASE_MS;
  }

  private key(digest: string): string {
    return `fill:${this.opts.scope}:${digest}`;
  }

  private fallback(err: unknown): void {
    this.opts.onFallback?.();
    if (Date.now() - this.lastWarn < 60_000) return;
    this.lastWarn = Date.now();
    this.logger.warn({ err: { message: (err as Error).message } }, 'cache fill lock on this replica only: shared state unavailable (replicas may each fetch a blob once)');
  }

  async tryAcquire(key: string, ttlMs: number): Promise<FillLease | undefined> {
    // The local lock first: requests in this process join the running fill before they get
    // here, so this only keeps one process from asking the shared store twice for one key.
    const local = await this.local.tryAcquire(key, ttlMs);
    if (!local) return undefined;
    let lock: Lock | undefined;
    try {
      lock = await this.state.lock(this.key(key), Math.min(this.leaseMs, ttlMs));
    } catch (err) {
      if (!(err instanceof StateUnavailableError)) {
        await local.release();
        throw err;
      }
      this.fallback(err);
      return local;
    }
    if (!lock) {
      await local.release();
      return undefined;
    }
    return this.renewing(key, lock, local, ttlMs);
  }

  /** Keeps the lease alive while the fill runs (never past `ttlMs`, the most a fill may hold it). */
  private renewing(key: string, lock: Lock, local: FillLease, ttlMs: number): FillLease {
    const until = Date.now() + ttlMs;
    let released = false;
    const timer = setInterval(
      () => {
        if (Date.now() >= until) return void clearInterval(timer);
        lock.extend(this.leaseMs).then(
          (ok) => {
            if (!ok && !released) {
              clearInterval(timer);
              this.logger.warn({ digest: key, fence: lock.fence }, 'cache fill lock lost (expired before renewal); another replica may fill the same blob');
            }
          },
          (err: unknown) => this.fallback(err),
        );
      },
      Math.max(50, Math.floor(this.leaseMs / 3)),
    );
    timer.unref();
    return {
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(timer);
        await local.release();
        // Redis down at release: the key expires on its own within one lease.
        await lock.release().catch((err: unknown) => this.fallback(err));
      },
    };
  }
}
