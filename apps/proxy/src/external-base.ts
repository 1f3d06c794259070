import type { Runtime } from './runtime.js';

/** The proxy's own base URL as the client sees it: publicUrl, or the request's scheme and Host (X-Forwarded-* only from trusted proxies). */
export function externalBase(runtime: Runtime, req: { readonly protocol: string; readonly host: string | undefined }): string {
  return runtime.config.publicUrl ?? `${req.protocol}://${req.host || 'localhost'}`;
}
