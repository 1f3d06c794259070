import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A path on the host, under the mounted root. */
export function hostPath(root: string, path: string): string {
  return join(root, path);
}

export function readIfExists(path: string): Buffer | undefined {
  return existsSync(path) ? readFileSync(path) : undefined;
}

/**
 * Replaces a file atomically: a temporary file beside it, fsync, rename, fsync of the folder.
 * A crash leaves the old file or the new one, never half of either. The mode of an existing file
 * is kept.
 */
export function writeAtomic(path: string, data: Buffer | string, mode?: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const keepMode = mode ?? (existsSync(path) ? statSync(path).mode & 0o7777 : 0o644);
  const tmp = `${path}.registry-proxy.tmp`;
  const fd = openSync(tmp, 'w', keepMode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
