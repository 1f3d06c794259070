import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { AuthBackendError, MemoryStateStore, ProxyError, StateUnavailableError, type AuthOutcome, type ClaimResult, type Identity, type StateStore } from '@registry-proxy/registry-core';

/** What an AWS node presents as its password (base64url of this JSON). */
export interface AwsIidCredential {
  /** The instance identity document, as IMDS served it. */
  readonly document: string;
  /** The base64 PKCS#7 SignedData from `/latest/dynamic/instance-identity/rsa2048`. */
  readonly pkcs7: string;
  /** The node's own random nonce, the same on every presentation (see {@link AwsIidVerifier}). */
  readonly nonce: string;
}

export interface AwsIidVerifierOptions {
  /** PEM certificates that sign instance identity documents: AWS's RSA-2048 certificate of each region you accept. */
  readonly certificates: readonly string[];
  readonly accounts?: readonly string[] | undefined;
  readonly regions?: readonly string[] | undefined;
  readonly instanceIds?: readonly string[] | undefined;
  /** Where instance-to-nonce bindings live; share one (Redis) between replicas. Default: this process's memory. */
  readonly store?: StateStore | undefined;
  /** How long a binding lives after the instance last signed in. Default 90 days. */
  readonly bindingTtlSeconds?: number | undefined;
}

interface Doc {
  accountId?: unknown;
  region?: unknown;
  instanceId?: unknown;
  availabilityZone?: unknown;
  imageId?: unknown;
}

export function encodeAwsIidCredential(c: AwsIidCredential): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

function parseCertificate(pem: string, i: number): pkijs.Certificate {
  const b64 = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  const asn = asn1js.fromBER(new Uint8Array(Buffer.from(b64, 'base64')));
  if (asn.offset === -1 || b64.length === 0) throw new ProxyError('RP_ERR_CONFIG_INVALID', `aws certificates.${i}: not a PEM certificate`);
  try {
    return new pkijs.Certificate({ schema: asn.result });
  } catch {
    throw new ProxyError('RP_ERR_CONFIG_INVALID', `aws certificates.${i}: not a PEM certificate`);
  }
}

/**
 * Verifies AWS instance identity documents: the PKCS#7 signature (pkijs) against the
 * configured per-region certificates, then allow-lists on account, region and instance.
 *
 * Replay: anyone who once saw a node's document and signature could present them. Each node
 * therefore adds a random nonce of its own; the first presentation binds the instance to that
 * nonce (trust on first use, as HashiCorp Vault's AWS EC2 method does), and a different nonce
 * for that instance is refused. The bindings live in the state store: with several replicas
 * sharing one (Redis), a document replayed to another replica is refused there too. When the
 * store cannot answer, the check fails closed: the node gets a 503 and tries again.
 */
export class AwsIidVerifier {
  private readonly certs: pkijs.Certificate[];
  private readonly store: StateStore;
  private readonly bindingTtlMs: number;

  constructor(private readonly opts: AwsIidVerifierOptions) {
    if (opts.certificates.length === 0) throw new ProxyError('RP_ERR_CONFIG_INVALID', 'aws: at least one certificate');
    this.certs = opts.certificates.map(parseCertificate);
    this.store = opts.store ?? new MemoryStateStore();
    this.bindingTtlMs = (opts.bindingTtlSeconds ?? 90 * 86_400) * 1000;
  }

  async verify(password: string, method: string): Promise<AuthOutcome> {
    let cred: Partial<AwsIidCredential>;
    try {
      cred = JSON.parse(Buffer.from(password, 'base64url').toString('utf8')) as Partial<AwsIidCredential>;
    } catch {
      return { result: 'deny', reason: 'not an AWS instance identity credential' };
    }
    if (typeof cred.pkcs7 !== 'string' || typeof cred.nonce !== 'string' || typeof cred.document !== 'string') return { result: 'deny', reason: 'not an AWS instance identity credential' };
    if (cred.nonce.length < 16 || cred.nonce.length > 256) return { result: 'deny', reason: 'nonce must be 16 to 256 characters' };
    const signed = await this.signedDocument(cred.pkcs7, cred.document);
    if (signed === undefined) return { result: 'deny', reason: 'signature does not verify with any configured certificate' };
    let doc: Doc;
    try {
      doc = JSON.parse(signed) as Doc;
    } catch {
      return { result: 'deny', reason: 'signed document is not JSON' };
    }
    const { accountId, region, instanceId } = doc;
    if (typeof accountId !== 'string' || typeof region !== 'string' || typeof instanceId !== 'string') return { result: 'deny', reason: 'document lacks accountId, region or instanceId' };
    const allowed = (list: readonly string[] | undefined, v: string) => list === undefined || list.length === 0 || list.includes(v);
    if (!allowed(this.opts.accounts, accountId)) return { result: 'deny', reason: `account ${accountId} not allowed` };
    if (!allowed(this.opts.regions, region)) return { result: 'deny', reason: `region ${region} not allowed` };
    if (!allowed(this.opts.instanceIds, instanceId)) return { result: 'deny', reason: `instance ${instanceId} not allowed` };
    const nonceHash = createHash('sha256').update(cred.nonce).digest('base64');
    let binding: ClaimResult;
    try {
      binding = await this.store.claim(`iid:aws:${accountId}:${instanceId}`, nonceHash, this.bindingTtlMs);
    } catch (err) {
      if (err instanceof StateUnavailableError) throw new AuthBackendError('instance identity replay records unavailable', { cause: err });
      throw err;
    }
    if (!binding.claimed) return { result: 'deny', reason: `instance ${instanceId} is bound to another nonce (a replayed document?)` };
    const labels: Record<string, string> = { 'aws.accountId': accountId, 'aws.region': region, 'aws.instanceId': instanceId };
    if (typeof doc.availabilityZone === 'string') labels['aws.availabilityZone'] = doc.availabilityZone;
    if (typeof doc.imageId === 'string') labels['aws.imageId'] = doc.imageId;
    const identity: Identity = { subject: `aws/${accountId}/${instanceId}`, method, groups: [], labels };
    return { result: 'allow', identity };
  }

  /** Re-applies the allow-lists to an identity this verifier established (a refresh grant). */
  recheck(identity: Identity): AuthOutcome {
    const l = identity.labels;
    const allowed = (list: readonly string[] | undefined, v: string | undefined) => list === undefined || list.length === 0 || (v !== undefined && list.includes(v));
    if (!allowed(this.opts.accounts, l['aws.accountId']) || !allowed(this.opts.regions, l['aws.region']) || !allowed(this.opts.instanceIds, l['aws.instanceId'])) {
      return { result: 'deny', reason: `instance ${l['aws.instanceId'] ?? '?'} is no longer allowed` };
    }
    return { result: 'allow', identity };
  }

  /** The document the signature covers (attached content, or the given one when detached), or undefined. */
  private async signedDocument(pkcs7: string, given: string): Promise<string | undefined> {
    const der = Buffer.from(pkcs7.replace(/-----(BEGIN|END) PKCS7-----/g, '').replace(/\s+/g, ''), 'base64');
    const asn = asn1js.fromBER(new Uint8Array(der));
    if (asn.offset === -1) return undefined;
    let signedData: pkijs.SignedData;
    try {
      const ci = new pkijs.ContentInfo({ schema: asn.result });
      if (ci.contentType !== pkijs.ContentInfo.SIGNED_DATA) return undefined;
      signedData = new pkijs.SignedData({ schema: ci.content });
    } catch {
      return undefined;
    }
    const attached = signedData.encapContentInfo.eContent?.getValue();
    const content = attached ? Buffer.from(attached).toString('utf8') : given;
    if (attached && given.trim() !== '' && given.trim() !== content.trim()) return undefined; // the document shown is not the one signed
    for (const cert of this.certs) {
      // Only a configured certificate may vouch: whatever certificates the message carries are replaced.
      signedData.certificates = [cert];
      try {
        const ok = await signedData.verify({ signer: 0, checkChain: false, ...(attached ? {} : { data: new Uint8Array(Buffer.from(given, 'utf8')).buffer }) });
        if (ok) return content;
      } catch {
        /* not this certificate */
      }
    }
    return undefined;
  }
}
