export { encodeAwsIidCredential } from './aws.js';
export { IidStrategy, type IidStrategyOptions } from './strategy.js';
export { AwsIidProvider, type AwsIidProviderOptions, AzureIidProvider, type AzureIidProviderOptions, GcpIidProvider, type GcpIidProviderOptions } from './providers.js';
