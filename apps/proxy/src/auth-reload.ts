import { unwatchFile, watchFile } from 'node:fs';
import type { AuthOutcome, CredentialVerifier, Identity } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';

type Built = CredentialVerifier & { close?(): Promise<void> };

/** Options of {@link ReloadingVerifier}. */
export interface ReloadingVerifierOptions {
  /** The configuration key, for logs (`auth.0`). */
  readonly key: string;
  /** The files the strategy reads: htpasswd files, secrets given as `{file: ...}`. */
  readonly files: readonly string[];
  /** Builds the strategy from the files as they are now; throws when they are unusable. */
  readonly build: () => Built;
  readonly logger: Logger;
  readonly intervalMs: number;
  /** How long a replaced strategy may finish what it is doing before it is closed. */
  readonly retireMs?: number;
}

/**
 * A strategy rebuilt whenever a file it reads changes (issue 11, defect 11): removing a user's
 * htpasswd line refuses their next login within a poll interval. The swap is atomic: a request
 * sees the old strategy or the new one, never a half-read file. A file that does not parse (or
 * has gone) keeps the last good strategy and logs an error naming the key and the problem,
 * never a secret. A rebuilt strategy starts with an empty success cache, so no cached login
 * outlives the user's removal. Polling stat (not inotify) follows symlinks, which is how
 * Kubernetes swaps mounted Secrets and ConfigMaps.
 */
export class ReloadingVerifier implements CredentialVerifier {
  readonly name: string;
  readonly decoy?: (username: string, password: string) => Promise<void>;
  private current: Built;
  private timer: NodeJS.Timeout | undefined;
  private readonly onChange = () => this.schedule();
  private readonly retired = new Map<NodeJS.Timeout, Built>();

  constructor(private readonly opts: ReloadingVerifierOptions) {
    this.current = opts.build();
    this.name = this.current.name;
    if (this.current.decoy) this.decoy = (username, password) => this.current.decoy?.(username, password) ?? Promise.resolve();
    for (const f of new Set(opts.files)) watchFile(f, { interval: opts.intervalMs, persistent: false }, this.onChange);
  }

  verify(username: string, password: string): Promise<AuthOutcome> {
    return this.current.verify(username, password);
  }

  lookup(identity: Identity): Promise<AuthOutcome> {
    return this.current.lookup?.(identity) ?? Promise.resolve({ result: 'skip' });
  }

  /** Several files written one after another reload once. */
  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reload();
    }, 50);
    this.timer.unref();
  }

  /** Rebuilds from the files now; false (and an error logged) when they are unusable. */
  reload(): boolean {
    let next: Built;
    try {
      next = this.opts.build();
    } catch (err) {
      this.opts.logger.error({ auth: this.opts.key, err: { message: (err as Error).message } }, 'auth files not reloaded; keeping the last good ones');
      return false;
    }
    const old = this.current;
    this.current = next;
    this.opts.logger.info({ auth: this.opts.key, files: this.opts.files }, 'auth files reloaded');
    if (old.close) {
      const t = setTimeout(() => {
        this.retired.delete(t);
        void old.close?.();
      }, this.opts.retireMs ?? 30_000);
      t.unref();
      this.retired.set(t, old);
    }
    return true;
  }

  async close(): Promise<void> {
    for (const f of new Set(this.opts.files)) unwatchFile(f, this.onChange);
    if (this.timer) clearTimeout(this.timer);
    const all = [this.current, ...this.retired.values()];
    for (const t of this.retired.keys()) clearTimeout(t);
    this.retired.clear();
    await Promise.all(all.map((v) => v.close?.()));
  }
}

/** Every `{file: ...}` path in a configuration subtree: the secrets a strategy reads from files. */
export function secretFiles(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(secretFiles);
  if (node === null || typeof node !== 'object') return [];
  const o = node as Record<string, unknown>;
  if (Object.keys(o).length === 1 && typeof o['file'] === 'string') return [o['file']];
  return Object.values(o).flatMap(secretFiles);
}
