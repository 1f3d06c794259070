import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { RegistryError } from '@registry-proxy/registry-core';
import { sendError } from './respond.js';

/** A host name, IPv4 or bracketed IPv6 address, with an optional port (RFC 9110 `Host`). */
const HOST = /^(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9_.-]{1,253})(?::\d{1,5})?$/;

/** How many Host header lines the request carried (Node keeps only the first in `headers`). */
function hostLines(req: IncomingMessage): number {
  let n = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).length === 4 && (raw[i] as string).toLowerCase() === 'host') n++;
  return n;
}

/**
 * Tokens are bound to the host they were asked on and rules can name hosts, so a request
 * must say exactly once, and clearly, which host it is for: a missing, empty, repeated or
 * malformed Host (RFC 9112 §3.2 requires a 400) would otherwise make a token that no
 * host-scoped rule applies to, or a request that one layer reads as one host and another as
 * another. Behind a trusted reverse proxy, the host it forwards counts (`host`, as Express's
 * req.host and ./call.ts work it out).
 */
export function hasOneHost(req: IncomingMessage, host: string | undefined): boolean {
  return hostLines(req) === 1 && typeof host === 'string' && HOST.test(host);
}

export const HOST_REQUIRED = 'the request needs exactly one valid Host header';

/** {@link hasOneHost} as Express middleware (the token endpoint); a 400 in the registry format otherwise. */
export function requireOneHost(req: Request, res: Response, next: NextFunction): void {
  if (hasOneHost(req, req.host)) return next();
  sendError(req, res, new RegistryError('REQUEST_INVALID', { message: HOST_REQUIRED }), req.method === 'HEAD');
}
