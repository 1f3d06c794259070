import { ProxyError } from '@registry-proxy/registry-core';

const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

/**
 * Parses an htpasswd file into username -> bcrypt hash. Any other hash kind (MD5 `$apr1$`,
 * `{SHA}`, crypt, plain text) is refused, naming the line and user but never the hash.
 */
export function parseHtpasswd(text: string, source = 'htpasswd'): Map<string, string> {
  const users = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ProxyError('RP_ERR_HTPASSWD_INVALID', `${source} line ${i + 1}: expected user:hash`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!BCRYPT.test(hash)) {
      throw new ProxyError('RP_ERR_HTPASSWD_INVALID', `${source} line ${i + 1} (user ${JSON.stringify(user)}): only bcrypt hashes are accepted (htpasswd -B)`);
    }
    if (users.has(user)) throw new ProxyError('RP_ERR_HTPASSWD_INVALID', `${source} line ${i + 1}: user ${JSON.stringify(user)} listed twice`);
    users.set(user, hash);
  }
  return users;
}

/** True for a bcrypt hash in modular crypt format. */
export function isBcryptHash(hash: string): boolean {
  return BCRYPT.test(hash);
}
