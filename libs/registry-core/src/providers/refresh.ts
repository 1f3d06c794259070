/** A value with the times to renew it and to stop using it (epoch milliseconds). */
export interface Expiring<T> {
  readonly value: T;
  readonly refreshAt: number;
  readonly expiresAt: number;
}

/**
 * One credential that renews itself: fetched on first use, renewed on the first use after
 * `refreshAt`, concurrent callers share one fetch. When a renewal fails while the old value is
 * still valid, the old value is used and the renewal is tried again after `retryMs`.
 */
export class Refreshing<T> {
  private current: Expiring<T> | undefined;
  private fetchedAt = 0;
  private inflight: Promise<Expiring<T>> | undefined;

  /**
   * `retryMs`: wait before retrying a failed renewal while the old value is still valid.
   * `minAgeMs`: `invalidate` keeps a value younger than this (a refusal for lack of permission
   * must not turn every request into a fetch).
   */
  constructor(
    private readonly fetch: () => Promise<Expiring<T>>,
    private readonly timing: { retryMs?: number; minAgeMs?: number } = {},
    private readonly now: () => number = Date.now,
  ) {}

  async get(): Promise<T> {
    const cur = this.current;
    const now = this.now();
    if (cur && now < cur.refreshAt) return cur.value;
    this.inflight ??= this.fetch().finally(() => (this.inflight = undefined));
    try {
      this.current = await this.inflight;
      this.fetchedAt = this.now();
      return this.current.value;
    } catch (err) {
      if (cur && this.now() < cur.expiresAt) {
        this.current = { ...cur, refreshAt: Math.min(cur.expiresAt, this.now() + (this.timing.retryMs ?? 30_000)) };
        return cur.value;
      }
      throw err;
    }
  }

  /** Forgets the value (the upstream refused it), unless it is younger than `minAgeMs`. */
  invalidate(): void {
    if (this.now() - this.fetchedAt >= (this.timing.minAgeMs ?? 30_000)) this.current = undefined;
  }
}
