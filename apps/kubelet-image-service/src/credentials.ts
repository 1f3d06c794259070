import { AwsIidProvider, AzureIidProvider, GcpIidProvider } from '@registry-proxy/auth-iid';
import { createCredentialProvider, globToRegExp, parseReference, type UpstreamCredentialProvider } from '@registry-proxy/registry-core';
import type { AuthConfig, CredentialDecision } from '@registry-proxy/cri-image-service';
import type { Config, ProviderConfig } from './config.js';

export function providerFor(p: ProviderConfig, key: string): UpstreamCredentialProvider {
  switch (p.type) {
    case 'aws-iid':
      return new AwsIidProvider({ imdsUrl: p.imdsUrl, nonceFile: p.nonceFile });
    case 'gcp-iid':
      return new GcpIidProvider({ audience: p.audience, metadataUrl: p.metadataUrl });
    case 'azure-iid':
      return new AzureIidProvider({ imdsUrl: p.imdsUrl, nonceFile: p.nonceFile });
    default:
      return createCredentialProvider(p, key);
  }
}

/** How long kubelet may keep credentials of each kind (credential provider responses). */
export const CACHE_DURATION: Record<ProviderConfig['type'], string> = {
  anonymous: '1h',
  static: '1h',
  bearer: '1h',
  'docker-config': '5m',
  exec: '5m',
  'aws-iid': '1h',
  'gcp-iid': '50m',
  // Microsoft does not document how long attested documents live (its examples: 5 s, 6 h).
  'azure-iid': '5m',
  ecr: '6h',
  gcp: '50m',
  // An ACR refresh token lives for hours (its JWT exp); an hour keeps kubelet well inside that.
  acr: '1h',
};

export interface Rule {
  readonly index: number;
  readonly hosts: RegExp[];
  /** Undefined for a rule that only passes pods' service-account tokens on. */
  readonly node: { readonly type: ProviderConfig['type']; readonly provider: UpstreamCredentialProvider } | undefined;
  readonly override: boolean;
  readonly serviceAccountToken: Config['credentials'][number]['serviceAccountToken'];
}

/** Registry host globs -> credential providers, as configured. */
export class CredentialRules {
  private readonly rules: Rule[];

  constructor(config: Config) {
    this.rules = config.credentials.map((r, i) => ({
      index: i,
      hosts: r.hosts.map((h) => globToRegExp(h.toLowerCase())),
      node: r.provider ? { type: r.provider.type, provider: providerFor(r.provider, `credentials.${i}.provider`) } : undefined,
      override: r.override,
      serviceAccountToken: r.serviceAccountToken,
    }));
  }

  /** The registry host of an image reference (`docker.io` for Docker Hub). */
  static registryOf(image: string): string {
    return parseReference(image).registry;
  }

  match(registry: string): Rule | undefined {
    const host = registry.toLowerCase();
    return this.rules.find((r) => r.hosts.some((h) => h.test(host)));
  }

  /** Credentials for a pull: the rule's, unless kubelet sent its own and the rule does not override them. */
  async decide(image: string, fromKubelet: AuthConfig | undefined): Promise<CredentialDecision> {
    let registry: string;
    try {
      registry = CredentialRules.registryOf(image);
    } catch {
      return { auth: fromKubelet, decision: fromKubelet ? 'from kubelet (unparsable image)' : 'none (unparsable image)' };
    }
    const rule = this.match(registry);
    if (!rule) return { auth: fromKubelet, decision: fromKubelet ? 'from kubelet' : 'none' };
    if (fromKubelet && !rule.override) return { auth: fromKubelet, decision: `from kubelet (rule ${rule.index} does not override)` };
    if (!rule.node) return { auth: fromKubelet, decision: `${fromKubelet ? 'from kubelet' : 'none'} (rule ${rule.index} has no node credentials)` };
    // A pull without the pod's identity gets the node's only where the rule falls back to them.
    if (!fromKubelet && rule.serviceAccountToken && !rule.serviceAccountToken.nodeFallback) return { auth: undefined, decision: `none (rule ${rule.index}: pod identity only)` };
    const creds = await rule.node.provider.credentials({ registry });
    const decision = `rule ${rule.index} (${rule.node.type})`;
    if (creds.kind === 'anonymous') return { auth: undefined, decision: `${decision}: anonymous` };
    // server_address stays empty: the credentials are for the image's own registry, and
    // containerd parses a non-empty one as a URL ("host:port" alone fails there).
    if (creds.kind === 'bearer') return { auth: { username: '', password: '', auth: '', serverAddress: '', identityToken: '', registryToken: creds.token }, decision };
    return { auth: { username: creds.username, password: creds.password, auth: '', serverAddress: '', identityToken: '', registryToken: '' }, decision };
  }
}
