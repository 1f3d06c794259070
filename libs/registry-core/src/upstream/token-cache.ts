/** A cached bearer token and when to stop using it. */
export interface CachedToken {
  readonly token: string;
  /** Epoch milliseconds after which the token is fetched anew. */
  readonly refreshAt: number;
}

/**
 * Upstream bearer tokens per (scope, credential key), used until shortly before they expire.
 * Concurrent misses for one key share one fetch. Bounded: the oldest entries go first.
 */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();

  constructor(
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The refresh time for a token that lives `expiresIn` seconds: 90% of its life, at least 10 s early. */
  static refreshAt(now: number, expiresIn: number): number {
    const life = expiresIn * 1000;
    return now + Math.max(0, Math.min(life * 0.9, life - 10_000));
  }

  async get(key: string, fetch: () => Promise<CachedToken>): Promise<string> {
    const hit = this.tokens.get(key);
    if (hit && hit.refreshAt > this.now()) return hit.token;
    let p = this.inflight.get(key);
    if (!p) {
      p = fetch().finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const fresh = await p;
    this.tokens.delete(key);
    this.tokens.set(key, fresh);
    while (this.tokens.size > this.maxEntries) this.tokens.delete(this.tokens.keys().next().value as string);
    return fresh.token;
  }

  delete(key: string): void {
    this.tokens.delete(key);
  }
}
