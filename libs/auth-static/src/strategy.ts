import { BasicCredentialStrategy, ProxyError, type AuthOutcome, type Identity } from '@registry-proxy/registry-core';
import { bcryptWorkers } from './bcrypt-worker.js';
import { isBcryptHash, parseHtpasswd } from './htpasswd.js';

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
}

interface Entry {
  readonly hash: string;
  readonly groups: readonly string[];
}

/**
 * Passport strategy over htpasswd files and configured users, bcrypt only. A user it does not
 * know is "not mine" (`pass`), so a chain can ask the next strategy.
 */
export class StaticStrategy extends BasicCredentialStrategy {
  readonly name: string;
  private readonly users: ReadonlyMap<string, Entry>;

  constructor(options: StaticStrategyOptions) {
    super(options.realm);
    this.name = options.name ?? 'htpasswd';
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
  }

  async verify(username: string, password: string): Promise<AuthOutcome> {
    const entry = this.users.get(username);
    if (!entry) return { result: 'skip' };
    if (password.length === 0 || !(await bcryptWorkers.compare(password, entry.hash))) return { result: 'deny', reason: 'wrong password' };
    const identity: Identity = { subject: username, method: this.name, groups: entry.groups, labels: {} };
    return { result: 'allow', identity };
  }
}
