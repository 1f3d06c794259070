import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readIfExists, sha256, writeAtomic } from './files.js';
import { detectLayout, type Layout } from './layouts.js';
import { planChanges, STATE_DIR, type FileChange, type Mode, type PatchOptions } from './plan.js';

/** What a patch did, kept on the host so that revert can undo it byte for byte. */
export interface PatchState {
  readonly version: 1;
  readonly mode: Mode;
  readonly layout: Layout['name'];
  readonly patchedAt: string;
  /** In order; backup/<i> holds the original of files that existed. */
  readonly files: ReadonlyArray<{ readonly path: string; readonly existed: boolean; readonly sha256After: string }>;
  /** Folders the patch created (shallowest first), removed again by revert when empty. */
  readonly createdDirs?: readonly string[];
  /** Whether kubelet needs a restart for the change (not for containerd mirrors). */
  readonly restart: boolean;
}

export type PatchResult = { readonly changed: boolean; readonly state: PatchState; readonly rebased?: { readonly rewritten: string[] } };

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

/** Files a previous patch wrote that were changed since (by the provider at boot, or by hand). */
function drifted(root: string, state: PatchState): string[] {
  return state.files
    .filter((f) => {
      const now = readIfExists(join(root, f.path));
      return now === undefined || sha256(now) !== f.sha256After;
    })
    .map((f) => f.path);
}

/** The folders that do not exist yet on the way to each path, shallowest first. */
/** For the boot guard (a shell script) and for leftoverDirs: the folders to remove, deepest first. */
const createdDirsFile = (dirs: readonly string[]) =>
  dirs
    .slice()
    .reverse()
    .map((d) => `${d}\n`)
    .join('');

/**
 * What a killed run left in the state folder without a state.json: the folders it recorded as
 * created (its created-dirs, or that file's complete temporary copy when it died on the rename),
 * which still exist. The folder itself is emptied; its debris is never a patch to undo.
 */
function leftoverDirs(root: string): string[] {
  const dir = join(root, STATE_DIR);
  if (!existsSync(dir)) return [];
  const record = [join(dir, 'created-dirs'), join(dir, 'created-dirs.registry-proxy.tmp')].find((f) => existsSync(f));
  const dirs = record
    ? readFileSync(record, 'utf8')
        .split('\n')
        .filter((d) => d.startsWith('/') && existsSync(join(root, d)))
    : [];
  rmSync(dir, { recursive: true, force: true });
  return dirs;
}

function missingDirs(root: string, paths: readonly string[]): string[] {
  const out = new Set<string>();
  for (const p of paths) {
    const chain: string[] = [];
    for (let d = dirname(p); d !== '/' && !existsSync(join(root, d)); d = dirname(d)) chain.unshift(d);
    chain.forEach((d) => out.add(d));
  }
  return [...out].sort((a, b) => a.split('/').length - b.split('/').length);
}

/**
 * Applies a mode: detects the layout (refusing unknown or corrupt ones before touching
 * anything), backs up every file it will change, writes each atomically, and records the state.
 * A second patch with the same options is a no-op. When the provider rewrote patched files
 * since (AL2023's nodeadm and GKE's boot scripts do on every boot), or the options changed, the
 * node goes back to its baseline (the rewritten files as the provider left them, the others
 * from the backups) and is patched anew: a provider's rewrite is the new baseline.
 */
/** The changes a patch would make; throws the refusals patch() would. */
export function plan(root: string, opts: PatchOptions): FileChange[] {
  return planChanges(root, detectLayout(root), opts);
}

/** Whether the node already holds exactly this patch (then patch() changes nothing). */
export function isApplied(root: string, opts: PatchOptions): boolean {
  const existing = readState(root);
  if (!existing || drifted(root, existing).length > 0) return false;
  const changes = planChanges(root, detectLayout(root), opts);
  return existing.mode === opts.mode && existing.files.length === changes.length && changes.every((c, i) => existing.files[i]?.path === c.path && existing.files[i]?.sha256After === sha256(c.after));
}

export function patch(root: string, opts: PatchOptions): PatchResult {
  const layout = detectLayout(root);
  const existing = readState(root);
  let rebased: { rewritten: string[] } | undefined;
  if (existing) {
    const drift = drifted(root, existing);
    if (isApplied(root, opts)) return { changed: false, state: existing };
    revert(root);
    rebased = { rewritten: drift };
  }
  const changes = planChanges(root, layout, opts);
  // A run killed before it wrote its state changed no node file yet, but left its folder (and
  // the folders it created for it): take those over as ours, so revert removes them too.
  const leftover = existing ? [] : leftoverDirs(root);
  const createdDirs = [...new Set([...leftover, ...missingDirs(root, [...changes.map((c) => c.path), `${STATE_DIR}/backup/0`])])].sort((a, b) => a.split('/').length - b.split('/').length);
  // The folders this run creates are recorded first of all, before a backup or a node file.
  writeAtomic(join(root, STATE_DIR, 'created-dirs'), createdDirsFile(createdDirs));
  // Back everything up before the first write, so a failure half-way can be undone.
  mkdirSync(join(root, STATE_DIR, 'backup'), { recursive: true });
  const files = changes.map((c, i) => {
    const before = readIfExists(join(root, c.path));
    if (before !== undefined) writeAtomic(backupPath(root, i), before, statSync(join(root, c.path)).mode & 0o7777);
    else rmSync(backupPath(root, i), { force: true });
    return { path: c.path, existed: before !== undefined, sha256After: sha256(c.after) };
  });
  const state: PatchState = { version: 1, mode: opts.mode, layout: layout.name, patchedAt: new Date().toISOString(), files, createdDirs, restart: opts.mode !== 'mirror' };
  // The state goes first: a crash between file writes leaves a state that revert can act on.
  writeAtomic(statePath(root), `${JSON.stringify(state, null, 2)}\n`);
  try {
    for (const c of changes) writeAtomic(join(root, c.path), c.after, c.mode);
  } catch (err) {
    revert(root, { force: true });
    throw new PatchError(`writing failed, everything put back: ${(err as Error).message}`);
  }
  return { changed: true, state, ...(rebased ? { rebased } : {}) };
}

/**
 * Puts every file back as it was before the patch (or removes files the patch created), last
 * written first, and removes the folders the patch created. A file changed since the patch (the
 * provider rewrote it) is left as it is now, the provider's version, unless `force` puts the
 * backup back anyway.
 */
export function revert(root: string, opts: { force?: boolean } = {}): { reverted: boolean; state?: PatchState; kept?: string[] } {
  const state = readState(root);
  if (!state) return { reverted: false };
  const drift = opts.force ? [] : drifted(root, state);
  for (let i = state.files.length - 1; i >= 0; i--) {
    const f = state.files[i] as PatchState['files'][number];
    const target = join(root, f.path);
    // A run killed on this file's rename left its temporary copy beside it.
    rmSync(`${target}.registry-proxy.tmp`, { force: true });
    if (drift.includes(f.path)) continue;
    if (f.existed) {
      const b = backupPath(root, i);
      writeAtomic(target, readFileSync(b), statSync(b).mode & 0o7777);
    } else rmSync(target, { force: true });
  }
  rmSync(join(root, STATE_DIR), { recursive: true, force: true });
  for (const d of [...(state.createdDirs ?? [])].reverse()) {
    try {
      rmdirSync(join(root, d));
    } catch {
      /* not empty (someone else's files) or gone: leave it */
    }
  }
  return { reverted: true, state, kept: drift };
}

/** What is patched now, and whether the files still match. */
export function status(root: string): { patched: false } | { patched: true; state: PatchState; drifted: string[] } {
  const state = readState(root);
  return state ? { patched: true, state, drifted: drifted(root, state) } : { patched: false };
}
