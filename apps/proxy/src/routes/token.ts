import { RegistryError, formatScope, parseTokenRequest, type Access, type TokenRequest } from '@registry-proxy/registry-core';
import type { Logger } from 'pino';
import type { Call } from '../call.js';
import { sendContinue } from '../expect.js';
import { PlainLines } from '../logging.js';
import { clientKey, createTokenLimiters, FailureGate, take, type TokenLimiters } from '../limits.js';
import type { Metrics } from '../metrics.js';
import { clientGone, sendError, sendJson } from '../respond.js';
import type { Runtime } from '../runtime.js';
import { readForm } from './token-form.js';

const scopes = (list: readonly Access[]) => list.map(formatScope);

/**
 * The token endpoint (distribution's token.md and oauth.md): GET with Basic credentials, POST
 * with an OAuth2 form. It runs outside Express, as /v2 does (see ../app.ts): every `docker
 * pull` starts with a token, and Express's per-request work was a large share of its cost.
 * It answers every failure itself, in the registry's error format, and never rejects.
 */
export function tokenHandler(runtime: Runtime, metrics: Metrics, logger: Logger, limits: TokenLimiters = createTokenLimiters(runtime.config.rateLimits, runtime.state.limiters)) {
  const gate = new FailureGate(limits.failures);
  // The audit lines are flat strings and lists of strings: written without the redaction pass (../logging.ts).
  const lines = new PlainLines(logger);
  const limited = (call: Call, retryAfter: number, what: string, who: { client: string; subject?: string }) => {
    metrics.tokens.inc({ outcome: 'limited' });
    lines.warn({ audit: 'token', outcome: 'limited', limit: what, ...who }, 'token request rate-limited');
    const err = new RegistryError('TOOMANYREQUESTS', { message: `too many token requests from this ${what}`, headers: { 'Retry-After': String(retryAfter) } });
    sendError(call.req, call.res, err, call.method === 'HEAD');
  };

  const handle = async (call: Call) => {
    const { req, res, notes } = call;
    const client = call.ip ?? 'unknown';
    const byClient = await take(limits.client, clientKey(client));
    if (byClient !== undefined) return limited(call, byClient, 'client', { client });
    let parsed: TokenRequest;
    try {
      let form: URLSearchParams | undefined;
      if (call.method === 'POST') {
        sendContinue(req, res); // the form is small, and read only here
        form = new URLSearchParams(await readForm(req));
      }
      parsed = parseTokenRequest({ method: call.method, query: new URLSearchParams(call.search), form, authorization: req.headers.authorization });
    } catch (err) {
      if (err instanceof RegistryError) metrics.tokens.inc({ outcome: 'invalid' });
      throw err;
    }
    // Keyed by the claimed name AND the address: a stranger's guesses lock out only themselves.
    let attempt: Awaited<ReturnType<FailureGate['enter']>> | undefined;
    if (parsed.grant === 'password') {
      attempt = await gate.enter(FailureGate.accountKey(parsed.username, clientKey(client)), parsed.password);
      if (attempt.wait !== undefined) return limited(call, attempt.wait, 'client for this account', { client, subject: parsed.username });
    }
    let decision: Awaited<ReturnType<Runtime['tokenEndpoint']['handle']>>;
    try {
      decision = await runtime.tokenEndpoint.handle(parsed, call.host || undefined);
    } catch (err) {
      await attempt?.done('other');
      throw err;
    }
    await attempt?.done(decision.outcome === 'issued' || decision.outcome === 'denied' ? decision.outcome : 'other');
    const who = decision.identity ?? (parsed.grant === 'password' ? { subject: parsed.username, method: 'unknown' } : undefined);
    if (decision.outcome === 'issued' && decision.identity && decision.identity.method !== 'anonymous') {
      // Spent only once the identity is verified: unauthenticated traffic cannot exhaust it.
      const wait = await take(limits.identity, `${decision.identity.method}\u0000${decision.identity.subject}`);
      if (wait !== undefined) return limited(call, wait, 'account', { client, subject: decision.identity.subject });
    }
    metrics.tokens.inc({ outcome: decision.outcome });
    // The audit line: who, how, what was asked and granted, the result. Never the secret.
    lines.info(
      {
        audit: 'token',
        grant: parsed.grant,
        form: parsed.form,
        subject: who?.subject,
        method: who?.method,
        client,
        requested: scopes(decision.requested),
        granted: scopes(decision.granted),
        outcome: decision.outcome,
        reason: decision.reason,
      },
      'token request',
    );
    notes.subject = who?.subject;
    if (decision.error) {
      sendError(req, res, decision.error, call.method === 'HEAD');
      return;
    }
    sendJson(res, decision.status, decision.body, decision.headers);
  };

  return async (call: Call, reqId: string): Promise<void> => {
    const { req, res } = call;
    call.notes.route = 'token';
    try {
      // The endpoint is /token (and /token/); GET (HEAD with it) and POST.
      if ((call.path !== '' && call.path !== '/') || !(call.method === 'GET' || call.method === 'HEAD' || call.method === 'POST')) {
        throw new RegistryError('NAME_UNKNOWN', { message: 'not found' });
      }
      await handle(call);
    } catch (err) {
      if (clientGone(req, res)) return;
      if (err instanceof RegistryError) {
        sendError(req, res, err, call.method === 'HEAD');
        return;
      }
      logger.error({ err, req_id: reqId }, 'unhandled error');
      if (res.headersSent) res.destroy();
      else sendError(req, res, new RegistryError('UNKNOWN'), call.method === 'HEAD');
    }
  };
}
