import { createHash } from 'node:crypto';
import { ProxyError } from './codes.js';

/** Credentials for an upstream registry. */
export type UpstreamCredentials =
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'basic'; readonly username: string; readonly password: string }
  /** A bearer token sent as it is (for registries that take one directly). */
  | { readonly kind: 'bearer'; readonly token: string };

/** What a provider is asked for. */
export interface CredentialRequest {
  /** The upstream registry host (with port). */
  readonly registry: string;
}

/**
 * Produces upstream credentials. Resolves with credentials or anonymity; rejects with a
 * {@link CredentialError} when it should have credentials but cannot get them.
 */
export interface UpstreamCredentialProvider {
  credentials(request: CredentialRequest): Promise<UpstreamCredentials>;
  /**
   * The upstream refused the credentials (401/403): forget any cached ones. The upstream client
   * then asks again and retries the request once.
   */
  invalidate?(request: CredentialRequest): void;
}

/** A provider failed; carries the provider's name, never the secret. */
export class CredentialError extends ProxyError {
  /** True when the upstream (or its token realm) refused the credentials, as opposed to not getting any. */
  readonly refused: boolean;

  constructor(provider: string, message: string, options?: { cause?: unknown; refused?: boolean }) {
    super('RP_ERR_UPSTREAM_CREDENTIALS', `${provider}: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.refused = options?.refused ?? false;
  }
}

export const ANONYMOUS_CREDENTIALS: UpstreamCredentials = Object.freeze({ kind: 'anonymous' });

/** Always anonymous. */
export const anonymousProvider: UpstreamCredentialProvider = { credentials: async () => ANONYMOUS_CREDENTIALS };

/** Fixed credentials from configuration. */
export function staticProvider(creds: UpstreamCredentials): UpstreamCredentialProvider {
  const frozen = Object.freeze({ ...creds });
  return { credentials: async () => frozen };
}

/**
 * Tries providers in order; the first non-anonymous answer wins. A provider that fails does not
 * stop the chain, but when no later provider has credentials the first failure is reported
 * rather than silently falling back to anonymous.
 */
export function chainProvider(providers: readonly UpstreamCredentialProvider[]): UpstreamCredentialProvider {
  return {
    invalidate(request) {
      for (const p of providers) p.invalidate?.(request);
    },
    async credentials(request) {
      let firstError: unknown;
      for (const p of providers) {
        try {
          const c = await p.credentials(request);
          if (c.kind !== 'anonymous') return c;
        } catch (err) {
          firstError ??= err;
        }
      }
      if (firstError !== undefined) throw firstError;
      return ANONYMOUS_CREDENTIALS;
    },
  };
}

const keys = new WeakMap<UpstreamCredentials, string>();

/** A stable, non-reversible key for credentials, for cache keys and logs: never the secret itself. */
export function credentialKey(creds: UpstreamCredentials): string {
  if (creds.kind === 'anonymous') return 'anonymous';
  const known = keys.get(creds);
  if (known !== undefined) return known;
  const material = creds.kind === 'basic' ? `basic\u0000${creds.username}\u0000${creds.password}` : `bearer\u0000${creds.token}`;
  const key = `${creds.kind}:${createHash('sha256').update(material).digest('base64url').slice(0, 22)}`;
  keys.set(creds, key); // providers hand out the same object until the credentials change
  return key;
}
