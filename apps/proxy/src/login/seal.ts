import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Sealed values for cookies and forms: AES-256-GCM with a key derived from the configured
 * cookie key, so a browser can carry state it can neither read nor change. `purpose` is bound
 * into the authenticated data, so a sealed login state cannot be replayed as a session.
 */
export class Sealer {
  private readonly key: Buffer;
  private readonly macKey: Buffer;

  constructor(secret: string | Buffer) {
    this.key = createHash('sha256').update('registry-proxy login seal\0').update(secret).digest();
    this.macKey = createHash('sha256').update('registry-proxy login mac\0').update(secret).digest();
  }

  /** Seals `value` until `expiresAt` (epoch ms). */
  seal(purpose: string, value: unknown, expiresAt: number): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(purpose));
    const body = Buffer.concat([c.update(JSON.stringify({ v: value, exp: expiresAt }), 'utf8'), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url');
  }

  /** The sealed value, or undefined when it was tampered with, sealed for another purpose, or has expired. */
  open<T>(purpose: string, sealed: string | undefined, now = Date.now()): T | undefined {
    if (!sealed || sealed.length > 8192 || !/^[A-Za-z0-9_-]+$/.test(sealed)) return undefined;
    const raw = Buffer.from(sealed, 'base64url');
    if (raw.length < 29) return undefined;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      d.setAAD(Buffer.from(purpose));
      d.setAuthTag(raw.subarray(12, 28));
      const text = Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
      const { v, exp } = JSON.parse(text) as { v: T; exp: number };
      return typeof exp === 'number' && exp > now ? v : undefined;
    } catch {
      return undefined;
    }
  }

  /** A CSRF token tied to one session id. */
  csrf(sessionId: string): string {
    return createHmac('sha256', this.macKey).update(`csrf\0${sessionId}`).digest('base64url');
  }

  checkCsrf(sessionId: string, token: unknown): boolean {
    if (typeof token !== 'string') return false;
    const want = Buffer.from(this.csrf(sessionId));
    const got = Buffer.from(token);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

/** Cookie header parsing: first value of each name wins; malformed pairs are skipped. */
export function readCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name && !out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}
