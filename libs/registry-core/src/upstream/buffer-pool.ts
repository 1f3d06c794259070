/** The size of the big read buffers a connection reads large bodies into. */
export const BIG_READ = 1 << 20;

/**
 * Big read buffers waiting for reuse. Fresh memory costs the kernel a page fault and a page
 * clear per 4 KiB, which doubled the relay's CPU per GiB; buffers that come back through
 * {@link releaseChunk} stay resident. Bounded, so idle memory stays small.
 */
const POOL_MAX = 32;
const pool: Buffer[] = [];
const lent = new WeakSet<ArrayBufferLike>();

export function takeBig(): Buffer {
  const b = pool.pop() ?? Buffer.allocUnsafeSlow(BIG_READ);
  lent.add(b.buffer);
  return b;
}

/**
 * Hands a body chunk's memory back for reuse, once the caller is done with every byte of it
 * (e.g. in the callback of the socket write that sent it). Chunks that did not come from the
 * pool, and second releases, are ignored.
 */
export function releaseChunk(chunk: Buffer): void {
  const ab = chunk.buffer;
  if (!lent.has(ab)) return;
  lent.delete(ab);
  if (pool.length < POOL_MAX) pool.push(Buffer.from(ab, 0, BIG_READ));
}
