import { ProxyError } from '@registry-proxy/registry-core';
import type { Config } from './config.js';
import { CACHE_DURATION, CredentialRules } from './credentials.js';

export const PROVIDER_API = 'credentialprovider.kubelet.k8s.io/v1';

/** What kubelet sends (credentialprovider.kubelet.k8s.io/v1 CredentialProviderRequest). */
interface ProviderRequest {
  apiVersion?: unknown;
  kind?: unknown;
  image?: unknown;
  /** KEP-4412: the pod's service-account token, when the provider config has tokenAttributes. */
  serviceAccountToken?: unknown;
  serviceAccountAnnotations?: unknown;
}

/**
 * How long kubelet may keep credentials that are the pod's token: no longer than the token
 * lives (less a minute, for the pull itself), at most an hour. The token is only read for its
 * `exp` here; the proxy verifies it.
 */
export function tokenCacheDuration(token: string, now = Date.now()): string {
  let exp: unknown;
  try {
    exp = (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown }).exp;
  } catch {
    return '0s';
  }
  if (typeof exp !== 'number') return '0s';
  return `${Math.max(0, Math.min(3600, Math.floor(exp - now / 1000) - 60))}s`;
}

function parseRequest(json: string): ProviderRequest {
  let req: ProviderRequest;
  try {
    req = JSON.parse(json) as ProviderRequest;
  } catch {
    throw new ProxyError('RP_ERR_CONFIG_INVALID', 'stdin is not a CredentialProviderRequest (not JSON)');
  }
  if (typeof req !== 'object' || req === null || req.kind !== 'CredentialProviderRequest' || typeof req.image !== 'string' || req.image === '')
    throw new ProxyError('RP_ERR_CONFIG_INVALID', 'stdin is not a CredentialProviderRequest (kind, image)');
  if (req.apiVersion !== PROVIDER_API && req.apiVersion !== 'credentialprovider.kubelet.k8s.io/v1beta1')
    throw new ProxyError('RP_ERR_CONFIG_INVALID', `unsupported apiVersion ${String(req.apiVersion)}`);
  if (req.serviceAccountToken !== undefined && typeof req.serviceAccountToken !== 'string') throw new ProxyError('RP_ERR_CONFIG_INVALID', 'serviceAccountToken: not a string');
  return req;
}

/** The CredentialProviderResponse for a request, from the configured rules. */
export async function answer(config: Config, requestJson: string): Promise<Record<string, unknown>> {
  const req = parseRequest(requestJson);
  const image = req.image as string;
  const token = typeof req.serviceAccountToken === 'string' && req.serviceAccountToken !== '' ? req.serviceAccountToken : undefined;
  // Kubelet (1.34+) drops a response to a request with a token unless it says how to cache it.
  // "Pod" where the answer is that token (it is only good while the pod's token is); otherwise
  // the answer does not depend on the pod, and "ServiceAccount" lets pods share it.
  const base = { apiVersion: req.apiVersion, kind: 'CredentialProviderResponse', ...(token ? { serviceAccountTokenCacheType: 'ServiceAccount' } : {}) };
  const registry = CredentialRules.registryOf(image);
  const rules = new CredentialRules(config);
  const rule = rules.match(registry);
  // Credentials are per registry host (not per image): kubelet caches them for that host.
  if (!rule) return { ...base, cacheKeyType: 'Registry', cacheDuration: '5m', auth: {} };
  const pod = rule.serviceAccountToken;
  if (pod && token) {
    return { ...base, serviceAccountTokenCacheType: 'Pod', cacheKeyType: 'Registry', cacheDuration: tokenCacheDuration(token), auth: { [registry]: { username: pod.username, password: token } } };
  }
  // No pod token (a static pod, or a kubelet without the feature): the node's credentials only
  // where the rule says so; otherwise the pull goes without, and the proxy's rules decide.
  const d = await rules.decide(image, undefined);
  if (!rule.node || !d.auth) return { ...base, cacheKeyType: 'Registry', cacheDuration: '5m', auth: {} };
  const auth = d.auth?.username ? { [registry]: { username: d.auth.username, password: d.auth.password } } : {};
  return { ...base, cacheKeyType: 'Registry', cacheDuration: CACHE_DURATION[rule.node.type], auth };
}
