import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CredentialError, Refreshing, type UpstreamCredentialProvider, type UpstreamCredentials } from '@registry-proxy/registry-core';
import { decodeJwt } from 'jose';
import { encodeAwsIidCredential } from './aws.js';
import { attestedContent, azureImdsNonce, encodeAzureIidCredential, parseAzureTimestamp } from './azure.js';
import { IID_USERNAMES } from './strategy.js';

async function call(url: string, init: RequestInit, what: string, timeoutMs: number): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    throw new CredentialError('iid', `${what} unreachable: ${cause?.code ?? (err as Error).message}`, { cause: err });
  }
  const text = await res.text();
  if (res.status !== 200) throw new CredentialError('iid', `${what} answered HTTP ${res.status}`);
  return text;
}

/** The node's secret nonce: read from `file` (created, mode 0600, on first use), or a fresh one kept in memory. */
async function nodeNonce(file: string | undefined): Promise<string> {
  if (!file) return randomBytes(32).toString('base64url');
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    if (existing.length >= 16) return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CredentialError('iid', `cannot read nonce file ${file}: ${(err as NodeJS.ErrnoException).code}`);
  }
  const fresh = randomBytes(32).toString('base64url');
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${fresh}\n`, { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw new CredentialError('iid', `cannot write nonce file ${file}: ${err.code}`);
  });
  return (await readFile(file, 'utf8')).trim();
}

export interface AwsIidProviderOptions {
  /** IMDS; default `http://169.254.169.254`. */
  readonly imdsUrl?: string | undefined;
  /** Where the node keeps its nonce (created, mode 0600, on first use). Without it the nonce lives in memory. */
  readonly nonceFile?: string;
  readonly timeoutMs?: number;
}

/**
 * Node side, AWS: the instance identity document and its RSA-2048 PKCS#7 signature from IMDSv2
 * (session token first), plus this node's nonce, as Basic credentials `aws-iid`.
 */
export class AwsIidProvider implements UpstreamCredentialProvider {
  private readonly value: Refreshing<UpstreamCredentials>;
  private nonce: string | undefined;

  constructor(private readonly opts: AwsIidProviderOptions = {}) {
    // The document does not change while the instance runs; fetch it again hourly anyway.
    this.value = new Refreshing(async () => {
      const now = Date.now();
      return { value: await this.fetch(), refreshAt: now + 3600_000, expiresAt: now + 6 * 3600_000 };
    });
  }

  credentials(): Promise<UpstreamCredentials> {
    return this.value.get();
  }

  private async nonceValue(): Promise<string> {
    return (this.nonce ??= await nodeNonce(this.opts.nonceFile));
  }

  private async fetch(): Promise<UpstreamCredentials> {
    const base = (this.opts.imdsUrl ?? 'http://169.254.169.254').replace(/\/+$/, '');
    const t = this.opts.timeoutMs ?? 2000;
    const token = await call(`${base}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '300' } }, 'IMDSv2 token', t);
    const headers = { 'X-aws-ec2-metadata-token': token };
    const document = await call(`${base}/latest/dynamic/instance-identity/document`, { headers }, 'IMDS document', t);
    const pkcs7 = await call(`${base}/latest/dynamic/instance-identity/rsa2048`, { headers }, 'IMDS rsa2048 signature', t);
    return { kind: 'basic', username: IID_USERNAMES.aws, password: encodeAwsIidCredential({ document, pkcs7, nonce: await this.nonceValue() }) };
  }
}

export interface GcpIidProviderOptions {
  /** The audience to ask for: the proxy's URL (what its verifier expects). */
  readonly audience: string;
  /** Default `http://$GCE_METADATA_HOST` or `http://metadata.google.internal`. */
  readonly metadataUrl?: string | undefined;
  readonly timeoutMs?: number;
}

/** Node side, GCP: an identity token for the proxy's audience (format=full) as Basic credentials `gcp-iid`. */
export class GcpIidProvider implements UpstreamCredentialProvider {
  private readonly value: Refreshing<UpstreamCredentials>;

  constructor(opts: GcpIidProviderOptions) {
    this.value = new Refreshing(async () => {
      const base = (opts.metadataUrl ?? `http://${process.env['GCE_METADATA_HOST'] ?? 'metadata.google.internal'}`).replace(/\/+$/, '');
      const q = new URLSearchParams({ audience: opts.audience, format: 'full' });
      const jwt = (
        await call(`${base}/computeMetadata/v1/instance/service-accounts/default/identity?${q}`, { headers: { 'Metadata-Flavor': 'Google' } }, 'the metadata server', opts.timeoutMs ?? 2000)
      ).trim();
      let exp: number;
      try {
        exp = (decodeJwt(jwt).exp ?? 0) * 1000;
      } catch {
        throw new CredentialError('iid', 'the metadata server sent something that is not a JWT');
      }
      // Renewed five minutes before it expires (tokens live an hour).
      return { value: { kind: 'basic', username: IID_USERNAMES.gcp, password: jwt }, refreshAt: exp - 300_000, expiresAt: exp };
    });
  }

  credentials(): Promise<UpstreamCredentials> {
    return this.value.get();
  }
}

export interface AzureIidProviderOptions {
  /** IMDS; default `http://169.254.169.254`. */
  readonly imdsUrl?: string | undefined;
  /** Where the node keeps its secret nonce (created, mode 0600, on first use). Without it the secret lives in memory. */
  readonly nonceFile?: string;
  readonly timeoutMs?: number;
}

/**
 * Node side, Azure: IMDS's attested document (`/metadata/attested/document`, header
 * `Metadata: true`) asked with the nonce derived from this node's secret, plus the secret, as
 * Basic credentials `azure-iid`. Fetched again at half the document's life.
 */
export class AzureIidProvider implements UpstreamCredentialProvider {
  private readonly value: Refreshing<UpstreamCredentials>;
  private nonce: string | undefined;

  constructor(private readonly opts: AzureIidProviderOptions = {}) {
    this.value = new Refreshing(() => this.fetch());
  }

  credentials(): Promise<UpstreamCredentials> {
    return this.value.get();
  }

  private async fetch() {
    this.nonce ??= await nodeNonce(this.opts.nonceFile);
    const base = (this.opts.imdsUrl ?? 'http://169.254.169.254').replace(/\/+$/, '');
    const q = new URLSearchParams({ 'api-version': '2020-09-01', nonce: azureImdsNonce(this.nonce) });
    const text = await call(`${base}/metadata/attested/document?${q}`, { headers: { Metadata: 'true' } }, 'IMDS attested document', this.opts.timeoutMs ?? 2000);
    let body: { encoding?: unknown; signature?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new CredentialError('iid', 'IMDS attested document is not JSON');
    }
    if (body.encoding !== 'pkcs7' || typeof body.signature !== 'string') throw new CredentialError('iid', 'IMDS attested document is not {encoding: pkcs7, signature}');
    const doc = attestedContent(body.signature);
    const ts = doc?.['timeStamp'] as { createdOn?: unknown; expiresOn?: unknown } | undefined;
    const now = Date.now();
    const created = typeof ts?.createdOn === 'string' ? parseAzureTimestamp(ts.createdOn) : NaN;
    const expires = typeof ts?.expiresOn === 'string' ? parseAzureTimestamp(ts.expiresOn) : NaN;
    // Unreadable times: keep it five minutes (the proxy checks the real expiry anyway).
    const expiresAt = Number.isNaN(expires) ? now + 300_000 : expires;
    const from = Number.isNaN(created) ? now : Math.min(created, now);
    const value: UpstreamCredentials = { kind: 'basic', username: IID_USERNAMES.azure, password: encodeAzureIidCredential({ signature: body.signature, nonce: this.nonce }) };
    return { value, refreshAt: from + Math.max(0, (expiresAt - from) / 2), expiresAt };
  }
}
