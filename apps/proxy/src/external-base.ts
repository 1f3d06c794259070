import type { Request } from 'express';
import type { Runtime } from './runtime.js';

/** The proxy's own base URL as the client sees it: publicUrl, or the request's scheme and Host (X-Forwarded-* only from trusted proxies). */
export function externalBase(runtime: Runtime, req: Request): string {
  return runtime.config.publicUrl ?? `${req.protocol}://${req.host || 'localhost'}`;
}
