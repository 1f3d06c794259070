import { InvalidTokenError, RegistryError, formatChallenge, grants, grantsOn, type VerifiedAccess } from '@registry-proxy/registry-core';
import type { Call } from './call.js';
import { externalBase } from './external-base.js';
import type { Runtime } from './runtime.js';

/**
 * The 401 that tells a client where to get a token for `scope` (distribution's token auth):
 * `error` is `invalid_token` for a token that does not count here, `insufficient_scope` for
 * one that counts but does not grant what the request needs.
 */
function challenge(runtime: Runtime, call: Call, scope: string | undefined, error?: string): RegistryError {
  const value = formatChallenge('Bearer', { realm: `${externalBase(runtime, call)}/token`, service: runtime.config.service, scope, error });
  return new RegistryError('UNAUTHORIZED', { headers: { 'WWW-Authenticate': value } });
}

const BEARER = /^Bearer[ \t]+([A-Za-z0-9._~+/=-]+)[ \t]*$/i;

/**
 * The one access check of every /v2 route: resolves to the caller's verified token, or throws
 * the challenge that tells the client how to get a better one (its headers travel with it).
 *
 * With no `type`, any valid token will do (the base endpoint; a repository no upstream serves,
 * which must not be told apart from one the caller may not see). `registry`/`catalog`/`*`
 * also needs an identity, since the catalog is filtered by what that identity may pull. A
 * `repository` grant counts only on the upstream it was made for (issue 11, defect 6).
 * Positional rather than an options object: this runs on every request.
 */
export async function authorize(runtime: Runtime, call: Call, scope: string | undefined, type?: 'registry' | 'repository', name?: string, action?: string, upstream?: string): Promise<VerifiedAccess> {
  const h = call.req.headers.authorization;
  const m = h === undefined ? null : BEARER.exec(h);
  if (!m) throw challenge(runtime, call, scope, h === undefined ? undefined : 'invalid_token');
  let who: VerifiedAccess;
  try {
    who = await runtime.tokens.verifyAccessToken(m[1] as string);
  } catch (err) {
    if (err instanceof InvalidTokenError) throw challenge(runtime, call, scope, 'invalid_token');
    throw err;
  }
  // A token granted by host-aware rules works only on the host it was issued for; while rules
  // name hosts, a token bound to no host (minted before they did) works nowhere.
  if (who.host === undefined ? runtime.rules.hostAware : who.host !== (call.host || '').toLowerCase().replace(/:\d+$/, '')) throw challenge(runtime, call, scope, 'invalid_token');
  // The subject goes to the request log line even when the grant below falls short.
  call.notes.subject = who.subject;
  if (type === undefined || name === undefined || action === undefined) return who;
  const granted = type === 'repository' ? upstream !== undefined && grantsOn(who.access, name, upstream, action) : grants(who.access, type, name, action) && who.identity !== undefined;
  if (!granted) throw challenge(runtime, call, scope, 'insufficient_scope');
  return who;
}
