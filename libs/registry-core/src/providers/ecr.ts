import { CredentialError, type CredentialRequest, type UpstreamCredentialProvider, type UpstreamCredentials } from '../credentials.js';
import type * as EcrSdk from '@aws-sdk/client-ecr';
import { Refreshing } from './refresh.js';

export interface EcrProviderOptions {
  /** A refused credential is fetched anew only when it is older than this. Default 30 s. */
  readonly minRefetchMs?: number;
  /** AWS region; default: from the registry host (`<account>.dkr.ecr.<region>.amazonaws.com`). */
  readonly region?: string;
  /** The registry's account id; default: from the registry host. */
  readonly registryId?: string;
  /** The ECR API endpoint, for VPC endpoints and tests; default: the SDK's. */
  readonly endpoint?: string;
}

const NAME = 'ecr';
const HOST = /^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?::\d+)?$/;

/** What the provider needs of `@aws-sdk/client-ecr`: one call. */
export type GetAuthorizationToken = (input: { region: string; registryId: string | undefined; endpoint: string | undefined }) => Promise<{ token: string; expiresAt: Date | undefined }>;

/** The SDK v3 call, loaded on first use so that registry-core works without the AWS SDK installed. */
const sdkCall: GetAuthorizationToken = async ({ region, registryId, endpoint }) => {
  let sdk: typeof EcrSdk;
  try {
    sdk = await import('@aws-sdk/client-ecr');
  } catch (cause) {
    throw new CredentialError(NAME, 'the ECR provider needs the @aws-sdk/client-ecr package', { cause });
  }
  // The SDK's default credential chain: environment, shared files, SSO, web identity (EKS IRSA,
  // pod identity), ECS and EC2 instance roles.
  const client = new sdk.ECRClient({ region, ...(endpoint ? { endpoint } : {}) });
  try {
    const out = await client.send(new sdk.GetAuthorizationTokenCommand(registryId ? { registryIds: [registryId] } : {}));
    const data = out.authorizationData?.[0];
    if (!data?.authorizationToken) throw new CredentialError(NAME, 'GetAuthorizationToken returned no token');
    return { token: data.authorizationToken, expiresAt: data.expiresAt };
  } finally {
    client.destroy();
  }
};

/**
 * Amazon ECR: a registry password from `GetAuthorizationToken` (AWS SDK v3, default credential
 * chain), kept until half of its 12-hour life has passed. `invalidate` (called by the upstream
 * client when ECR refuses it) drops it, so the next request fetches a new one.
 */
export class EcrProvider implements UpstreamCredentialProvider {
  private readonly perRegistry = new Map<string, Refreshing<UpstreamCredentials>>();

  constructor(
    private readonly opts: EcrProviderOptions = {},
    private readonly call: GetAuthorizationToken = sdkCall,
  ) {}

  credentials(request: CredentialRequest): Promise<UpstreamCredentials> {
    let r = this.perRegistry.get(request.registry);
    if (!r) {
      r = new Refreshing(() => this.fetch(request.registry), { minAgeMs: this.opts.minRefetchMs ?? 30_000 });
      this.perRegistry.set(request.registry, r);
    }
    return r.get();
  }

  invalidate(request: CredentialRequest): void {
    this.perRegistry.get(request.registry)?.invalidate();
  }

  private async fetch(registry: string) {
    const m = HOST.exec(registry.toLowerCase());
    const region = this.opts.region ?? m?.[2];
    if (!region) throw new CredentialError(NAME, `cannot tell the AWS region from ${registry}; configure region`);
    const started = Date.now();
    let out: Awaited<ReturnType<GetAuthorizationToken>>;
    try {
      out = await this.call({ region, registryId: this.opts.registryId ?? m?.[1], endpoint: this.opts.endpoint });
    } catch (err) {
      if (err instanceof CredentialError) throw err;
      // SDK errors name the failing step (no credentials, access denied); they carry no secret.
      const e = err as { name?: string; message?: string };
      throw new CredentialError(NAME, `GetAuthorizationToken failed: ${e.name ?? 'Error'}: ${e.message ?? ''}`.trim(), { cause: err });
    }
    const decoded = Buffer.from(out.token, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new CredentialError(NAME, 'GetAuthorizationToken returned a token that is not base64 of user:password');
    const expiresAt = out.expiresAt?.getTime() ?? started + 12 * 3600_000;
    const creds: UpstreamCredentials = { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    return { value: creds, expiresAt, refreshAt: started + Math.max(0, (expiresAt - started) / 2) };
  }
}
