import { createHmac, randomBytes } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import { Client, InvalidCredentialsError, type Entry } from 'ldapts';
import { AuthBackendError, BasicCredentialStrategy, ProxyError, type AuthOutcome, type Identity } from '@registry-proxy/registry-core';
import { escapeDnValue, escapeFilterValue, fillTemplate } from './escape.js';

/**
 * Options, named as in passport-ldapauth's `server` options so existing configurations carry
 * over. Either `searchBase` + `searchFilter` (search, then bind as the entry found) or
 * `bindDnTemplate` (bind straight as `uid={{username}},ou=people,...`).
 */
export interface LdapStrategyOptions {
  readonly url: string;
  /** The service account for searches; without it, searches are anonymous. */
  readonly bindDN?: string | undefined;
  readonly bindCredentials?: string | undefined;
  readonly searchBase?: string | undefined;
  /** With `{{username}}`, escaped per RFC 4515; default `(uid={{username}})`. */
  readonly searchFilter?: string | undefined;
  readonly searchScope?: 'base' | 'one' | 'sub' | undefined;
  /** Bind as this DN instead of searching; `{{username}}` is escaped per RFC 4514. */
  readonly bindDnTemplate?: string | undefined;
  readonly groupSearchBase?: string | undefined;
  /** With `{{dn}}` (the user's DN) and `{{username}}`; default `(member={{dn}})`. */
  readonly groupSearchFilter?: string | undefined;
  readonly groupSearchScope?: 'base' | 'one' | 'sub' | undefined;
  /** The group entries' attribute that names the group; default `cn`. */
  readonly groupNameAttribute?: string | undefined;
  /** The user entry's attribute that becomes the identity's subject; default `uid`. */
  readonly usernameAttribute?: string | undefined;
  readonly starttls?: boolean | undefined;
  readonly tlsOptions?: ConnectionOptions | undefined;
  /** Per operation; default 5000 ms. */
  readonly timeout?: number | undefined;
  readonly connectTimeout?: number | undefined;
  /** Keep successful verifications this long (0: never). Keyed by an HMAC, so no password is kept. */
  readonly cacheSeconds?: number | undefined;
  /** Name in the identity's `method` and in logs; default `ldap`. */
  readonly name?: string | undefined;
  readonly realm?: string | undefined;
}

const POOL = 4;

/**
 * Passport strategy that checks usernames and passwords against an LDAP directory (ldapts):
 * search with a service account, bind as the user, read the groups. A user the directory does
 * not know is "not mine"; a wrong password is a deny; an unreachable or slow directory is an
 * {@link AuthBackendError}, which the token endpoint answers with 503.
 */
export class LdapStrategy extends BasicCredentialStrategy {
  readonly name: string;
  private searchClient: Client | undefined;
  private searchBound: Promise<void> | undefined;
  private readonly idle: Client[] = [];
  private readonly cache = new Map<string, { identity: Identity; until: number }>();
  private readonly cacheKey = randomBytes(32);
  private closed = false;

  constructor(private readonly opts: LdapStrategyOptions) {
    super(opts.realm);
    this.name = opts.name ?? 'ldap';
    if (!/^ldaps?:\/\//i.test(opts.url)) throw new ProxyError('RP_ERR_CONFIG_INVALID', `ldap url must start with ldap:// or ldaps://: ${opts.url}`);
    if (!opts.bindDnTemplate && !opts.searchBase) throw new ProxyError('RP_ERR_CONFIG_INVALID', 'ldap: give searchBase (search, then bind) or bindDnTemplate (direct bind)');
    if ((opts.bindDN === undefined) !== (opts.bindCredentials === undefined)) throw new ProxyError('RP_ERR_CONFIG_INVALID', 'ldap: bindDN and bindCredentials go together');
    for (const [key, t] of [
      ['searchFilter', opts.searchFilter],
      ['groupSearchFilter', opts.groupSearchFilter],
      ['bindDnTemplate', opts.bindDnTemplate],
    ] as const) {
      if (t !== undefined) {
        try {
          fillTemplate(t, { username: 'x', dn: 'x' }, (v) => v);
        } catch (e) {
          throw new ProxyError('RP_ERR_CONFIG_INVALID', `ldap ${key}: ${(e as Error).message}`);
        }
      }
    }
  }

  private newClient(): Client {
    return new Client({
      url: this.opts.url,
      timeout: this.opts.timeout ?? 5000,
      connectTimeout: this.opts.connectTimeout ?? this.opts.timeout ?? 5000,
      ...(this.opts.tlsOptions && /^ldaps:/i.test(this.opts.url) ? { tlsOptions: this.opts.tlsOptions } : {}),
      strictDN: true,
    });
  }

  private async connect(c: Client): Promise<void> {
    if (this.opts.starttls && !c.isConnected) await c.startTLS(this.opts.tlsOptions ?? {});
  }

  /** The service connection, bound once and kept; rebuilt after a failure. */
  private async searcher(): Promise<Client> {
    if (!this.searchClient) {
      const c = this.newClient();
      this.searchClient = c;
      this.searchBound = (async () => {
        await this.connect(c);
        if (this.opts.bindDN !== undefined) await c.bind(this.opts.bindDN, this.opts.bindCredentials as string);
      })();
    }
    const c = this.searchClient;
    try {
      await this.searchBound;
    } catch (err) {
      this.dropSearcher(c);
      throw err;
    }
    return c;
  }

  private dropSearcher(c: Client): void {
    if (this.searchClient === c) {
      this.searchClient = undefined;
      this.searchBound = undefined;
    }
    void c.unbind().catch(() => undefined);
  }

  async verify(username: string, password: string): Promise<AuthOutcome> {
    // An empty password would be an unauthenticated bind, which many servers accept.
    if (password.length === 0) return { result: 'deny', reason: 'empty password' };
    if (username.length === 0 || username.length > 256) return { result: 'skip' };
    const key = (this.opts.cacheSeconds ?? 0) > 0 ? createHmac('sha256', this.cacheKey).update(username).update('\0').update(password).digest('base64') : undefined;
    if (key) {
      const hit = this.cache.get(key);
      if (hit && hit.until > Date.now()) return { result: 'allow', identity: hit.identity };
      if (hit) this.cache.delete(key);
    }
    let outcome: AuthOutcome;
    try {
      outcome = await this.check(username, password);
    } catch (err) {
      if (err instanceof AuthBackendError) throw err;
      throw new AuthBackendError(`ldap ${this.opts.url}: ${describe(err)}`, { cause: err });
    }
    if (key && outcome.result === 'allow') {
      this.cache.set(key, { identity: outcome.identity, until: Date.now() + (this.opts.cacheSeconds ?? 0) * 1000 });
      if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value as string);
    }
    return outcome;
  }

  private async check(username: string, password: string): Promise<AuthOutcome> {
    let dn: string;
    let entry: Entry | undefined;
    if (this.opts.bindDnTemplate) {
      dn = fillTemplate(this.opts.bindDnTemplate, { username }, escapeDnValue);
    } else {
      const filter = fillTemplate(this.opts.searchFilter ?? '(uid={{username}})', { username }, escapeFilterValue);
      const attr = this.opts.usernameAttribute ?? 'uid';
      const entries = await this.search(this.opts.searchBase as string, filter, this.opts.searchScope ?? 'sub', [attr], 2);
      if (entries.length === 0) return { result: 'skip' };
      if (entries.length > 1) return { result: 'deny', reason: 'the search filter matched more than one entry' };
      entry = entries[0] as Entry;
      dn = entry.dn;
    }
    const ok = await this.bindAs(dn, password);
    if (ok === 'no-such-user') return { result: 'skip' };
    if (!ok) return { result: 'deny', reason: 'wrong password' };
    const subjectValue = entry?.[this.opts.usernameAttribute ?? 'uid'];
    const subject = typeof subjectValue === 'string' ? subjectValue : Array.isArray(subjectValue) && typeof subjectValue[0] === 'string' ? subjectValue[0] : username;
    const groups = this.opts.groupSearchBase ? await this.groups(dn, username) : [];
    return { result: 'allow', identity: { subject, method: this.name, groups, labels: { 'ldap.dn': dn } } };
  }

  /**
   * A refresh grant's re-check, without the password: the entry must still be found as at login
   * (the search filter, so a filter that excludes disabled accounts applies), with its groups
   * as they are now. A user removed from the directory, or from a group, is seen here.
   */
  async lookup(identity: Identity): Promise<AuthOutcome> {
    if (identity.method !== this.name) return { result: 'skip' };
    const dn = identity.labels['ldap.dn'];
    if (dn === undefined) return { result: 'deny', reason: 'identity has no ldap.dn' };
    let outcome: AuthOutcome;
    try {
      outcome = await this.relookup(identity.subject, dn);
    } catch (err) {
      throw new AuthBackendError(`ldap ${this.opts.url}: ${describe(err)}`, { cause: err });
    }
    return outcome;
  }

  private async relookup(subject: string, dn: string): Promise<AuthOutcome> {
    const entries = this.opts.bindDnTemplate
      ? await this.search(dn, '(objectClass=*)', 'base', ['dn'], 2)
      : await this.search(
          this.opts.searchBase as string,
          fillTemplate(this.opts.searchFilter ?? '(uid={{username}})', { username: subject }, escapeFilterValue),
          this.opts.searchScope ?? 'sub',
          ['dn'],
          2,
        );
    if (entries.length !== 1 || entries[0]?.dn.toLowerCase() !== dn.toLowerCase()) return { result: 'deny', reason: `${subject} is no longer in the directory` };
    const groups = this.opts.groupSearchBase ? await this.groups(dn, subject) : [];
    return { result: 'allow', identity: { subject, method: this.name, groups, labels: { 'ldap.dn': dn } } };
  }

  private async search(base: string, filter: string, scope: 'base' | 'one' | 'sub', attributes: string[], sizeLimit: number): Promise<Entry[]> {
    const c = await this.searcher();
    try {
      return (await c.search(base, { scope, filter, attributes, sizeLimit })).searchEntries;
    } catch (err) {
      if ((err as { code?: number }).code === 32) return []; // noSuchObject: the base does not exist
      if ((err as { code?: number }).code === 4) return [{ dn: '' }, { dn: '' }]; // sizeLimitExceeded: ambiguous
      this.dropSearcher(c);
      throw err;
    }
  }

  /** Binds as the user on a pooled connection: true, false (wrong password), or no such user. */
  private async bindAs(dn: string, password: string): Promise<boolean | 'no-such-user'> {
    const c = this.idle.pop() ?? this.newClient();
    let reusable = true;
    try {
      await this.connect(c);
      await c.bind(dn, password);
      return true;
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return false; // 49: wrong password, or (direct bind) no such user
      if ((err as { code?: number }).code === 32) return 'no-such-user';
      reusable = false;
      throw err;
    } finally {
      if (reusable && !this.closed && this.idle.length < POOL) this.idle.push(c);
      else void c.unbind().catch(() => undefined);
    }
  }

  private async groups(dn: string, username: string): Promise<string[]> {
    const filter = fillTemplate(this.opts.groupSearchFilter ?? '(member={{dn}})', { dn, username }, escapeFilterValue);
    const attr = this.opts.groupNameAttribute ?? 'cn';
    const entries = await this.search(this.opts.groupSearchBase as string, filter, this.opts.groupSearchScope ?? 'sub', [attr], 1000);
    const names = entries.flatMap((e) => {
      const v = e[attr];
      return (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string');
    });
    return [...new Set(names)].sort();
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.idle.splice(0), ...(this.searchClient ? [this.searchClient] : [])];
    this.searchClient = undefined;
    await Promise.all(all.map((c) => c.unbind().catch(() => undefined)));
  }
}

function describe(err: unknown): string {
  const e = err as { code?: string | number; message?: string; name?: string };
  if (typeof e.code === 'string') return e.code; // ECONNREFUSED, ETIMEDOUT, ...
  return e.message ?? e.name ?? String(err);
}
