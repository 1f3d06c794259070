import type { ServerResponse } from 'node:http';
import type { ObjectHandle } from './store.js';

/** A stored object failed its digest check. */
export class CorruptObjectError extends Error {
  constructor(
    readonly digest: string,
    got: string,
  ) {
    super(`cached object ${digest} has digest ${got}`);
    this.name = 'CorruptObjectError';
  }
}

/** Where the bytes come from: a complete object (everything available) or a fill (./fill.ts). */
export interface Source {
  readonly handle: ObjectHandle;
  available(): number;
  /** True while more bytes are still to come (a fill in progress). */
  growing(): boolean;
  wait(): Promise<void>;
}

/** A single byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`); undefined (send it all) for anything else, as RFC 9110 allows. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (header === undefined || size === 0) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return undefined;
  return { start, end };
}

const CHUNK = 1 << 20;
const MIN_BATCH = 256 << 10;
/**
 * Read buffers, reused: a fresh 1 MiB buffer per read is an mmap and 256 page faults (glibc maps
 * blocks this large on their own, always, once MALLOC_TRIM_THRESHOLD_ is set), which cost
 * several times the copy itself: about 130k faults and 2.7 s of system time per 512 MiB.
 */
const spare: Buffer[] = [];
const MAX_SPARE = 64;
const takeBuffer = (): Buffer => spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
const giveBuffer = (b: Buffer): void => {
  if (spare.length < MAX_SPARE) spare.push(b);
};

/** Resolves true once the socket has taken what waits for it, false when the client has gone (at once if it already has). */
export function drained(res: ServerResponse): Promise<boolean> {
  // 'close' is emitted once: a client that left during an await before this call would
  // otherwise leave the caller waiting for ever, and its file handle open.
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

/**
 * Writes bytes `[start, end]` of a source to the response, reading as they become available.
 * Resolves to false when the client left. `starting` runs once, just before the first write
 * (or the end of an empty body): until then nothing has gone out, and a failed read leaves the
 * caller free to answer otherwise.
 */
export async function sendBytes(res: ServerResponse, src: Source, start: number, end: number, starting?: () => void): Promise<boolean> {
  let pos = start;
  let started = false;
  const begin = () => {
    if (started) return;
    started = true;
    starting?.();
  };
  while (pos <= end) {
    if (res.destroyed) return false;
    const avail = src.available();
    // Behind a fill, wait for a good batch rather than reading each small chunk as it lands:
    // fewer reads and writes, each of them a system call.
    if (pos >= avail || (avail - pos < MIN_BATCH && avail <= end && src.growing())) {
      await src.wait();
      continue;
    }
    const buf = takeBuffer();
    let got: number;
    try {
      got = await src.handle.read(buf.subarray(0, Math.min(avail - pos, end + 1 - pos, CHUNK)), pos);
    } catch (err) {
      giveBuffer(buf);
      throw err;
    }
    if (got === 0) {
      giveBuffer(buf);
      throw new Error('cached object shorter than its size');
    }
    pos += got;
    begin();
    // The buffer goes back to the pool once the socket has taken its bytes.
    if (!res.write(buf.subarray(0, got), (err) => err || giveBuffer(buf)) && !(await drained(res))) return false;
  }
  return new Promise<boolean>((resolve) => {
    if (res.destroyed) return resolve(false);
    begin();
    res.end(() => resolve(true));
    res.once('close', () => resolve(res.writableFinished));
  });
}
