import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** A fill's temporary file untouched this long was left by a crashed process; younger ones may be another replica's fill in progress. */
export const ABANDONED_MS = 3_600_000;

/** Removes the files of `dir` that `matches` and that nobody has written to for ABANDONED_MS (never fails). */
export async function sweepAbandoned(dir: string, matches: (name: string) => boolean = () => true): Promise<void> {
  const now = Date.now();
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (!matches(f)) continue;
    const st = await stat(join(dir, f)).catch(() => undefined);
    if (st && now - st.mtimeMs > ABANDONED_MS) await rm(join(dir, f), { force: true }).catch(() => undefined);
  }
}
