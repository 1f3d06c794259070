import { upstreamCredentialsSchema } from '@registry-proxy/registry-core';
import { testCredentialsCases } from '@registry-proxy/testing';
import { parseConfig } from './load.js';

// The kubelet image service runs the same cases (apps/kubelet-image-service/src/credentials-config.test.ts):
// both apps must accept and refuse upstream credentials exactly as registry-core's schema does.
describe('upstreams[].credentials: the schema shared with the kubelet image service', () => {
  testCredentialsCases({
    schema: upstreamCredentialsSchema,
    yaml: (credentials) => `upstreams:\n  - name: up\n    url: http://127.0.0.1:5000\n    credentials: ${credentials}\n`,
    parse: (yaml) => parseConfig(yaml, 't').upstreams[0]?.credentials,
    errorPrefix: 't: upstreams.0.credentials.',
  });
});
