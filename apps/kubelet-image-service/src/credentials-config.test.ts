import { upstreamCredentialsSchema } from '@registry-proxy/registry-core';
import { testCredentialsCases } from '@registry-proxy/testing';
import { parseConfig } from './config.js';

// The proxy runs the same cases (apps/proxy/src/config/credentials.test.ts): both apps must
// accept and refuse upstream credentials exactly as registry-core's schema does.
describe('credentials[].provider: the schema shared with the proxy', () => {
  testCredentialsCases({
    schema: upstreamCredentialsSchema,
    yaml: (credentials) => `backend: {type: cri}\ncredentials:\n  - hosts: [registry.example.com]\n    provider: ${credentials}\n`,
    parse: (yaml) => parseConfig(yaml, 't').credentials[0]?.provider,
    errorPrefix: 't: credentials.0.provider.',
  });
});
