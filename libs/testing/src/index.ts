// Test support shared by the projects' end-to-end suites: real daemons (docker-registry,
// dockerd, containerd, slapd, redis-server) started on loopback, a test CA, OCI image builders. Not published.
export { type Daemon, freePort, requireCommands, run, startDaemon, waitFor } from './proc.js';
export { startContainerd, startDockerd, type TestContainerd, type TestDockerd } from './engines.js';
export { startRegistry, startTokenRegistry, type TestRegistry, type TokenRegistry } from './registry.js';
export { createTestCa, type TestCa } from './tls.js';
export { type Image, makeImage, MT, Pusher, sampleImage, sha256 } from './oci.js';
export { BASE, PASSWORDS, startSlapd, type TestSlapd } from './slapd.js';
export { startRedis, type TestRedis } from './redis.js';
export { newSigningJwk, OIDC_CLIENT, startOidcProvider, type TestOidcProvider } from './oidc.js';
export { awsDocument, createIidSigner, startGcpMetadata, startImds, type TestMetadataServer } from './cloud.js';
export { azureAttestedDocument, type AzureVm, createAzureAd, createAzureTestCa, startAzureAdTokenEndpoint, startAzureImds, type TestAzureAd, type TestAzureServer } from './azure.js';
export { startAcr, type TestAcr } from './acr.js';
export { CREDENTIALS_CASES, type CredentialsCase, type CredentialsParser, testCredentialsCases } from './credentials-config.js';
export { Loopback, type RawServer } from './loopback.js';
