import { createHmac, randomBytes } from 'node:crypto';

/**
 * Successful verifications for a short time, keyed by an HMAC of username and password under a
 * key that lives only in this process: the cache holds no password and nothing a leaked heap
 * dump could test guesses against offline without the key. Bounded, oldest out first. Only
 * successes are kept, so a wrong password always pays the full check.
 */
export class SuccessCache<T> {
  private readonly key = randomBytes(32);
  private readonly entries = new Map<string, { value: T; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The cache key of a credential. */
  keyOf(username: string, password: string): string {
    return createHmac('sha256', this.key).update(username).update('\0').update(password).digest('base64');
  }

  get(key: string): T | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (hit.until > this.now()) return hit.value;
    this.entries.delete(key);
    return undefined;
  }

  set(key: string, value: T): void {
    if (this.ttlMs <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { value, until: this.now() + this.ttlMs });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  get size(): number {
    return this.entries.size;
  }
}
