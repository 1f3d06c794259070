import type { UpstreamResponse } from '@registry-proxy/registry-core';

/** An upstream answer several clients can share: status, headers and a whole (small) body. */
export interface SharedResponse {
  readonly statusCode: number;
  readonly headers: UpstreamResponse['headers'];
  readonly url: URL;
  readonly body: Buffer;
}

/**
 * Collapses identical concurrent requests into few upstream requests (a thundering herd: every
 * node of a cluster resolving the same tag during a rollout).
 *
 * At most one request per key is in flight. A caller that finds one in the air does not join it:
 * the answer it carries may predate the caller (a tag moved in between). The caller waits for the
 * next flight instead, which leaves when the current one lands and carries everyone who arrived
 * meanwhile. So every caller gets an answer the upstream produced after the caller arrived, at the
 * cost of at most one extra upstream round trip while the key is busy.
 */
export class Flights<T> {
  private readonly slots = new Map<string, { next?: { readonly promise: Promise<T>; readonly start: () => void } }>();
  run(key: string, fetch: () => Promise<T>): Promise<T> {
    const slot = this.slots.get(key);
    if (slot === undefined) {
      const fresh = {};
      this.slots.set(key, fresh);
      return this.fly(key, fresh, fetch);
    }
    if (slot.next) return slot.next.promise;
    let start!: () => void;
    const promise = new Promise<T>((resolve, reject) => {
      start = () => void this.fly(key, slot, fetch).then(resolve, reject);
    });
    slot.next = { promise, start };
    return promise;
  }

  /** Keys with a flight in the air. */
  get size(): number {
    return this.slots.size;
  }

  private fly(key: string, slot: { next?: { readonly start: () => void } }, fetch: () => Promise<T>): Promise<T> {
    let p: Promise<T>;
    try {
      p = fetch();
    } catch (err) {
      p = Promise.reject(err);
    }
    const land = () => {
      const next = slot.next;
      delete slot.next;
      if (next) next.start();
      else this.slots.delete(key);
    };
    p.then(land, land);
    return p;
  }
}
