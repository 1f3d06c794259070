import { randomBytes } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { AuthBackendError, type Identity } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import { CONTENT_SECURITY_POLICY, STYLESHEET, accountPage, errorPage, signedOutPage } from './pages.js';
import { LoginError, type LoginProvider, type PendingLogin } from './provider.js';
import { readCookies, type Sealer } from './seal.js';
import type { CliSecrets } from './secrets.js';

export interface LoginRoutesOptions {
  readonly provider: LoginProvider;
  readonly secrets: CliSecrets;
  readonly sealer: Sealer;
  /** The proxy's base URL as the browser sees it (publicUrl, or from the request). */
  readonly base: (req: Request) => string;
  readonly redirectUrl?: string;
  readonly sessionTtlSeconds: number;
  readonly operatorGroups: readonly string[];
  readonly logger: Logger;
}

/**
 * What the session cookie carries: only what the page needs. Not the whole identity: a person
 * in a few hundred groups would make a cookie over the browsers' 4 KB limit, which they drop
 * silently (and every form would then fail as expired).
 */
interface Session {
  readonly sid: string;
  readonly subject: string;
  /** Decided at sign-in from all the groups. */
  readonly operator: boolean;
  /** The first {@link SHOWN_GROUPS} groups, for the page; `moreGroups` counts the rest. */
  readonly groups: readonly string[];
  readonly moreGroups: number;
}

const PENDING = 'rp_login';
const SESSION = 'rp_session';
const PENDING_TTL_MS = 10 * 60 * 1000;
const SHOWN_GROUPS = 20;

/**
 * Browser sign-in for people: `/login` sends them to the OpenID provider (authorization code +
 * PKCE), `/login/callback` checks the answer and shows a personal CLI secret for `docker
 * login`, and the page lists and revokes their secrets. Plain HTML, no scripts, a strict CSP;
 * state and session live in sealed, HttpOnly, Secure cookies; every form carries a CSRF token.
 */
export function loginRouter(o: LoginRoutesOptions): Router {
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 });

  router.use((_req, res, next) => {
    res.locals['route'] = 'login';
    res.set({
      'Content-Security-Policy': CONTENT_SECURITY_POLICY,
      'X-Frame-Options': 'DENY',
      'X-Content-Type-Options': 'nosniff',
      // same-origin: the callback URL (code, state) never reaches another site, and our own form
      // posts still carry a real Origin (under no-referrer, Chromium sends `Origin: null`).
      'Referrer-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    });
    next();
  });

  const cookie = (res: Response, name: string, value: string, maxAgeMs: number, sameSite: 'Lax' | 'Strict') =>
    res.append('Set-Cookie', `${name}=${value}; Path=/login; Max-Age=${Math.max(0, Math.floor(maxAgeMs / 1000))}; HttpOnly; Secure; SameSite=${sameSite}`);
  const redirectUri = (req: Request) => o.redirectUrl ?? `${o.base(req)}/login/callback`;
  const session = (req: Request): Session | undefined => {
    const s = o.sealer.open<Partial<Session>>('session', readCookies(req.headers.cookie).get(SESSION));
    // A cookie sealed by an older version (same cookieKey) has another shape: an undefined
    // subject would list, and let revoke, everyone's secrets. Such a session is no session.
    return s && typeof s.sid === 'string' && typeof s.subject === 'string' && typeof s.operator === 'boolean' && Array.isArray(s.groups) ? (s as Session) : undefined;
  };
  const isOperator = (id: Identity) => id.groups.some((g) => o.operatorGroups.includes(g));
  const sessionFor = (id: Identity): Session => ({
    sid: randomBytes(16).toString('base64url'),
    subject: id.subject,
    operator: isOperator(id),
    groups: id.groups.slice(0, SHOWN_GROUPS),
    moreGroups: Math.max(0, id.groups.length - SHOWN_GROUPS),
  });
  const registryHost = (req: Request) => new URL(o.base(req)).host;

  const page = async (req: Request, res: Response, s: Session, extra: { created?: Awaited<ReturnType<CliSecrets['create']>>; notice?: string } = {}) => {
    const mine = await o.secrets.list(s.subject);
    const others = s.operator ? (await o.secrets.list()).filter((r) => r.identity.subject !== s.subject) : undefined;
    res.type('html').send(
      accountPage({
        subject: s.subject,
        groups: s.groups,
        moreGroups: s.moreGroups,
        registry: registryHost(req),
        csrf: o.sealer.csrf(s.sid),
        secrets: mine,
        ...(others ? { others } : {}),
        ...extra,
      }),
    );
  };

  /** Forms must come from our own page: the session's CSRF token, and our Origin when the browser sends one. */
  const checkForm = (req: Request): Session | undefined => {
    const s = session(req);
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== new URL(o.base(req)).origin) return undefined;
    return s && o.sealer.checkCsrf(s.sid, (req.body as Record<string, unknown> | undefined)?.['csrf']) ? s : undefined;
  };

  const wrap = (h: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) => {
    h(req, res).catch((err: unknown) => {
      if (res.headersSent) return next(err);
      if (err instanceof LoginError) {
        o.logger.warn({ audit: 'login', outcome: 'refused', reason: err.message }, 'sign-in refused');
        res.status(400).type('html').send(errorPage(err.message));
      } else if (err instanceof AuthBackendError) {
        o.logger.warn({ err: { message: err.message } }, 'identity provider unavailable');
        res.status(503).set('Retry-After', '10').type('html').send(errorPage('The identity provider cannot be reached right now. Try again in a moment.'));
      } else {
        o.logger.error({ err }, 'sign-in failed');
        res.status(500).type('html').send(errorPage('Something went wrong on our side.'));
      }
    });
  };

  router.get('/style.css', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=3600').type('css').send(STYLESHEET);
  });

  router.get(
    '/',
    wrap(async (req, res) => {
      const s = session(req);
      if (s && req.query['new'] === undefined) return page(req, res, s);
      const { url, pending } = await o.provider.start(redirectUri(req));
      cookie(res, PENDING, o.sealer.seal('pending', pending, Date.now() + PENDING_TTL_MS), PENDING_TTL_MS, 'Lax');
      res.redirect(302, url);
    }),
  );

  router.get(
    '/callback',
    wrap(async (req, res) => {
      const pending = o.sealer.open<PendingLogin>('pending', readCookies(req.headers.cookie).get(PENDING));
      // One use only: the cookie goes whatever happens next, so a replayed callback finds nothing.
      cookie(res, PENDING, '', 0, 'Lax');
      if (!pending) throw new LoginError('No sign-in is in progress in this browser: it expired, or this page was already used. Start again.');
      const q = req.originalUrl.indexOf('?');
      const signed = await o.provider.finish(new URL(`http://callback/${q < 0 ? '' : req.originalUrl.slice(q)}`), redirectUri(req), pending);
      const s = sessionFor(signed.identity);
      cookie(res, SESSION, o.sealer.seal('session', s, Date.now() + o.sessionTtlSeconds * 1000), o.sessionTtlSeconds * 1000, 'Strict');
      const created = await o.secrets.create(signed.identity, signed.refreshToken);
      o.logger.info({ audit: 'login', outcome: 'signed-in', subject: s.subject, groups: signed.identity.groups, secret_id: created.record.id }, 'signed in; CLI secret issued');
      res.locals['subject'] = s.subject;
      await page(req, res, s, { created });
    }),
  );

  router.post(
    '/secrets/:id/revoke',
    form,
    wrap(async (req, res) => {
      const s = checkForm(req);
      if (!s) throw new LoginError('This form has expired or did not come from this page. Open the sign-in page again.');
      const id = String(req.params['id']);
      const done = await o.secrets.revoke(id, s.subject, s.operator);
      o.logger.info({ audit: 'login', outcome: done ? 'revoked' : 'revoke-unknown', subject: s.subject, secret_id: id.slice(0, 32) }, 'CLI secret revocation');
      await page(req, res, s, { notice: done ? `Secret ${id} revoked.` : `No secret ${id} to revoke.` });
    }),
  );

  router.post(
    '/logout',
    form,
    wrap(async (req, res) => {
      if (!checkForm(req)) throw new LoginError('This form has expired or did not come from this page.');
      cookie(res, SESSION, '', 0, 'Strict');
      res.type('html').send(signedOutPage());
    }),
  );

  // A form body the parser refuses (too large, too many fields, bad encoding): the page's own
  // error, not the registry's JSON.
  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    const status = (err as { status?: unknown }).status;
    if (res.headersSent || typeof status !== 'number' || status < 400 || status >= 500) return next(err);
    res.status(status).type('html').send(errorPage('This form could not be read. Open the sign-in page again.'));
  });
  return router;
}
