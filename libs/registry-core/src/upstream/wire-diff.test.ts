/**
 * The differential test (issue 12, "Prove the wire"): normal and broken response byte streams go
 * to node:http's client (llhttp) and to this transport; they must agree on status, headers and
 * body bytes (and so on framing), or both refuse, or this transport refuses on purpose (STRICTER,
 * each class commented). corpus/wire-diff.json holds the cases tools/fuzz/wire-diff.mjs found
 * disagreeing; they are replayed here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Http1Transport } from './http1.js';
import { CaseServer, runCase, WIRE_TABLE as TABLE, type WireCase } from './wire-diff.test.support.js';

const server = new CaseServer();
// No pooling: the case server closes after each answer, and a pooled connection would race that
// close (the client layer's stale-connection retry covers it in real use, not here).
const transport = new Http1Transport({ maxIdlePerOrigin: 0 });
beforeAll(() => server.start());
afterAll(async () => {
  await transport.close();
  await server.close();
});

interface CorpusEntry extends WireCase {
  readonly found: string;
}
const corpus = JSON.parse(readFileSync(join(__dirname, 'corpus', 'wire-diff.json'), 'utf8')) as CorpusEntry[];

describe('the transport against llhttp', () => {
  it.each(TABLE)('%s', async (_name, c) => {
    const { verdict } = await runCase(server, transport, c);
    expect(verdict.kind === 'differ' ? verdict : 'agrees').toBe('agrees');
  });

  it('replays every corpus case', async () => {
    for (const [i, c] of corpus.entries()) {
      const { verdict } = await runCase(server, transport, c);
      expect({ i, found: c.found, verdict: verdict.kind === 'differ' ? verdict : 'agrees' }).toEqual({ i, found: c.found, verdict: 'agrees' });
    }
  });

  it('has a table that exercises every STRICTER class and both outcomes', async () => {
    const kinds = new Map<string, number>();
    for (const [, c] of TABLE) {
      const { verdict } = await runCase(server, transport, c);
      const k = verdict.kind === 'stricter' ? `stricter: ${verdict.name}` : verdict.kind;
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
    expect(kinds.get('same')).toBeGreaterThan(15);
    expect(kinds.get('both-refuse')).toBeGreaterThan(10);
    expect([...kinds.keys()].filter((k) => k.startsWith('stricter')).length).toBeGreaterThanOrEqual(6);
  });
});
