/**
 * What an upstream request needs of its abort signal: whether it was aborted, why, and a call
 * when it is. An AbortSignal is one; {@link Cancel} is a cheaper one for the per-request path.
 * Why: on Node 20 making an AbortController costs about 24,000 instructions and a listener on its
 * signal about 9,000 more (callgrind), a tenth of the proxy's main-thread cost of a relayed
 * manifest HEAD (tools/bench/head-instructions.mjs), for a signal that is almost never used.
 */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * A one-shot abort signal and its trigger in one plain object, for code that owns both (the
 * relay: the client's connection closing aborts its upstream request). As an AbortSignal does,
 * it calls each listener at most once, in the order they were added, and never one added after
 * it fired or one added twice more than once. Unlike an AbortSignal's, a listener that throws
 * throws out of abort().
 */
export class Cancel implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: Array<() => void> | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    const list = (this.listeners ??= []);
    if (!list.includes(listener)) list.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const list = this.listeners;
    const i = list === undefined ? -1 : list.indexOf(listener);
    if (i >= 0) list?.splice(i, 1);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const list = this.listeners;
    this.listeners = undefined;
    if (list) for (const l of list) l();
  }
}

/**
 * An AbortSignal that follows `signal`, for the APIs that take only a real one (timers/promises),
 * off the per-request path; `detach` lets go of `signal` again.
 */
export function followSignal(signal: CancelSignal): { signal: AbortSignal; detach(): void } {
  if (signal instanceof AbortSignal) return { signal, detach: () => undefined };
  const ac = new AbortController();
  const follow = () => ac.abort(signal.reason);
  if (signal.aborted) follow();
  else signal.addEventListener('abort', follow, { once: true });
  return { signal: ac.signal, detach: () => signal.removeEventListener('abort', follow) };
}
