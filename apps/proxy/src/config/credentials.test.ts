import { upstreamCredentialsSchema } from '@registry-proxy/registry-core';
import { CREDENTIALS_CASES } from '@registry-proxy/testing';
import { parseConfig } from './load.js';

// The kubelet image service runs the same cases (apps/kubelet-image-service/src/credentials-config.test.ts):
// both apps must accept and refuse upstream credentials exactly as registry-core's schema does.
describe('upstreams[].credentials: the schema shared with the kubelet image service', () => {
  it.each(CREDENTIALS_CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const yaml = `upstreams:\n  - name: up\n    url: http://127.0.0.1:5000\n    credentials: ${JSON.stringify(c.config)}\n`;
    const expected = upstreamCredentialsSchema.safeParse(c.config);
    const prefix = `t: upstreams.0.credentials.${c.refused?.field ?? ''}: `;
    if (!c.refused) {
      expect(expected.success).toBe(true);
      expect(parseConfig(yaml, 't').upstreams[0]?.credentials).toEqual(expected.data);
      return;
    }
    expect(expected.success).toBe(false);
    let message = '';
    try {
      parseConfig(yaml, 't');
    } catch (e) {
      message = (e as Error).message;
    }
    const line = message.split('\n').find((l) => l.startsWith(prefix));
    expect(line).toBeDefined();
    expect(line?.slice(prefix.length)).toMatch(c.refused.message);
  });
});
