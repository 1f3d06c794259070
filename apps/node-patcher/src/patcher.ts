import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readIfExists, sha256, writeAtomic } from './files.js';
import { detectLayout, type Layout } from './layouts.js';
import { planChanges, STATE_DIR, type Mode, type PatchOptions } from './plan.js';

/** What a patch did, kept on the host so that revert can undo it byte for byte. */
export interface PatchState {
  readonly version: 1;
  readonly mode: Mode;
  readonly layout: Layout['name'];
  readonly patchedAt: string;
  /** In order; backup/<i> holds the original of files that existed. */
  readonly files: ReadonlyArray<{ readonly path: string; readonly existed: boolean; readonly sha256After: string }>;
  /** Whether kubelet needs a restart for the change (not for containerd mirrors). */
  readonly restart: boolean;
}

export type PatchResult = { readonly changed: false; readonly state: PatchState } | { readonly changed: true; readonly state: PatchState };

export class PatchError extends Error {}

const statePath = (root: string) => join(root, STATE_DIR, 'state.json');
const backupPath = (root: string, i: number) => join(root, STATE_DIR, 'backup', String(i));

export function readState(root: string): PatchState | undefined {
  const p = statePath(root);
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as PatchState;
  } catch {
    throw new PatchError(`${STATE_DIR}/state.json is unreadable; fix or remove it by hand`);
  }
}

/** Files a previous patch wrote that someone has changed since. */
function drifted(root: string, state: PatchState): string[] {
  return state.files.filter((f) => {
    const now = readIfExists(join(root, f.path));
    return now === undefined || sha256(now) !== f.sha256After;
  }).map((f) => f.path);
}

/**
 * Applies a mode: detects the layout (refusing unknown or corrupt ones before touching
 * anything), backs up every file it will change, writes each atomically, and records the state.
 * A second patch with the same options is a no-op; a patch over a different one is refused.
 */
export function patch(root: string, opts: PatchOptions): PatchResult {
  const layout = detectLayout(root);
  const changes = planChanges(root, layout, opts);
  const existing = readState(root);
  if (existing) {
    const drift = drifted(root, existing);
    if (drift.length > 0) throw new PatchError(`patched files were changed since the patch: ${drift.join(', ')}; revert by hand or with --force`);
    const same = existing.mode === opts.mode && existing.files.length === changes.length && changes.every((c, i) => existing.files[i]?.path === c.path && existing.files[i]?.sha256After === sha256(c.after));
    if (same) return { changed: false, state: existing };
    throw new PatchError(`already patched (${existing.mode}, ${existing.patchedAt}) with other settings; revert first`);
  }
  // Back everything up before the first write, so a failure half-way can be undone.
  mkdirSync(join(root, STATE_DIR, 'backup'), { recursive: true });
  const files = changes.map((c, i) => {
    const before = readIfExists(join(root, c.path));
    if (before !== undefined) writeAtomic(backupPath(root, i), before, statSync(join(root, c.path)).mode & 0o7777);
    else rmSync(backupPath(root, i), { force: true });
    return { path: c.path, existed: before !== undefined, sha256After: sha256(c.after) };
  });
  const state: PatchState = { version: 1, mode: opts.mode, layout: layout.name, patchedAt: new Date().toISOString(), files, restart: opts.mode !== 'mirror' };
  // The state goes first: a crash between file writes leaves a state that revert can act on.
  writeAtomic(statePath(root), `${JSON.stringify(state, null, 2)}\n`);
  try {
    for (const c of changes) writeAtomic(join(root, c.path), c.after, c.mode);
  } catch (err) {
    revert(root, { force: true });
    throw new PatchError(`writing failed, everything put back: ${(err as Error).message}`);
  }
  return { changed: true, state };
}

/** Puts every file back as it was before the patch (or removes files the patch created). */
export function revert(root: string, opts: { force?: boolean } = {}): { reverted: boolean; state?: PatchState } {
  const state = readState(root);
  if (!state) return { reverted: false };
  const drift = drifted(root, state);
  if (drift.length > 0 && !opts.force) throw new PatchError(`patched files were changed since the patch: ${drift.join(', ')}; use --force to put the originals back anyway`);
  state.files.forEach((f, i) => {
    const target = join(root, f.path);
    if (f.existed) {
      const b = backupPath(root, i);
      writeAtomic(target, readFileSync(b), statSync(b).mode & 0o7777);
    } else rmSync(target, { force: true });
  });
  rmSync(join(root, STATE_DIR), { recursive: true, force: true });
  return { reverted: true, state };
}

/** What is patched now, and whether the files still match. */
export function status(root: string): { patched: false } | { patched: true; state: PatchState; drifted: string[] } {
  const state = readState(root);
  return state ? { patched: true, state, drifted: drifted(root, state) } : { patched: false };
}
