import express, { type Request, type Response, type Router } from 'express';
import { RegistryError, formatScope, parseTokenRequest, type Access, type TokenRequest } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import { createTokenLimiters, take, type TokenLimiters } from '../limits.js';
import type { Metrics } from '../metrics.js';
import { sendError } from '../respond.js';
import type { Runtime } from '../runtime.js';

const scopes = (list: readonly Access[]) => list.map(formatScope);

/**
 * The form is kept as text and parsed with URLSearchParams, which keeps repeated fields:
 * express.urlencoded turns `scope=a&scope=b` into an array that URLSearchParams then joined
 * into the one bogus scope "a,b" (issue 11, defect 9).
 */
const formText = express.text({ type: 'application/x-www-form-urlencoded', limit: '64kb' });

/** The token endpoint: GET with Basic credentials, POST with an OAuth2 form. */
export function tokenRouter(runtime: Runtime, metrics: Metrics, logger: Logger, limits: TokenLimiters = createTokenLimiters(runtime.config.rateLimits, runtime.state.limiters)): Router {
  const router = express.Router();

  const limited = (req: Request, res: Response, retryAfter: number, what: string, who: Record<string, unknown>) => {
    metrics.tokens.inc({ outcome: 'limited' });
    logger.warn({ audit: 'token', outcome: 'limited', limit: what, ...who }, 'token request rate-limited');
    const err = new RegistryError('TOOMANYREQUESTS', { message: `too many token requests from this ${what}`, headers: { 'Retry-After': String(retryAfter) } });
    sendError(req, res, err, req.method === 'HEAD');
  };

  const handle = async (req: Request, res: Response) => {
    res.locals['route'] = 'token';
    const client = req.ip ?? 'unknown';
    const byClient = await take(limits.client, client);
    if (byClient !== undefined) return limited(req, res, byClient, 'client', { client });
    let parsed: TokenRequest;
    try {
      parsed = parseTokenRequest({
        method: req.method,
        query: new URL(req.originalUrl, 'http://x').searchParams,
        form: req.method === 'POST' ? new URLSearchParams(typeof req.body === 'string' ? req.body : '') : undefined,
        authorization: req.headers.authorization,
      });
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      metrics.tokens.inc({ outcome: 'invalid' });
      sendError(req, res, err, req.method === 'HEAD');
      return;
    }
    // Keyed by the claimed name AND the address: a stranger's guesses lock out only themselves.
    const claimed = parsed.grant === 'password' ? parsed.username : undefined;
    const failureKey = claimed === undefined ? undefined : `${claimed.slice(0, 256)}\u0000${client}`;
    if (failureKey !== undefined) {
      const wait = await take(limits.failures, failureKey);
      if (wait !== undefined) return limited(req, res, wait, 'client for this account', { client, subject: claimed });
    }
    const decision = await runtime.tokenEndpoint.handle(parsed, req.host || undefined);
    if (failureKey !== undefined && decision.outcome !== 'denied') {
      // Only a refused password stays counted; a success clears the slate for this address.
      await (decision.outcome === 'issued' ? limits.failures.delete(failureKey) : limits.failures.reward(failureKey));
    }
    const who = decision.identity ?? (parsed.grant === 'password' ? { subject: parsed.username, method: 'unknown' } : undefined);
    if (decision.outcome === 'issued' && decision.identity && decision.identity.method !== 'anonymous') {
      // Spent only once the identity is verified: unauthenticated traffic cannot exhaust it.
      const wait = await take(limits.identity, `${decision.identity.method}\u0000${decision.identity.subject}`);
      if (wait !== undefined) return limited(req, res, wait, 'account', { client, subject: decision.identity.subject });
    }
    metrics.tokens.inc({ outcome: decision.outcome });
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
    if (decision.error) sendError(req, res, decision.error, req.method === 'HEAD');
    else res.status(decision.status).set(decision.headers).type('application/json').send(decision.body);
  };

  router.get('/', handle);
  router.post('/', formText, handle);
  return router;
}
