/**
 * Stable codes for programmer and configuration errors, one table for the whole project.
 * docs/errors.md documents every code; a test checks that it does and that none is reused.
 */
export const ProxyErrorCodes = {
  RP_ERR_CONFIG_INVALID: 'the configuration does not match the schema; the message names the key',
  RP_ERR_CONFIG_READ: 'a configuration file, or a file or environment variable it names, could not be read',
  RP_ERR_KEY_INVALID: 'a signing or verification key is not a usable PEM key',
  RP_ERR_HTPASSWD_INVALID: 'an htpasswd line is malformed or uses a hash kind other than bcrypt',
  RP_ERR_UPSTREAM_CREDENTIALS: 'an upstream credential provider could not produce credentials',
  RP_ERR_AUTH_BACKEND: 'an authentication backend (directory, identity provider) could not be reached',
  RP_ERR_STATE_UNAVAILABLE: 'the shared state store (Redis) did not answer in time or refused the command',
  RP_ERR_REFERENCE_INVALID: 'an image reference, repository name, tag or digest is not valid',
  RP_ERR_SCOPE_INVALID: 'a token scope does not follow the distribution scope grammar',
} as const;

export type ProxyErrorCode = keyof typeof ProxyErrorCodes;

/** An error with a stable `RP_ERR_*` code, for configuration and programming mistakes. */
export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  constructor(code: ProxyErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'ProxyError';
    this.code = code;
  }
}
