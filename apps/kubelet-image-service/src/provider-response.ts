import { ProxyError } from '@registry-proxy/registry-core';
import type { Config } from './config.js';
import { CACHE_DURATION, CredentialRules } from './credentials.js';

export const PROVIDER_API = 'credentialprovider.kubelet.k8s.io/v1';

/** The CredentialProviderResponse for a request, from the configured rules. */
export async function answer(config: Config, requestJson: string): Promise<Record<string, unknown>> {
  let req: { apiVersion?: unknown; kind?: unknown; image?: unknown };
  try {
    req = JSON.parse(requestJson) as typeof req;
  } catch {
    throw new ProxyError('RP_ERR_CONFIG_INVALID', 'stdin is not a CredentialProviderRequest (not JSON)');
  }
  if (req.kind !== 'CredentialProviderRequest' || typeof req.image !== 'string' || req.image === '') throw new ProxyError('RP_ERR_CONFIG_INVALID', 'stdin is not a CredentialProviderRequest (kind, image)');
  if (req.apiVersion !== PROVIDER_API && req.apiVersion !== 'credentialprovider.kubelet.k8s.io/v1beta1') throw new ProxyError('RP_ERR_CONFIG_INVALID', `unsupported apiVersion ${String(req.apiVersion)}`);
  const base = { apiVersion: req.apiVersion, kind: 'CredentialProviderResponse' };
  const registry = CredentialRules.registryOf(req.image);
  const rules = new CredentialRules(config);
  const rule = rules.match(registry);
  if (!rule) return { ...base, cacheKeyType: 'Registry', cacheDuration: '5m', auth: {} };
  const d = await rules.decide(req.image, undefined);
  const auth = d.auth?.username ? { [registry]: { username: d.auth.username, password: d.auth.password } } : {};
  // Credentials are per registry host (not per image): kubelet caches them for that host.
  return { ...base, cacheKeyType: 'Registry', cacheDuration: CACHE_DURATION[rule.type], auth };
}
