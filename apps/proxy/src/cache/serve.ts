import type { ServerResponse } from 'node:http';
import type { ObjectHandle } from './store.js';

/** A stored object failed its digest check. */
export class CorruptObjectError extends Error {
  constructor(readonly digest: string, got: string) {
    super(`cached object ${digest} has digest ${got}`);
    this.name = 'CorruptObjectError';
  }
}

/** Where the bytes come from: a complete object (everything available) or a fill (./fill.ts). */
export interface Source {
  readonly handle: ObjectHandle;
  available(): number;
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

function drained(res: ServerResponse): Promise<boolean> {
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

/** Writes bytes `[start, end]` of a source to the response, reading as they become available. Resolves to false when the client left. */
export async function sendBytes(res: ServerResponse, src: Source, start: number, end: number): Promise<boolean> {
  let pos = start;
  while (pos <= end) {
    if (res.destroyed) return false;
    const avail = src.available();
    if (pos >= avail) {
      await src.wait();
      continue;
    }
    const n = Math.min(avail - pos, end + 1 - pos, CHUNK);
    const buf = Buffer.allocUnsafe(n);
    const got = await src.handle.read(buf, pos);
    if (got === 0) throw new Error('cached object shorter than its size');
    const chunk = got === n ? buf : buf.subarray(0, got);
    pos += got;
    if (!res.write(chunk) && !(await drained(res))) return false;
  }
  return new Promise<boolean>((resolve) => {
    if (res.destroyed) return resolve(false);
    res.end(() => resolve(true));
    res.once('close', () => resolve(res.writableFinished));
  });
}

/** Streams a verified object's range without hashing (no JavaScript copy per chunk). */
export function streamBytes(res: ServerResponse, handle: ObjectHandle, start: number, end: number): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    const s = handle.stream(start, end) as NodeJS.ReadableStream & { destroy(): void };
    s.once('error', reject);
    res.once('close', () => {
      if (!res.writableFinished) s.destroy();
      resolve(res.writableFinished);
    });
    s.pipe(res);
  });
}
