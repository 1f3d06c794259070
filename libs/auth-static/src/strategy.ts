import { randomBytes } from 'node:crypto';
import { BasicCredentialStrategy, ProxyError, type AuthOutcome, type Identity } from '@registry-proxy/registry-core';
import { bcryptWorkers, type BcryptWorkers } from './bcrypt-worker.js';
import { isBcryptHash, parseHtpasswd } from './htpasswd.js';
import { SuccessCache } from './success-cache.js';

/** A user listed in configuration. */
export interface StaticUser {
  readonly username: string;
  /** A bcrypt hash (`htpasswd -nbB user pass`). */
  readonly passwordHash: string;
  readonly groups?: readonly string[];
}

/** Options of {@link StaticStrategy}. */
export interface StaticStrategyOptions {
  /** Contents of htpasswd files, by a name used in error messages. */
  readonly htpasswd?: ReadonlyArray<{ readonly source: string; readonly text: string }>;
  readonly users?: readonly StaticUser[];
  /** Groups of htpasswd users: group -> usernames (configured users carry their own groups). */
  readonly groups?: Readonly<Record<string, readonly string[]>>;
  /** Name in the Identity's `method` and in logs; `htpasswd` by default. */
  readonly name?: string;
  readonly realm?: string;
  /** The bcrypt worker pool (and its queue bound); the process-wide one by default. */
  readonly workers?: BcryptWorkers;
  /**
   * Keep successful verifications this long (HMAC-keyed, see {@link SuccessCache}); 0: never.
   * The cache belongs to this instance: a reloaded user list gets a new, empty one.
   */
  readonly cacheSeconds?: number;
}

interface Entry {
  readonly hash: string;
  readonly groups: readonly string[];
}

const B64 = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A well-formed bcrypt hash of `cost` with a random salt and digest: checking it costs a real compare, and no password matches it. */
function decoyHash(cost: number): string {
  const chars = [...randomBytes(53)].map((b) => B64[b % 64]).join('');
  return `$2b$${String(cost).padStart(2, '0')}$${chars}`;
}

/**
 * Passport strategy over htpasswd files and configured users, bcrypt only. A user it does not
 * know is "not mine" (`pass`), so a chain can ask the next strategy.
 */
export class StaticStrategy extends BasicCredentialStrategy {
  readonly name: string;
  private readonly users: ReadonlyMap<string, Entry>;
  private readonly workers: BcryptWorkers;
  private readonly cache: SuccessCache<Identity>;
  /** Checks in flight by credential: a herd of nodes logging in at once costs one compare. */
  private readonly inflight = new Map<string, Promise<boolean>>();
  private readonly decoy_: string;

  constructor(options: StaticStrategyOptions) {
    super(options.realm);
    this.name = options.name ?? 'htpasswd';
    this.workers = options.workers ?? bcryptWorkers;
    this.cache = new SuccessCache((options.cacheSeconds ?? 0) * 1000);
    const groupsOf = new Map<string, string[]>();
    for (const [group, members] of Object.entries(options.groups ?? {})) {
      for (const m of members) groupsOf.set(m, [...(groupsOf.get(m) ?? []), group]);
    }
    const users = new Map<string, Entry>();
    const add = (username: string, hash: string, groups: readonly string[], source: string) => {
      if (users.has(username)) throw new ProxyError('RP_ERR_HTPASSWD_INVALID', `${source}: user ${JSON.stringify(username)} defined twice`);
      users.set(username, Object.freeze({ hash, groups: Object.freeze([...new Set([...groups, ...(groupsOf.get(username) ?? [])])]) }));
    };
    for (const file of options.htpasswd ?? []) {
      for (const [u, h] of parseHtpasswd(file.text, file.source)) add(u, h, [], file.source);
    }
    for (const [i, u] of (options.users ?? []).entries()) {
      if (!isBcryptHash(u.passwordHash)) {
        throw new ProxyError('RP_ERR_HTPASSWD_INVALID', `users[${i}] (${JSON.stringify(u.username)}): passwordHash must be a bcrypt hash`);
      }
      add(u.username, u.passwordHash, u.groups ?? [], `users[${i}]`);
    }
    this.users = users;
    // The decoy costs what the dearest real hash costs: an unknown name is never the fast answer.
    const costs = [...users.values()].map((e) => Number(e.hash.slice(4, 6)));
    this.decoy_ = decoyHash(costs.length > 0 ? Math.max(...costs) : 10);
  }

  private identityOf(username: string, entry: Entry): Identity {
    return { subject: username, method: this.name, groups: entry.groups, labels: {} };
  }

  async verify(username: string, password: string): Promise<AuthOutcome> {
    const entry = this.users.get(username);
    if (!entry) return { result: 'skip' };
    if (password.length === 0) return { result: 'deny', reason: 'empty password' };
    const key = this.cache.keyOf(username, password);
    const hit = this.cache.get(key);
    if (hit) return { result: 'allow', identity: hit };
    let check = this.inflight.get(key);
    if (!check) {
      check = this.workers.compare(password, entry.hash, username).finally(() => this.inflight.delete(key));
      this.inflight.set(key, check);
    }
    if (!(await check)) return { result: 'deny', reason: 'wrong password' };
    const identity = this.identityOf(username, entry);
    this.cache.set(key, identity);
    return { result: 'allow', identity };
  }

  async decoy(username: string, password: string): Promise<void> {
    await this.workers.compare(password, this.decoy_, username);
  }

  /** A refresh grant's re-check: the user must still be listed; groups as they are now. */
  async lookup(identity: Identity): Promise<AuthOutcome> {
    if (identity.method !== this.name) return { result: 'skip' };
    const entry = this.users.get(identity.subject);
    if (!entry) return { result: 'deny', reason: `user ${identity.subject} is no longer listed` };
    return { result: 'allow', identity: this.identityOf(identity.subject, entry) };
  }
}
