import express, { type Request, type Response, type Router } from 'express';
import { RegistryError, formatScope, parseTokenRequest, registryErrorBody, type Access } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { Runtime } from '../runtime.js';
import { takeOne } from '../state/limiter.js';

const scopes = (list: readonly Access[]) => list.map(formatScope);

/** The token endpoint: GET with Basic credentials, POST with an OAuth2 form. */
export function tokenRouter(runtime: Runtime, metrics: Metrics, logger: Logger): Router {
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '64kb', parameterLimit: 100 });

  const rl = runtime.config.rateLimits;
  // SEAM (issue 14): the token-bucket settings mapped onto shared fixed windows (burst per
  // burst/perSecond seconds) so the limits hold across replicas; the token endpoint's own
  // limiter rewrite (issue 11) replaces these two lines with its factory on runtime.state.limiters.
  const window = (b: { burst: number; perSecond: number }) => Math.max(1, Math.ceil(b.burst / b.perSecond));
  const perClient = runtime.state.limiters({ keyPrefix: 'token-client', points: rl.perClient.burst, durationSeconds: window(rl.perClient) });
  const perAccount = runtime.state.limiters({ keyPrefix: 'token-account', points: rl.perAccount.burst, durationSeconds: window(rl.perAccount) });
  const limited = (res: Response, retryAfter: number, what: string, who: Record<string, unknown>) => {
    metrics.tokens.inc({ outcome: 'limited' });
    logger.warn({ audit: 'token', outcome: 'limited', limit: what, ...who }, 'token request rate-limited');
    const err = new RegistryError('TOOMANYREQUESTS', { message: `too many token requests from this ${what}`, headers: { 'Retry-After': String(retryAfter) } });
    res.status(err.status).set(err.headers).type('application/json').send(registryErrorBody(err));
  };

  const handle = async (req: Request, res: Response) => {
    res.locals['route'] = 'token';
    const client = req.ip ?? 'unknown';
    const byClient = await takeOne(perClient, client, logger);
    if (!byClient.ok) return limited(res, byClient.retryAfter, 'client', { client });
    let parsed;
    try {
      parsed = parseTokenRequest({
        method: req.method,
        query: new URL(req.originalUrl, 'http://x').searchParams,
        form: req.method === 'POST' ? new URLSearchParams((req.body ?? {}) as Record<string, string>) : undefined,
        authorization: req.headers.authorization,
      });
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      metrics.tokens.inc({ outcome: 'invalid' });
      res.status(err.status).set(err.headers).type('application/json').send(registryErrorBody(err));
      return;
    }
    if (parsed.grant === 'password') {
      const byAccount = await takeOne(perAccount, parsed.username, logger);
      if (!byAccount.ok) return limited(res, byAccount.retryAfter, 'account', { client, subject: parsed.username });
    }
    const decision = await runtime.tokenEndpoint.handle(parsed, req.host || undefined);
    metrics.tokens.inc({ outcome: decision.outcome });
    const who = decision.identity ?? (parsed.grant === 'password' ? { subject: parsed.username, method: 'unknown' } : undefined);
    // The audit line: who, how, what was asked and granted, the result. Never the secret.
    logger.info(
      {
        audit: 'token',
        grant: parsed.grant,
        form: parsed.form,
        subject: who?.subject,
        method: who?.method,
        client: req.ip,
        requested: scopes(decision.requested),
        granted: scopes(decision.granted),
        outcome: decision.outcome,
        reason: decision.reason,
      },
      'token request',
    );
    res.locals['subject'] = who?.subject;
    res.status(decision.status).set(decision.headers).type('application/json').send(decision.body);
  };

  router.get('/', handle);
  router.post('/', form, handle);
  return router;
}
