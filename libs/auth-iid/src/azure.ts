import { createHash, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { ProxyError, type AuthOutcome, type Identity } from '@registry-proxy/registry-core';

/** What an Azure node presents as its password (base64url of this JSON). */
export interface AzureIidCredential {
  /** `signature` of IMDS's `/metadata/attested/document`: base64 PKCS#7 SignedData, the document inside. */
  readonly signature: string;
  /** The node's own secret nonce; IMDS was asked with {@link azureImdsNonce} of it. */
  readonly nonce: string;
}

export interface AzureIidVerifierOptions {
  /** PEM root certificates (bundles allowed) the signer's chain must end at (Azure: DigiCert Global Root G2, Microsoft RSA Root CA 2017). */
  readonly roots: readonly string[];
  /**
   * PEM intermediate certificates. IMDS embeds only the signing certificate; its issuer must be
   * here (the proxy does not fetch it from the certificate's AIA URL).
   */
  readonly intermediates?: readonly string[] | undefined;
  /** DNS names the signer's certificate must carry in its SAN, a subdomain counting (Azure's docs: `*.metadata.azure.com`). Default `metadata.azure.com`. */
  readonly signerNames?: readonly string[] | undefined;
  readonly subscriptions?: readonly string[] | undefined;
  readonly vmIds?: readonly string[] | undefined;
  readonly clockToleranceSeconds?: number | undefined;
  readonly now?: (() => number) | undefined;
}

/** The signed document's fields this verifier reads (Microsoft's "Attested data" reference). */
interface Attested {
  nonce?: unknown;
  vmId?: unknown;
  subscriptionId?: unknown;
  sku?: unknown;
  licenseType?: unknown;
  plan?: { name?: unknown; product?: unknown; publisher?: unknown };
  timeStamp?: { createdOn?: unknown; expiresOn?: unknown };
}

export function encodeAzureIidCredential(c: AzureIidCredential): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

/**
 * The nonce the node asks IMDS for: Microsoft documents it as a 10-digit string, too short to
 * be a secret, so it is derived from the node's longer secret, which travels beside the document.
 */
export function azureImdsNonce(secret: string): string {
  const n = BigInt(`0x${createHash('sha256').update(`azure-imds-nonce\u0000${secret}`).digest('hex').slice(0, 16)}`);
  return (n % 10_000_000_000n).toString().padStart(10, '0');
}

/** IMDS's time stamps: `MM/DD/YY HH:MM:SS -0000` (a four-digit year and ISO 8601 are read too). Returns epoch ms or NaN. */
export function parseAzureTimestamp(s: string): number {
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s.trim())) return Date.parse(s.trim());
  const m = /^(\d{2})\/(\d{2})\/(\d{2}|\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(s.trim());
  if (!m) return NaN;
  const [, mo, d, y, h, mi, se, sign, oh, om] = m.map((x, i) => (i === 7 ? x : Number(x))) as [unknown, number, number, number, number, number, number, string, number, number];
  const offset = (sign === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  return Date.UTC(y < 100 ? 2000 + y : y, mo - 1, d, h, mi, se) - offset;
}

/** The SignedData of a base64 PKCS#7, or undefined. */
function signedDataOf(b64: string): pkijs.SignedData | undefined {
  const asn = asn1js.fromBER(new Uint8Array(Buffer.from(b64.replace(/\s+/g, ''), 'base64')));
  if (asn.offset === -1) return undefined;
  try {
    const ci = new pkijs.ContentInfo({ schema: asn.result });
    if (ci.contentType !== pkijs.ContentInfo.SIGNED_DATA) return undefined;
    return new pkijs.SignedData({ schema: ci.content });
  } catch {
    return undefined;
  }
}

/** The document inside an attested signature, NOT verified: for the node, to learn its expiry. */
export function attestedContent(signature: string): Record<string, unknown> | undefined {
  const bytes = signedDataOf(signature)?.encapContentInfo.eContent?.getValue();
  if (!bytes) return undefined;
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The certificates of one configured PEM text (a bundle of several is fine). */
function pems(text: string, key: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  try {
    if (blocks.length === 0) throw new Error('none');
    return blocks.map((b) => new X509Certificate(b));
  } catch {
    throw new ProxyError('RP_ERR_CONFIG_INVALID', `azure ${key}: not a PEM certificate`);
  }
}

function sanDnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((e) => e.startsWith('DNS:'))
    .map((e) => e.slice(4).toLowerCase());
}

/**
 * Verifies Azure IMDS attested documents: the PKCS#7 signature with the certificate IMDS
 * embeds, that certificate's chain (through configured or embedded intermediates) to a
 * configured root with every link valid now, the signer's DNS name, the document's expiry, and
 * allow-lists on subscription and VM.
 *
 * Only signed claims become labels: `azure.vmId`, `azure.subscriptionId`, `azure.sku`,
 * `azure.licenseType`, `azure.planPublisher`/`Product`/`Name`. The attested document carries no
 * resource group and no tags; those exist only at the unsigned `/metadata/instance`, which any
 * process on the VM could fake, so they are not offered for rules.
 *
 * Replay, as for AWS: the node keeps a secret and asks IMDS with a nonce derived from it; the
 * first presentation binds the VM to that secret (trust on first use, per process), a different
 * one is refused. The document's own expiry (`timeStamp.expiresOn`) bounds the rest.
 */
export class AzureIidVerifier {
  private readonly roots: X509Certificate[];
  private readonly intermediates: X509Certificate[];
  private readonly names: string[];
  private readonly nonces = new Map<string, string>();
  private readonly now: () => number;

  constructor(private readonly opts: AzureIidVerifierOptions) {
    if (opts.roots.length === 0) throw new ProxyError('RP_ERR_CONFIG_INVALID', 'azure: at least one root certificate');
    this.roots = opts.roots.flatMap((r, i) => pems(r, `roots.${i}`));
    this.intermediates = (opts.intermediates ?? []).flatMap((r, i) => pems(r, `intermediates.${i}`));
    this.names = (opts.signerNames ?? ['metadata.azure.com']).map((n) => n.toLowerCase());
    this.now = opts.now ?? Date.now;
  }

  async verify(password: string, method: string): Promise<AuthOutcome> {
    let cred: Partial<AzureIidCredential>;
    try {
      cred = JSON.parse(Buffer.from(password, 'base64url').toString('utf8')) as Partial<AzureIidCredential>;
    } catch {
      return { result: 'deny', reason: 'not an Azure attested-document credential' };
    }
    if (typeof cred.signature !== 'string' || typeof cred.nonce !== 'string') return { result: 'deny', reason: 'not an Azure attested-document credential' };
    if (cred.nonce.length < 16 || cred.nonce.length > 256) return { result: 'deny', reason: 'nonce must be 16 to 256 characters' };
    const checked = await this.checkSignature(cred.signature);
    if (typeof checked === 'string') return { result: 'deny', reason: checked };
    const doc = checked;
    const { vmId, subscriptionId, nonce } = doc;
    if (typeof vmId !== 'string' || !vmId || typeof subscriptionId !== 'string' || !subscriptionId) return { result: 'deny', reason: 'document lacks vmId or subscriptionId' };
    const tolerance = (this.opts.clockToleranceSeconds ?? 60) * 1000;
    const expires = typeof doc.timeStamp?.expiresOn === 'string' ? parseAzureTimestamp(doc.timeStamp.expiresOn) : NaN;
    if (Number.isNaN(expires)) return { result: 'deny', reason: 'document has no readable timeStamp.expiresOn' };
    if (this.now() > expires + tolerance) return { result: 'deny', reason: `document expired at ${new Date(expires).toISOString()}` };
    if (nonce !== azureImdsNonce(cred.nonce)) return { result: 'deny', reason: 'the signed nonce is not the one derived from the presented secret' };
    const allowed = (list: readonly string[] | undefined, v: string) => list === undefined || list.length === 0 || list.some((x) => x.toLowerCase() === v.toLowerCase());
    if (!allowed(this.opts.subscriptions, subscriptionId)) return { result: 'deny', reason: `subscription ${subscriptionId} not allowed` };
    if (!allowed(this.opts.vmIds, vmId)) return { result: 'deny', reason: `VM ${vmId} not allowed` };
    const secretHash = createHash('sha256').update(cred.nonce).digest('base64');
    const bound = this.nonces.get(vmId);
    if (bound === undefined) this.nonces.set(vmId, secretHash);
    else if (bound !== secretHash) return { result: 'deny', reason: `VM ${vmId} is bound to another nonce (a replayed document?)` };
    const labels: Record<string, string> = { 'azure.subscriptionId': subscriptionId, 'azure.vmId': vmId };
    const add = (k: string, v: unknown) => {
      if (typeof v === 'string' && v !== '') labels[k] = v;
    };
    add('azure.sku', doc.sku);
    add('azure.licenseType', doc.licenseType);
    add('azure.planPublisher', doc.plan?.publisher);
    add('azure.planProduct', doc.plan?.product);
    add('azure.planName', doc.plan?.name);
    const identity: Identity = { subject: `azure/${subscriptionId}/${vmId}`, method, groups: [], labels, expiresAt: Math.floor(expires / 1000) };
    return { result: 'allow', identity };
  }

  /** The signed document, or why it is refused. */
  private async checkSignature(signature: string): Promise<Attested | string> {
    const sd = signedDataOf(signature);
    const content = sd?.encapContentInfo.eContent?.getValue();
    if (!sd || !content) return 'not a PKCS#7 SignedData with the document inside';
    let signer: pkijs.Certificate | null | undefined;
    try {
      const r = await sd.verify({ signer: 0, checkChain: false, extendedMode: true });
      if (r.signatureVerified) signer = r.signerCertificate;
    } catch {
      /* signer missing or signature wrong: refused below */
    }
    if (!signer) return 'signature does not verify with the embedded certificate';
    const leaf = new X509Certificate(Buffer.from(signer.toSchema().toBER(false)));
    const embedded = (sd.certificates ?? []).filter((c): c is pkijs.Certificate => c instanceof pkijs.Certificate).map((c) => new X509Certificate(Buffer.from(c.toSchema().toBER(false))));
    const chainError = this.checkChain(leaf, [...this.intermediates, ...embedded]);
    if (chainError) return chainError;
    const dns = sanDnsNames(leaf);
    if (!dns.some((d) => this.names.some((n) => d === n || d.endsWith(`.${n}`)))) return `signing certificate is not for ${this.names.join(' or ')} (SAN: ${dns.join(', ') || 'none'})`;
    try {
      return JSON.parse(Buffer.from(content).toString('utf8')) as Attested;
    } catch {
      return 'signed document is not JSON';
    }
  }

  /** Walks issuer links from the leaf to a configured root; each certificate valid now, issuers CAs. */
  private checkChain(leaf: X509Certificate, pool: X509Certificate[]): string | undefined {
    const now = this.now();
    const valid = (c: X509Certificate) => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
    let cert = leaf;
    for (let depth = 0; depth < 6; depth++) {
      if (!valid(cert)) return `certificate ${cert.subject.replace(/\n/g, ', ')} is outside its validity period`;
      if (this.roots.some((r) => r.raw.equals(cert.raw))) return undefined;
      const root = this.roots.find((r) => cert.checkIssued(r) && cert.verify(r.publicKey));
      if (root) return valid(root) ? undefined : 'the root certificate is outside its validity period';
      const next = pool.find((c) => c.ca && !c.raw.equals(cert.raw) && cert.checkIssued(c) && cert.verify(c.publicKey));
      if (!next) return 'signing certificate does not chain to a configured root';
      cert = next;
    }
    return 'certificate chain too long';
  }
}
