import { AuthBackendError } from '@registry-proxy/registry-core';
import type { Redis } from 'ioredis';
import type { CliSecretRecord, CliSecretStore } from './secrets.js';

const rec = (hash: string) => `cli:rec:${hash}`;
const bySubject = (subject: string) => `cli:subject:${subject}`;
const SUBJECTS = 'cli:subjects';

/**
 * CLI secret records on the Redis of `state.redis`, so every replica accepts a secret another
 * made and refuses one another revoked. A record (only the secret's hash, never the secret)
 * lives under its hash with the secret's own expiry; a set per subject indexes them for the
 * page. Redis failures surface as AuthBackendError: a login with a secret then gets a 503,
 * never an answer the store could not vouch for (fails closed).
 */
export class RedisCliSecretStore implements CliSecretStore {
  constructor(
    private readonly client: Redis,
    private readonly now: () => number = Date.now,
  ) {}

  private async run<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw new AuthBackendError(`CLI secrets: redis ${what} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  private ttl(r: CliSecretRecord): number {
    return Math.max(1, r.expiresAt - this.now());
  }

  put(r: CliSecretRecord): Promise<void> {
    return this.run('put', async () => {
      await this.client.multi().set(rec(r.hash), JSON.stringify(r), 'PX', this.ttl(r)).sadd(bySubject(r.identity.subject), r.hash).sadd(SUBJECTS, r.identity.subject).exec();
    });
  }

  replace(r: CliSecretRecord): Promise<boolean> {
    // XX: only while the record is still there, so a revocation that landed first wins.
    return this.run('replace', async () => (await this.client.set(rec(r.hash), JSON.stringify(r), 'PX', this.ttl(r), 'XX')) === 'OK');
  }

  get(hash: string): Promise<CliSecretRecord | undefined> {
    return this.run('get', async () => {
      const text = await this.client.get(rec(hash));
      return text === null ? undefined : (JSON.parse(text) as CliSecretRecord);
    });
  }

  delete(hash: string): Promise<void> {
    return this.run('delete', async () => {
      const r = await this.get(hash);
      await this.client.del(rec(hash));
      if (r) await this.client.srem(bySubject(r.identity.subject), hash);
    });
  }

  list(subject?: string): Promise<CliSecretRecord[]> {
    return this.run('list', async () => {
      const subjects = subject === undefined ? await this.client.smembers(SUBJECTS) : [subject];
      const out: CliSecretRecord[] = [];
      for (const s of subjects) {
        const hashes = await this.client.smembers(bySubject(s));
        if (hashes.length === 0) continue;
        const texts = await this.client.mget(hashes.map(rec));
        texts.forEach((t, i) => {
          if (t !== null) out.push(JSON.parse(t) as CliSecretRecord);
          else void this.client.srem(bySubject(s), hashes[i] as string).catch(() => undefined); // expired: drop from the index
        });
      }
      return out.filter((r) => r.expiresAt > this.now()).sort((a, b) => a.createdAt - b.createdAt);
    });
  }
}
