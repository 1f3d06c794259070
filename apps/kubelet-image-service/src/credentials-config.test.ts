import { upstreamCredentialsSchema } from '@registry-proxy/registry-core';
import { CREDENTIALS_CASES } from '@registry-proxy/testing';
import { parseConfig } from './config.js';

// The proxy runs the same cases (apps/proxy/src/config/credentials.test.ts): both apps must
// accept and refuse upstream credentials exactly as registry-core's schema does.
describe('credentials[].provider: the schema shared with the proxy', () => {
  it.each(CREDENTIALS_CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const yaml = `backend: {type: cri}\ncredentials:\n  - hosts: [registry.example.com]\n    provider: ${JSON.stringify(c.config)}\n`;
    const expected = upstreamCredentialsSchema.safeParse(c.config);
    const prefix = `t: credentials.0.provider.${c.refused?.field ?? ''}: `;
    if (!c.refused) {
      expect(expected.success).toBe(true);
      expect(parseConfig(yaml, 't').credentials[0]?.provider).toEqual(expected.data);
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
