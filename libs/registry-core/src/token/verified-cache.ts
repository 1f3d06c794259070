/**
 * Tokens whose signature and claims already verified, kept until their own `exp` (plus the
 * configured clock tolerance, as the verifier itself allows): a client sends the same token
 * again and again, and a signature check is the largest CPU cost of the requests that carry
 * one. Only successes are stored, so a forged or expired token always pays the full check.
 * Bounded: past `max` entries the oldest insertion goes first. Whatever is checked after the
 * signature (revocations, re-checks of the identity) is the caller's and runs on every use.
 */
export class VerifiedCache<T> {
  private readonly entries = new Map<string, { value: T; exp: number }>();

  constructor(
    private readonly clockTolerance: number,
    private readonly max = 10_000,
    private readonly now: () => number = () => Date.now() / 1000,
  ) {}

  /** The value stored for `key` while its token is unexpired; an expired entry is dropped. */
  get(key: string): T | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (hit.exp + this.clockTolerance > this.now()) return hit.value;
    this.entries.delete(key);
    return undefined;
  }

  /** Stores a verified token's result until `exp` (epoch seconds). */
  set(key: string, value: T, exp: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, exp });
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
  }

  get size(): number {
    return this.entries.size;
  }
}
