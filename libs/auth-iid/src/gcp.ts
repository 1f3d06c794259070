import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { AuthBackendError, ProxyError, type AuthOutcome, type Identity } from '@registry-proxy/registry-core';

export interface GcpIidVerifierOptions {
  /** The audience the nodes ask their metadata server for: this registry's URL. */
  readonly audience: string;
  readonly projects?: readonly string[] | undefined;
  readonly zones?: readonly string[] | undefined;
  /** Instance names or ids. */
  readonly instances?: readonly string[] | undefined;
  /** Google's signing keys; default `https://www.googleapis.com/oauth2/v3/certs`. */
  readonly jwksUrl?: string | undefined;
  readonly issuers?: readonly string[] | undefined;
  readonly clockToleranceSeconds?: number | undefined;
  readonly timeoutMs?: number | undefined;
}

interface ComputeEngine {
  project_id?: unknown;
  zone?: unknown;
  instance_id?: unknown;
  instance_name?: unknown;
}

/**
 * Verifies GCP instance identity tokens (the metadata server's `identity?audience=...&format=full`
 * JWT): Google's signature, the audience, expiry, and allow-lists on project, zone and instance.
 * Such a token can be replayed by whoever sees it until it expires (one hour): the audience
 * limits it to this registry.
 */
export class GcpIidVerifier {
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;

  constructor(private readonly opts: GcpIidVerifierOptions) {
    if (!opts.audience) throw new ProxyError('RP_ERR_CONFIG_INVALID', 'gcp: audience is required');
    this.jwks = createRemoteJWKSet(new URL(opts.jwksUrl ?? 'https://www.googleapis.com/oauth2/v3/certs'), { timeoutDuration: opts.timeoutMs ?? 5000 });
  }

  /** Re-applies the allow-lists to an identity this verifier established (a refresh grant). */
  recheck(identity: Identity): AuthOutcome {
    const l = identity.labels;
    const allowed = (list: readonly string[] | undefined, ...v: Array<string | undefined>) => list === undefined || list.length === 0 || v.some((x) => x !== undefined && list.includes(x));
    if (!allowed(this.opts.projects, l['gcp.project']) || !allowed(this.opts.zones, l['gcp.zone']) || !allowed(this.opts.instances, l['gcp.instanceName'], l['gcp.instanceId'])) {
      return { result: 'deny', reason: `instance ${l['gcp.instanceName'] ?? '?'} is no longer allowed` };
    }
    return { result: 'allow', identity };
  }

  async verify(token: string, method: string): Promise<AuthOutcome> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.jwks, {
        audience: this.opts.audience,
        issuer: [...(this.opts.issuers ?? ['https://accounts.google.com', 'accounts.google.com'])],
        algorithms: ['RS256'],
        clockTolerance: this.opts.clockToleranceSeconds ?? 5,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWKSTimeout || (err instanceof TypeError && /fetch/i.test(err.message)))
        throw new AuthBackendError(`gcp: Google's keys unavailable: ${(err as Error).message}`, { cause: err });
      if (err instanceof joseErrors.JOSEError) return { result: 'deny', reason: `token rejected: ${err.code}${err instanceof joseErrors.JWTClaimValidationFailed ? ` (${err.claim})` : ''}` };
      throw new AuthBackendError(`gcp: ${(err as Error).message}`, { cause: err });
    }
    const ce = ((payload['google'] as { compute_engine?: ComputeEngine } | undefined)?.compute_engine ?? {}) as ComputeEngine;
    const { project_id: project, zone, instance_id: id, instance_name: name } = ce;
    if (typeof project !== 'string' || typeof zone !== 'string' || typeof id !== 'string' || typeof name !== 'string') {
      return { result: 'deny', reason: 'token has no google.compute_engine claims (ask with format=full)' };
    }
    const allowed = (list: readonly string[] | undefined, ...v: string[]) => list === undefined || list.length === 0 || v.some((x) => list.includes(x));
    if (!allowed(this.opts.projects, project)) return { result: 'deny', reason: `project ${project} not allowed` };
    if (!allowed(this.opts.zones, zone)) return { result: 'deny', reason: `zone ${zone} not allowed` };
    if (!allowed(this.opts.instances, name, id)) return { result: 'deny', reason: `instance ${name} not allowed` };
    return {
      result: 'allow',
      identity: {
        subject: `gcp/${project}/${name}`,
        method,
        groups: [],
        labels: { 'gcp.project': project, 'gcp.zone': zone, 'gcp.instanceId': id, 'gcp.instanceName': name },
        ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp } : {}),
      },
    };
  }
}
