/** The "Security model" section of docs/configuration.md names only configuration keys that exist. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const doc = readFileSync(join(__dirname, '../../../../docs/configuration.md'), 'utf8');
const schema = readFileSync(join(__dirname, 'schema.ts'), 'utf8');

describe('docs/configuration.md, Security model', () => {
  const at = doc.indexOf('## Security model');
  const section = doc.slice(at, doc.indexOf('\n## ', at + 1) < 0 ? undefined : doc.indexOf('\n## ', at + 1));
  // Backticked configuration paths: `tokens.ttlSeconds`, `rules[].hosts`, `trustedProxies`...
  const keys = [...section.matchAll(/`([a-z][A-Za-z]*(?:\[\])?(?:\.[a-z][A-Za-z]*(?:\[\])?)*)`/g)]
    .map((m) => m[1] as string)
    .filter((k) => k.includes('.') || ['trustedProxies', 'publicUrl', 'rules', 'auth', 'service'].includes(k));

  it('exists and covers trust, bindings, limits and revocation', () => {
    expect(at).toBeGreaterThan(0);
    for (const part of ['**Trusted.**', '**What a token is bound to.**', '**Limits.**', '**Revoking access.**']) expect(section).toContain(part);
    expect(keys.length).toBeGreaterThan(10);
  });

  it('names only keys the configuration schema has', () => {
    const missing = keys.filter((k) => k.split('.').some((seg) => !new RegExp(`\\b${seg.replace('[]', '')}: `).test(schema)));
    expect(missing).toEqual([]);
  });
});
