import { Cancel, followSignal } from './cancel.js';
import { withRetry } from './retry.js';
import { NoResponseError } from './errors.js';

describe('Cancel', () => {
  it('calls each listener once, in order, with the reason set; not one removed, added again, or added after', () => {
    const c = new Cancel();
    const calls: string[] = [];
    const a = () => calls.push(`a:${String(c.reason)}`);
    const b = () => calls.push('b');
    const gone = () => calls.push('removed');
    c.addEventListener('abort', a);
    c.addEventListener('abort', gone);
    c.addEventListener('abort', b);
    c.addEventListener('abort', a);
    c.removeEventListener('abort', gone);
    expect(c.aborted).toBe(false);
    c.abort('why');
    c.abort('again');
    c.addEventListener('abort', () => calls.push('late'));
    expect(calls).toEqual(['a:why', 'b']);
    expect(c.aborted).toBe(true);
    expect(c.reason).toBe('why');
  });

  it('is followed by a real AbortSignal, before or after it fires; an AbortSignal is its own follower', () => {
    const c = new Cancel();
    const f = followSignal(c);
    expect(f.signal.aborted).toBe(false);
    c.abort(new Error('left'));
    expect(f.signal.aborted).toBe(true);
    expect((f.signal.reason as Error).message).toBe('left');
    expect(followSignal(c).signal.aborted).toBe(true);
    const detached = new Cancel();
    followSignal(detached).detach();
    detached.abort('x'); // nothing listens any more: no throw, nothing to see
    const ac = new AbortController();
    expect(followSignal(ac.signal).signal).toBe(ac.signal);
  });

  it('cuts a retry backoff short', async () => {
    const c = new Cancel();
    let n = 0;
    const started = Date.now();
    const p = withRetry(
      'up',
      { attempts: 3, baseDelayMs: 60_000, maxDelayMs: 60_000 },
      'GET',
      c,
      async () => {
        n++;
        throw new NoResponseError(new Error('reset'), false);
      },
      async () => undefined,
    );
    setTimeout(() => c.abort(new Error('client left')), 20);
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect(n).toBe(1);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
