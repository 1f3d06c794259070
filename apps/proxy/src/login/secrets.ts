import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuthOutcome, CredentialVerifier, Identity } from '@registry-proxy/registry-core';

/** The prefix of every CLI secret: lets secret scanners and the verifier recognise one cheaply. */
export const CLI_SECRET_PREFIX = 'rpcli_';

/** One CLI secret as stored: never the secret itself, only its SHA-256. */
export interface CliSecretRecord {
  /** A short public id, shown in the page and used to revoke. */
  readonly id: string;
  readonly hash: string;
  readonly identity: Identity;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** When the identity was last confirmed with the identity provider (epoch ms). */
  readonly validatedAt: number;
  /** The identity provider's refresh token, used to re-check the person's groups; never logged. */
  readonly upstreamRefreshToken?: string;
}

/**
 * Where CLI secret records live. The memory store is the default; a shared store (Redis) lets
 * every replica accept the secrets and see the revocations. Keys: the record's hash.
 */
export interface CliSecretStore {
  put(record: CliSecretRecord): Promise<void>;
  /**
   * Overwrites the record with the same hash only if it is still there (Redis: SET XX), in one
   * step: a revocation that lands while a secret is revalidated must win. False when it was gone.
   */
  replace(record: CliSecretRecord): Promise<boolean>;
  get(hash: string): Promise<CliSecretRecord | undefined>;
  delete(hash: string): Promise<void>;
  /** Every record of a subject (or all, for operators), expired ones left out. */
  list(subject?: string): Promise<CliSecretRecord[]>;
}

/** In-process store: records go with the process (and a restart revokes every secret). */
export class MemoryCliSecretStore implements CliSecretStore {
  private readonly records = new Map<string, CliSecretRecord>();
  constructor(private readonly now: () => number = Date.now) {}

  async put(record: CliSecretRecord): Promise<void> {
    this.records.set(record.hash, record);
  }
  async replace(record: CliSecretRecord): Promise<boolean> {
    if (!this.records.has(record.hash)) return false;
    this.records.set(record.hash, record);
    return true;
  }
  async get(hash: string): Promise<CliSecretRecord | undefined> {
    const r = this.records.get(hash);
    if (r && r.expiresAt <= this.now()) {
      this.records.delete(hash);
      return undefined;
    }
    return r;
  }
  async delete(hash: string): Promise<void> {
    this.records.delete(hash);
  }
  async list(subject?: string): Promise<CliSecretRecord[]> {
    const now = this.now();
    const out: CliSecretRecord[] = [];
    for (const [hash, r] of this.records) {
      if (r.expiresAt <= now) this.records.delete(hash);
      else if (subject === undefined || r.identity.subject === subject) out.push(r);
    }
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }
}

/** Re-checks a person with the identity provider: the fresh identity, or undefined when they are gone. */
export type Revalidate = (record: CliSecretRecord) => Promise<{ identity: Identity; upstreamRefreshToken?: string } | undefined>;

export interface CliSecretsOptions {
  readonly store: CliSecretStore;
  readonly ttlSeconds: number;
  /** After this long, the next use re-checks the person with the identity provider. */
  readonly revalidateAfterSeconds: number;
  readonly revalidate: Revalidate;
  readonly maxPerSubject: number;
  readonly now?: () => number;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
/** A secret looks like `rpcli_` + 43 base64url characters (32 random bytes). */
const SHAPE = /^rpcli_[A-Za-z0-9_-]{43}$/;

/**
 * Personal CLI secrets for `docker login`, handed out after a browser sign-in. A secret is a
 * password the token endpoint accepts for its owner's username only. Only its SHA-256 is kept
 * (it has 256 bits of entropy, so a fast hash is enough; no salt or bcrypt needed).
 */
export class CliSecrets implements CredentialVerifier {
  readonly name = 'cli-secret';
  private readonly now: () => number;
  /** Revalidations under way, by hash: concurrent uses share one, so a rotating refresh token is spent once. */
  private readonly revalidating = new Map<string, Promise<AuthOutcome>>();

  constructor(private readonly opts: CliSecretsOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Makes a new secret for `identity`; the plain secret is returned once and never stored. */
  async create(identity: Identity, upstreamRefreshToken?: string): Promise<{ secret: string; record: CliSecretRecord }> {
    const existing = await this.opts.store.list(identity.subject);
    // Oldest first: beyond the limit the oldest secrets go, so repeated sign-ins cannot grow the store.
    for (const old of existing.slice(0, Math.max(0, existing.length - this.opts.maxPerSubject + 1))) await this.opts.store.delete(old.hash);
    const secret = CLI_SECRET_PREFIX + randomBytes(32).toString('base64url');
    const now = this.now();
    const record: CliSecretRecord = {
      id: randomBytes(6).toString('base64url'),
      hash: sha256(secret),
      identity,
      createdAt: now,
      expiresAt: now + this.opts.ttlSeconds * 1000,
      validatedAt: now,
      ...(upstreamRefreshToken !== undefined ? { upstreamRefreshToken } : {}),
    };
    await this.opts.store.put(record);
    return { secret, record };
  }

  list(subject?: string): Promise<CliSecretRecord[]> {
    return this.opts.store.list(subject);
  }

  /** Revokes secret `id`; only its owner may, unless `asOperator`. True when something was revoked. */
  async revoke(id: string, subject: string, asOperator = false): Promise<boolean> {
    const found = (await this.opts.store.list(asOperator ? undefined : subject)).find((r) => r.id === id);
    if (!found) return false;
    await this.opts.store.delete(found.hash);
    return true;
  }

  async verify(username: string, password: string): Promise<AuthOutcome> {
    if (!password.startsWith(CLI_SECRET_PREFIX)) return { result: 'skip' };
    if (!SHAPE.test(password)) return { result: 'deny', reason: 'malformed CLI secret' };
    const hash = sha256(password);
    const record = await this.opts.store.get(hash);
    if (!record) return { result: 'deny', reason: 'unknown, expired or revoked CLI secret' };
    // The store looked it up by hash already; the constant-time compare guards a store that matches loosely.
    if (!timingSafeEqual(Buffer.from(record.hash), Buffer.from(hash))) return { result: 'deny', reason: 'unknown CLI secret' };
    if (record.identity.subject !== username) return { result: 'deny', reason: 'CLI secret belongs to another user' };
    if (this.now() - record.validatedAt < this.opts.revalidateAfterSeconds * 1000) return { result: 'allow', identity: this.expiring(record) };
    let running = this.revalidating.get(hash);
    if (!running) {
      running = this.revalidateRecord(record).finally(() => this.revalidating.delete(hash));
      this.revalidating.set(hash, running);
    }
    return running;
  }

  private async revalidateRecord(record: CliSecretRecord): Promise<AuthOutcome> {
    const fresh = await this.opts.revalidate(record);
    if (!fresh || fresh.identity.subject !== record.identity.subject) {
      await this.opts.store.delete(record.hash);
      return { result: 'deny', reason: 'the identity provider no longer confirms this user' };
    }
    const next: CliSecretRecord = {
      ...record,
      identity: fresh.identity,
      validatedAt: this.now(),
      ...(fresh.upstreamRefreshToken !== undefined ? { upstreamRefreshToken: fresh.upstreamRefreshToken } : {}),
    };
    if (!(await this.opts.store.replace(next))) return { result: 'deny', reason: 'CLI secret revoked' };
    return { result: 'allow', identity: this.expiring(next) };
  }

  /**
   * The identity vouches for this one token request only (`expiresAt` now): the token endpoint
   * issues no refresh token for it. docker would keep a refresh token in place of the password,
   * and the proxy's refresh tokens are stateless, so it would outlive a revocation, the secret's
   * expiry check and every revalidation. Without one, docker keeps the secret and presents it
   * again, and each use passes through `verify`.
   */
  private expiring(r: CliSecretRecord): Identity {
    return { ...r.identity, method: 'cli-secret', expiresAt: Math.floor(Math.min(this.now(), r.expiresAt) / 1000) };
  }
}
