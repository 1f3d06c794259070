import type { ClaimResult, Lock, StateStore } from './store.js';

interface Entry {
  value: string;
  expiresAt: number;
}

/**
 * The state of one process: correct for a single replica, and what every replica falls back to
 * being when no shared engine is configured. Bounded: expired entries are swept as writes come
 * in, and beyond `maxEntries` the oldest writes go first.
 */
export class MemoryStateStore implements StateStore {
  readonly kind = 'memory';
  private readonly entries = new Map<string, Entry>();
  private fence = 0;
  private writes = 0;

  constructor(
    private readonly maxEntries = 1_000_000,
    private readonly now: () => number = Date.now,
  ) {}

  private live(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e && e.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private write(key: string, value: string, ttlMs: number): void {
    this.entries.delete(key); // re-inserted last: Map order is write order
    this.entries.set(key, { value, expiresAt: this.now() + ttlMs });
    if (++this.writes % 1024 === 0) {
      const now = this.now();
      for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
    }
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  async claim(key: string, value: string, ttlMs: number): Promise<ClaimResult> {
    const e = this.live(key);
    if (e && e.value !== value) return { claimed: false, current: e.value };
    this.write(key, value, ttlMs);
    return { claimed: true };
  }

  async put(key: string, value: string, ttlMs: number): Promise<void> {
    this.write(key, value, ttlMs);
  }

  async get(key: string): Promise<string | undefined> {
    return this.live(key)?.value;
  }

  async lock(key: string, ttlMs: number): Promise<Lock | undefined> {
    const k = `lock\u0000${key}`;
    if (this.live(k)) return undefined;
    const fence = ++this.fence; // one counter for all keys: increasing per key too, and nothing to sweep
    this.write(k, String(fence), ttlMs);
    const ours = () => this.live(k)?.value === String(fence);
    return {
      fence,
      extend: async (ms: number) => {
        if (!ours()) return false;
        this.write(k, String(fence), ms);
        return true;
      },
      release: async () => {
        if (!ours()) return false;
        this.entries.delete(k);
        return true;
      },
    };
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}
