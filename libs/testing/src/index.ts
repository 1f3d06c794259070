// Test support shared by the projects' end-to-end suites: real daemons (docker-registry,
// dockerd, containerd, slapd, redis-server) started on loopback, a test CA, OCI image builders. Not published.
export * from './proc.js';
export * from './engines.js';
export * from './registry.js';
export * from './tls.js';
export * from './oci.js';
export * from './slapd.js';
export * from './redis.js';
export * from './oidc.js';
export * from './cloud.js';
export * from './azure.js';
export * from './acr.js';
export * from './credentials-config.js';
