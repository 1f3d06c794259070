import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { ProxyError, type RevocationStore } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';

/**
 * Parses a revocations file: one subject per line, optionally followed by an ISO-8601 time.
 * `alice 2026-12-02T18:00:00Z` refuses alice's refresh tokens issued before that moment (a
 * new `docker login` works again); `alice` alone refuses all of them while the line is there.
 * `#` starts a comment. A malformed line rejects the whole file, naming the line.
 */
export function parseRevocations(text: string, source: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const fields = line.split(/\s+/);
    if (fields.length > 2) throw new ProxyError('RP_ERR_CONFIG_INVALID', `${source} line ${i + 1}: expected "subject [ISO-8601 time]"`);
    const [subject, time] = fields as [string, string | undefined];
    let before = Number.POSITIVE_INFINITY;
    if (time !== undefined) {
      const ms = Date.parse(time);
      if (!/^\d{4}-\d\d-\d\dT/.test(time) || Number.isNaN(ms)) throw new ProxyError('RP_ERR_CONFIG_INVALID', `${source} line ${i + 1}: ${JSON.stringify(time)} is not an ISO-8601 time`);
      before = Math.floor(ms / 1000);
    }
    out.set(subject, before);
  }
  return out;
}

/**
 * Feeds a {@link RevocationStore} from a file, re-read when it changes (polling stat, which
 * follows symlinks): what the file lists is revoked, and what it no longer lists is lifted. Only
 * the file's own entries are lifted, so the store may have other sources too. A file that cannot
 * be read or parsed leaves the store as it was and logs an error; at start-up it is a
 * configuration error.
 */
export class RevocationsFile {
  private readonly onChange = () => void this.load().catch(() => undefined);
  /** What the last good read revoked. */
  private applied = new Map<string, number>();

  constructor(
    private readonly path: string,
    private readonly store: RevocationStore,
    private readonly logger: Logger,
    private readonly intervalMs: number,
  ) {}

  /** Reads the file once (throws when unusable) and starts watching it. */
  async start(): Promise<void> {
    await this.apply(this.read());
    watchFile(this.path, { interval: this.intervalMs, persistent: false }, this.onChange);
  }

  private read(): Map<string, number> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (cause) {
      throw new ProxyError('RP_ERR_CONFIG_READ', `tokens.revocationsFile: cannot read ${this.path}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, { cause });
    }
    return parseRevocations(text, this.path);
  }

  private async apply(next: Map<string, number>): Promise<void> {
    for (const subject of this.applied.keys()) if (!next.has(subject)) await this.store.unrevoke(subject);
    for (const [subject, before] of next) await this.store.revoke(subject, before);
    this.applied = next;
  }

  /** Re-reads the file; false (and an error logged) when it is unusable. */
  async load(): Promise<boolean> {
    let next: Map<string, number>;
    try {
      next = this.read();
    } catch (err) {
      this.logger.error({ err: { message: (err as Error).message } }, 'revocations not reloaded; keeping the last good list');
      return false;
    }
    await this.apply(next);
    this.logger.info({ revoked: next.size }, 'revocations reloaded');
    return true;
  }

  stop(): void {
    unwatchFile(this.path, this.onChange);
  }
}
