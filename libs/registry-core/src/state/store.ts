import { ProxyError } from '../codes.js';

/**
 * State that proxy replicas must share: replay records, revocations and fill locks. One
 * interface, two engines: this process's memory (the default, one replica) and Redis (many).
 *
 * Every method may reject with {@link StateUnavailableError} when the engine cannot answer in
 * time; callers decide whether that refuses the request (replay records, revocations) or lets
 * it through (rate limits). No method waits longer than the engine's timeout.
 */
export interface StateStore {
  /** `memory` or `redis`, for logs and metrics. */
  readonly kind: string;
  /**
   * Binds `key` to `value` unless it is bound to something else (trust on first use). A key
   * bound to the same value counts as bound and its time to live starts again.
   */
  claim(key: string, value: string, ttlMs: number): Promise<ClaimResult>;
  /** Stores `value` under `key` for `ttlMs`, replacing what was there. */
  put(key: string, value: string, ttlMs: number): Promise<void>;
  /** The value under `key`, or undefined when there is none or it expired. */
  get(key: string): Promise<string | undefined>;
  /**
   * Takes the lock `key` for `ttlMs` unless someone holds it. The fence increases with every
   * grant of that key, so a holder whose lock expired can be told apart from the new one.
   */
  lock(key: string, ttlMs: number): Promise<Lock | undefined>;
  /** Releases connections; the store is unusable afterwards. */
  close(): Promise<void>;
}

export type ClaimResult = { readonly claimed: true } | { readonly claimed: false; readonly current: string };

/** A held lock. */
export interface Lock {
  /** Increases with every grant of this key: pass it along with writes the lock guards. */
  readonly fence: number;
  /** Extends the lock while it is still ours; false when it expired and may be someone else's. */
  extend(ttlMs: number): Promise<boolean>;
  /** Releases the lock if it is still ours (never someone else's); false when it was not. */
  release(): Promise<boolean>;
}

/** The state engine did not answer in time, or refused the command. */
export class StateUnavailableError extends ProxyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RP_ERR_STATE_UNAVAILABLE', message, options);
    this.name = 'StateUnavailableError';
  }
}
