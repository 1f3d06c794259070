import { BasicCredentialStrategy, ProxyError, type AuthOutcome, type Identity } from '@registry-proxy/registry-core';
import { AwsIidVerifier, type AwsIidVerifierOptions } from './aws.js';
import { AzureIidVerifier, type AzureIidVerifierOptions } from './azure.js';
import { GcpIidVerifier, type GcpIidVerifierOptions } from './gcp.js';

/** The Basic usernames nodes present instance identity under. */
export const IID_USERNAMES = { aws: 'aws-iid', gcp: 'gcp-iid', azure: 'azure-iid' } as const;

export interface IidStrategyOptions {
  readonly aws?: AwsIidVerifierOptions | undefined;
  readonly gcp?: GcpIidVerifierOptions | undefined;
  readonly azure?: AzureIidVerifierOptions | undefined;
  readonly name?: string;
  readonly realm?: string;
}

/**
 * Passport strategy for cloud instance identity: the username `aws-iid` carries an AWS instance
 * identity document with its PKCS#7 signature, `gcp-iid` a GCP identity token, `azure-iid` an
 * Azure IMDS attested document. Other usernames
 * are not its business. Identities carry the cloud's facts as labels (`aws.accountId`,
 * `gcp.project`, `azure.subscriptionId`, ...), for the access rules.
 */
export class IidStrategy extends BasicCredentialStrategy {
  readonly name: string;
  private readonly aws: AwsIidVerifier | undefined;
  private readonly gcp: GcpIidVerifier | undefined;
  private readonly azure: AzureIidVerifier | undefined;

  constructor(opts: IidStrategyOptions) {
    super(opts.realm);
    this.name = opts.name ?? 'iid';
    if (!opts.aws && !opts.gcp && !opts.azure) throw new ProxyError('RP_ERR_CONFIG_INVALID', 'iid: configure at least one of aws, gcp, azure');
    this.aws = opts.aws ? new AwsIidVerifier(opts.aws) : undefined;
    this.gcp = opts.gcp ? new GcpIidVerifier(opts.gcp) : undefined;
    this.azure = opts.azure ? new AzureIidVerifier(opts.azure) : undefined;
  }

  async verify(username: string, password: string): Promise<AuthOutcome> {
    if (username === IID_USERNAMES.aws && this.aws) return this.aws.verify(password, `${this.name}:aws`);
    if (username === IID_USERNAMES.gcp && this.gcp) return this.gcp.verify(password, `${this.name}:gcp`);
    if (username === IID_USERNAMES.azure && this.azure) return this.azure.verify(password, `${this.name}:azure`);
    return { result: 'skip' };
  }

  /** A refresh grant's re-check: the instance must still pass the allow-lists as they are configured now. */
  async lookup(identity: Identity): Promise<AuthOutcome> {
    if (identity.method === `${this.name}:aws` && this.aws) return this.aws.recheck(identity);
    if (identity.method === `${this.name}:gcp` && this.gcp) return this.gcp.recheck(identity);
    return { result: 'skip' };
  }
}
