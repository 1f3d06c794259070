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
import { CaseServer, runCase, type WireCase } from './wire-diff.test-support.js';

const server = new CaseServer();
// No pooling: the case server closes after each answer, and a pooled connection would race that
// close (the client layer's stale-connection retry covers it in real use, not here).
const transport = new Http1Transport({ maxIdlePerOrigin: 0 });
beforeAll(() => server.start());
afterAll(async () => {
  await transport.close();
  await server.close();
});

const CRLF = '\r\n';
const r = (head: string[], body = '') => `${head.join(CRLF)}${CRLF}${CRLF}${body}`;
const chunked = (...parts: string[]) => `${parts.map((p) => `${p.length.toString(16)}${CRLF}${p}${CRLF}`).join('')}0${CRLF}${CRLF}`;

export const TABLE: ReadonlyArray<[string, WireCase]> = [
  ['content-length', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Content-Length: 5', 'Content-Type: text/plain'], 'hello') }],
  ['content-length, split mid-head', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Content-Length: 5'], 'hello'), split: 10 }],
  ['content-length, split mid-body', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Content-Length: 5'], 'hello'), split: 40 }],
  ['chunked', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], chunked('hel', 'lo')) }],
  ['chunked, split in a size line', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], chunked('hello world')), split: 48 }],
  ['chunked with extensions and trailers', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], `5;a=b;c="d"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n`) }],
  ['chunked upper-case hex', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], `A\r\n0123456789\r\n0\r\n\r\n`) }],
  ['gzip, chunked', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Transfer-Encoding: gzip, chunked'], chunked('xx')) }],
  ['close-delimited', { method: 'GET', bytes: r(['HTTP/1.1 200 OK'], 'until the end') }],
  ['HTTP/1.0 close-delimited', { method: 'GET', bytes: r(['HTTP/1.0 200 OK'], 'old') }],
  ['HTTP/1.0 keep-alive with length', { method: 'GET', bytes: r(['HTTP/1.0 200 OK', 'Connection: keep-alive', 'Content-Length: 2'], 'ok') }],
  ['HEAD with a length', { method: 'HEAD', bytes: r(['HTTP/1.1 200 OK', 'Content-Length: 1234']) }],
  ['HEAD with chunked', { method: 'HEAD', bytes: r(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked']) }],
  ['204', { method: 'GET', bytes: r(['HTTP/1.1 204 No Content']) }],
  ['304 with a length', { method: 'GET', bytes: r(['HTTP/1.1 304 Not Modified', 'Content-Length: 99']) }],
  ['100 then 200', { method: 'GET', bytes: `HTTP/1.1 100 Continue\r\n\r\n${r(['HTTP/1.1 200 OK', 'Content-Length: 2'], 'ok')}` }],
  ['103 with headers then 200', { method: 'GET', bytes: `HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n${r(['HTTP/1.1 200 OK', 'Content-Length: 2'], 'ok')}` }],
  ['no reason phrase', { method: 'GET', bytes: r(['HTTP/1.1 200', 'Content-Length: 2'], 'ok') }],
  ['empty reason phrase', { method: 'GET', bytes: r(['HTTP/1.1 404 ', 'Content-Length: 2'], 'no') }],
  ['repeated headers', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Link: <a>', 'link: <b>', 'Content-Length: 0']) }],
  ['whitespace around a value', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'X-A: \t spaced \t ', 'Content-Length: 0']) }],
  ['empty value', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'X-A:', 'Content-Length: 0']) }],
  ['obs-text in a value', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'X-A: caf\xe9', 'Content-Length: 0']) }],
  ['identical repeated Content-Length', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Content-Length: 2', 'Content-Length: 2'], 'ok') }],
  ['extra bytes after the body', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Content-Length: 2'], 'okEXTRA') }],
  // Broken ones: both must refuse, or we refuse on purpose.
  ['CL and TE', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Content-Length: 5', 'Transfer-Encoding: chunked'], chunked('hello, forged')) }],
  ['conflicting Content-Length', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Content-Length: 2', 'Content-Length: 3'], 'okk') }],
  ['Content-Length list', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Content-Length: 2, 3'], 'okk') }],
  ['negative Content-Length', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Content-Length: -1'], 'x') }],
  ['short body', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Content-Length: 10'], 'short') }],
  ['bad chunk size', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], 'zz\r\n') }],
  ['chunk without CRLF after data', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], '2\r\nokX0\r\n\r\n') }],
  ['chunked cut before the last chunk', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked'], '2\r\nok\r\n') }],
  ['status 600', { method: 'GET', bytes: r(['HTTP/1.1 600 Odd', 'Content-Length: 0']) }],
  ['status 099', { method: 'GET', bytes: r(['HTTP/1.1 099 Odd', 'Content-Length: 0']) }],
  ['two-digit status', { method: 'GET', bytes: r(['HTTP/1.1 20 OK', 'Content-Length: 0']) }],
  ['HTTP/2 status line', { method: 'GET', bytes: r(['HTTP/2 200', 'Content-Length: 0']) }],
  ['not HTTP at all', { method: 'GET', bytes: 'SSH-2.0-OpenSSH_9.6\r\n' }],
  ['101', { method: 'GET', bytes: r(['HTTP/1.1 101 Switching Protocols', 'Upgrade: h2c', 'Connection: Upgrade']) }],
  ['space before colon', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Content-Length : 2'], 'ok') }],
  ['obs-fold', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'X-A: a', ' b', 'Content-Length: 2'], 'ok') }],
  ['NUL in a value', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'X-A: a\0b', 'Content-Length: 0']) }],
  ['bare CR in a value', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'X-A: a\rb', 'Content-Length: 0']) }],
  ['bare LF line ends', { method: 'GET', bytes: 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok' }],
  ['bad header name', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'X A: b', 'Content-Length: 0']) }],
  ['header without colon', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'nocolon', 'Content-Length: 0']) }],
  ['head cut short', { method: 'GET', bytes: 'HTTP/1.1 200 OK\r\nContent-Le' }],
  ['nothing', { method: 'GET', bytes: '' }],
  ['204 with a length', { method: 'GET', bytes: r(['HTTP/1.1 204 No Content', 'Content-Length: 5'], 'hello') }],
  ['TE in HTTP/1.0', { method: 'GET', bytes: r(['HTTP/1.0 200 OK', 'Transfer-Encoding: chunked'], chunked('ok')) }],
  ['chunked twice', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked, chunked'], chunked('ok')) }],
  ['chunked then gzip', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked, gzip'], 'raw') }],
  ['1xx storm', { method: 'GET', bytes: `${'HTTP/1.1 100 Continue\r\n\r\n'.repeat(40)}${r(['HTTP/1.1 200 OK', 'Content-Length: 2'], 'ok')}` }],
  ['oversized head', { method: 'GET', bytes: r(['HTTP/1.1 200 OK', `X-Pad: ${'a'.repeat(70_000)}`, 'Content-Length: 0']) }],
];

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
