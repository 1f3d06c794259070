export { type ErrorDescriptor, type ErrorResponseTarget, RegistryError, registryErrorBody, type RegistryErrorCode, RegistryErrors, writeRegistryError } from './errors.js';
export { ProxyError, type ProxyErrorCode } from './codes.js';
export { formatReference, type ImageReference, isValidDigest, isValidRepositoryName, isValidTag, normaliseRegistryHost, parseReference } from './reference.js';
export { type Endpoint, parseApiPath } from './api-path.js';
export { type Access, formatScope, grants, grantsOn, intersectActions, parseScope } from './scope.js';
export { type Challenge, formatChallenge, parseChallenges } from './challenge.js';
export { type AccessRule, AccessRules, globToRegExp } from './access-rules.js';
export { AuthBackendError, type AuthOutcome, AuthOverloadedError, type CredentialVerifier, type Identity, VerifierChain } from './identity.js';
export { BasicCredentialStrategy } from './strategy.js';
export {
  ANONYMOUS_CREDENTIALS,
  anonymousProvider,
  chainProvider,
  CredentialError,
  type CredentialRequest,
  staticProvider,
  type UpstreamCredentialProvider,
  type UpstreamCredentials,
} from './credentials.js';
export { KeySet } from './token/keys.js';
export { InvalidTokenError, type IssuedToken, TokenService, type TokenServiceOptions, type VerifiedAccess, type VerifiedRefresh } from './token/service.js';
export { parseTokenRequest, type TokenRequest } from './token/request.js';
export { type TokenDecision, TokenEndpoint } from './token/endpoint.js';
export { MemoryRevocations, mergedRevocations, type RevocationList, type RevocationStore } from './token/revocations.js';
export { RefreshCheck, type RefreshCheckOptions } from './token/revalidate.js';
export { UpstreamUnavailableError } from './upstream/errors.js';
export { type RetryPolicy } from './upstream/retry.js';
export { UpstreamClient, type UpstreamClientOptions, type UpstreamRequest, type UpstreamResponse } from './upstream/client.js';
export { BodyTooLargeError, ResponseBody } from './upstream/body.js';
export { type HttpMethod } from './upstream/http1.js';
export { Cancel, type CancelSignal } from './upstream/cancel.js';
export { disposableChunks } from './upstream/request-writer.js';
export { type OutboundProxy, outboundProxyFromEnv } from './upstream/outbound-proxy.js';
export { Refreshing } from './providers/refresh.js';
export { CredentialHelperProvider, DockerConfigProvider, type DockerConfigProviderOptions } from './providers/docker-config.js';
export { EcrProvider, type EcrProviderOptions } from './providers/ecr.js';
export { GcpProvider, type GcpProviderOptions } from './providers/gcp.js';
export { ACR_REFRESH_TOKEN_USER, type AcrIdentity, AcrProvider, type AcrProviderOptions } from './providers/acr.js';
export { createCredentialProvider, secretRefSchema, type UpstreamCredentialsConfig, upstreamCredentialsSchema, type UpstreamCredentialsType } from './providers/config.js';
export { resolveSecret, type SecretRef } from './secrets.js';
export { type ClaimResult, type Lock, type StateStore, StateUnavailableError } from './state/store.js';
export { MemoryStateStore } from './state/memory.js';
