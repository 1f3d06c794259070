/**
 * The size quota: which objects the store holds, how big, when each was last used, and which
 * are pinned (being read or filled). Victims are the least recently used unpinned objects.
 */
export class Quota {
  private readonly entries = new Map<string, { size: number; lastUsed: number }>();
  private readonly pins = new Map<string, number>();
  private total = 0;
  /** Bytes of fills under way that have made room for themselves and are not counted yet. */
  private reserved = 0;
  /**
   * Whether the map's order is the order of last use (each entry inserted with a lastUsed no
   * earlier than the newest before it): then victims are read from its start, with no sort of
   * every object on every fill. An entry set out of order (the index's fill times) clears it, and
   * the next `victims` sorts once.
   */
  private ordered = true;
  private newest = -Infinity;

  constructor(readonly maxBytes: number) {}

  get bytes(): number {
    return this.total;
  }

  get count(): number {
    return this.entries.size;
  }

  set(digest: string, size: number, lastUsed = Date.now()): void {
    this.delete(digest);
    this.entries.set(digest, { size, lastUsed });
    this.appended(lastUsed);
    this.total += size;
  }

  private appended(lastUsed: number): void {
    if (lastUsed < this.newest) this.ordered = false;
    else this.newest = lastUsed;
  }

  size(digest: string): number {
    return this.entries.get(digest)?.size ?? 0;
  }

  /** When the object was last used (0 when it is not held). */
  lastUsed(digest: string): number {
    return this.entries.get(digest)?.lastUsed ?? 0;
  }

  has(digest: string): boolean {
    return this.entries.has(digest);
  }

  delete(digest: string): void {
    const e = this.entries.get(digest);
    if (!e) return;
    this.entries.delete(digest);
    this.total -= e.size;
  }

  touch(digest: string, now = Date.now()): void {
    const e = this.entries.get(digest);
    if (!e) return;
    // Re-inserted so the map's order is the order of use: uses within one millisecond tie on
    // lastUsed, and the (stable) sort by age then keeps the order they happened in.
    this.entries.delete(digest);
    e.lastUsed = Math.max(now, e.lastUsed);
    this.entries.set(digest, e);
    this.appended(e.lastUsed);
  }

  pin(digest: string): () => void {
    this.pins.set(digest, (this.pins.get(digest) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.pins.get(digest) ?? 1) - 1;
      if (n <= 0) this.pins.delete(digest);
      else this.pins.set(digest, n);
    };
  }

  /**
   * Holds room for an object being filled until it is counted (or given up): fills that make
   * room meanwhile make it for themselves too, rather than count the same free bytes again.
   */
  reserve(bytes: number): () => void {
    this.reserved += bytes;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.reserved -= bytes;
    };
  }

  pinned(digest: string): boolean {
    return this.pins.has(digest);
  }

  /** The objects to remove, oldest use first, so that `incoming` more bytes fit; pinned ones are skipped. */
  victims(incoming: number): string[] {
    let excess = this.total + this.reserved + incoming - this.maxBytes;
    if (excess <= 0) return [];
    const out: string[] = [];
    if (!this.ordered) {
      // Stable: uses that tie keep the order they happened in.
      const byAge = [...this.entries].sort((a, b) => a[1].lastUsed - b[1].lastUsed);
      this.entries.clear();
      for (const [digest, e] of byAge) this.entries.set(digest, e);
      this.ordered = true;
      this.newest = byAge.length > 0 ? (byAge[byAge.length - 1] as [string, { lastUsed: number }])[1].lastUsed : -Infinity;
    }
    for (const [digest, e] of this.entries) {
      if (excess <= 0) break;
      if (this.pins.has(digest)) continue;
      out.push(digest);
      excess -= e.size;
    }
    return out;
  }
}
