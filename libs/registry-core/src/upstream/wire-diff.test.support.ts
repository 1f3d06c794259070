/**
 * The differential harness (issue 12, "Prove the wire"): the same response bytes, served by a raw
 * TCP server on loopback, read by node:http's client (llhttp) and by this package's transport.
 * Used by wire-diff.test.ts (a table and the saved corpus) and by tools/fuzz/wire-diff.mjs
 * (generated mutations, against the built dist). Not part of the package's API (and not packed:
 * `*.test.*` files are left out of `files`).
 */
import { request as httpRequest } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Http1Transport } from './http1.js';

/** What a client made of a response: refused (before or during the body), or a whole message. */
export type Outcome = { readonly ok: false; readonly error: string } | { readonly ok: true; readonly status: number; readonly headers: readonly string[]; readonly body: string };

/** One case: the bytes an upstream sends (then it closes), for a request with `method`. */
export interface WireCase {
  readonly method: 'GET' | 'HEAD';
  /** The response bytes, latin1. */
  readonly bytes: string;
  /** Send the bytes in two writes, split here, a moment apart (tests reads that end mid-message). */
  readonly split?: number;
  readonly note?: string;
}

/** A loopback server that answers request `/c/<n>` with case n's bytes and then closes. */
export class CaseServer {
  private server: Server | undefined;
  private readonly cases = new Map<number, WireCase>();
  private readonly sockets = new Set<Socket>();
  private next = 0;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      let head = '';
      const onData = (d: Buffer) => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        s.off('data', onData);
        const n = Number(/^[A-Z]+ \/c\/(\d+) /.exec(head)?.[1]);
        const c = this.cases.get(n);
        if (!c) return void s.destroy();
        const bytes = Buffer.from(c.bytes, 'latin1');
        if (c.split === undefined || c.split <= 0 || c.split >= bytes.length) s.end(bytes);
        else {
          s.write(bytes.subarray(0, c.split));
          setTimeout(() => s.end(bytes.subarray(c.split)), 5);
        }
      };
      s.on('data', onData);
    });
    await new Promise<void>((r) => (this.server as Server).listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Registers a case; returns its path. */
  add(c: WireCase): string {
    const n = this.next++;
    this.cases.set(n, c);
    return `/c/${n}`;
  }

  forget(path: string): void {
    this.cases.delete(Number(path.slice(3)));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server?.close(r));
  }
}

/** Header lines as `name: value`, names lower-cased, sorted by name, stable within a name. */
function normalise(pairs: Array<[string, string]>): string[] {
  return pairs
    .map(([k, v], i) => ({ k: k.toLowerCase(), v, i }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.i - b.i))
    .map(({ k, v }) => `${k}: ${v}`);
}

/** Reads a case with node:http (llhttp), with a head limit equal to the transport's. */
export function viaNode(port: number, path: string, method: string): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: Outcome) => {
      if (!settled) {
        settled = true;
        resolve(o);
      }
    };
    let whole: (() => void) | undefined;
    let response: { complete: boolean } | undefined;
    const req = httpRequest({ host: '127.0.0.1', port, path, method, agent: false, maxHeaderSize: 64 * 1024 + 4 }, (res) => {
      response = res;
      const chunks: Buffer[] = [];
      const raw = res.rawHeaders;
      const pairs: Array<[string, string]> = [];
      for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i] as string, raw[i + 1] as string]);
      // llhttp delivers the body synchronously while it parses, so this sees every byte of it.
      res.on('data', (c: Buffer) => chunks.push(c));
      whole = () => {
        // On an error right after the message, what llhttp parsed may still sit in the stream's buffer.
        // read() hands each chunk to the 'data' listener above as well as returning it.
        while (res.read() !== null);
        done({ ok: true, status: res.statusCode ?? 0, headers: normalise(pairs), body: Buffer.concat(chunks).toString('latin1') });
      };
      res.on('end', () => {
        // A message cut short by the connection's end is 'aborted', not complete.
        if (res.complete) whole?.();
        else done({ ok: false, error: 'incomplete' });
      });
      res.on('aborted', () => done({ ok: false, error: 'aborted' }));
      res.on('error', (e) => done({ ok: false, error: e.message }));
    });
    // The proxy never asks to upgrade; record what llhttp made of a 101 and hang up.
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      // A 101 after a complete response is bytes after the message (see 'error' below).
      if (whole && response?.complete === true) return whole();
      done({ ok: true, status: res.statusCode ?? 0, headers: normalise([]), body: '' });
    });
    req.on('error', (e) => {
      // llhttp parses on past the end of a message and fails on bytes after it; the message
      // itself was complete, and that is what is compared (the transport closes the
      // connection on such bytes rather than read them as an answer).
      if (whole && response?.complete === true) whole();
      else done({ ok: false, error: (e as NodeJS.ErrnoException).code ?? e.message });
    });
    req.setTimeout(3000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** Reads a case with the transport. */
export async function viaOurs(transport: Http1Transport, port: number, path: string, method: 'GET' | 'HEAD'): Promise<Outcome> {
  try {
    const res = await transport.request({ url: new URL(`http://127.0.0.1:${port}${path}`), method, headers: {}, headersTimeoutMs: 3000, bodyIdleTimeoutMs: 3000 });
    const body = await res.body.bytes(1 << 24);
    const pairs: Array<[string, string]> = [];
    for (const [k, v] of Object.entries(res.headers)) for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) pairs.push([k, one]);
    return { ok: true, status: res.statusCode, headers: normalise(pairs), body: body.toString('latin1') };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

/**
 * Where this parser refuses on purpose what llhttp lets through: a proxy must not relay what
 * its own client could read differently, where a client reading for itself may be lenient.
 * Each class is recognised by our refusal's reason and by what llhttp made of the bytes.
 */
export const STRICTER: ReadonlyArray<{ readonly name: string; readonly ours: RegExp; readonly node?: (o: Extract<Outcome, { ok: true }>) => boolean }> = [
  // RFC 9110 15: status codes are 100-599; llhttp takes any three digits. Relayed, 600+ would be a
  // status Node's own server refuses to write (the old 500 UNKNOWN).
  { name: 'status outside 100-599', ours: /outside 100-599/, node: (o) => o.status < 100 || o.status > 599 },
  // llhttp reads any one-digit version (HTTP/2.0, HTTP/1.9) with HTTP/1.1's rules; this parser
  // knows the framing of 1.0 and 1.1 only, and will not guess at another's.
  { name: 'HTTP version other than 1.0 and 1.1', ours: /unsupported version/ },
  // The proxy never sends Upgrade; llhttp hands a 101 on as a normal response.
  { name: '101 nobody asked for', ours: /unexpected 101/ },
  // RFC 9112 6.3: a proxy must treat both as an error (request smuggling, response splitting).
  { name: 'Content-Length beside Transfer-Encoding', ours: /both Transfer-Encoding and Content-Length/ },
  // A 204 that announces a body: whichever length is believed, one side desynchronises.
  { name: '204 with a body length', ours: /204 response with a body length/ },
  // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is a sign of smuggling.
  { name: 'Transfer-Encoding in HTTP/1.0', ours: /Transfer-Encoding in an HTTP\/1\.0/ },
  // chunked not last, twice, or codings that are not tokens: two readers may frame it differently.
  { name: 'odd transfer codings', ours: /bad transfer-encoding/ },
  // Control characters in header values or the reason phrase (llhttp lets some through): they
  // would split or forge headers downstream, and Node's own server refuses to write them (the
  // old 500 UNKNOWN).
  { name: 'control characters in header values or the reason phrase', ours: /control character/ },
  // More than 16 interim responses: a storm meant to hold the connection.
  { name: 'interim response storm', ours: /too many interim/ },
  // RFC 9112 2.2 lets a recipient skip empty lines before a request line; llhttp does so before a
  // status line too. Nothing legitimate sends them after an interim response, so they are refused.
  { name: 'empty line before a status line', ours: /empty line before the status line/ },
  // Chunk extensions are skipped unread, so they are held to RFC 9112's grammar; llhttp lets
  // some malformed ones through (an empty name, ";;"), and refuses others.
  { name: 'malformed chunk extension', ours: /invalid chunk extension/ },
  // A tab or trailing whitespace in Content-Length or Transfer-Encoding: llhttp takes
  // "chunked<TAB>" for another coding but "<TAB>5" for 5, and refuses "5<TAB>"; where two readers
  // of a framing header can disagree, the proxy refuses the message.
  // Lengths of 16 digits and more are not exact as JavaScript numbers; llhttp takes up to 2^64.
  { name: 'Content-Length of 16 digits or more', ours: /content-length too large/ },
  { name: 'whitespace in a framing header', ours: /odd whitespace in (content-length|transfer-encoding)/ },
];

export type Verdict = { readonly kind: 'same' | 'both-refuse' } | { readonly kind: 'stricter'; readonly name: string } | { readonly kind: 'differ'; readonly ours: Outcome; readonly node: Outcome };

/** Compares the two readings of one case. */
export function verdict(ours: Outcome, node: Outcome): Verdict {
  if (!ours.ok && !node.ok) return { kind: 'both-refuse' };
  if (ours.ok && node.ok && ours.status === node.status && ours.body === node.body && ours.headers.join('\n') === node.headers.join('\n')) return { kind: 'same' };
  if (!ours.ok && node.ok) {
    const cls = STRICTER.find((c) => c.ours.test(ours.error) && (c.node === undefined || c.node(node)));
    if (cls) return { kind: 'stricter', name: cls.name };
  }
  return { kind: 'differ', ours, node };
}

/** Runs one case through both clients. */
export async function runCase(server: CaseServer, transport: Http1Transport, c: WireCase): Promise<{ verdict: Verdict; ours: Outcome; node: Outcome }> {
  const a = server.add(c);
  const b = server.add(c);
  const [ours, node] = await Promise.all([viaOurs(transport, server.port, a, c.method), viaNode(server.port, b, c.method)]);
  server.forget(a);
  server.forget(b);
  return { verdict: verdict(ours, node), ours, node };
}

const CRLF = '\r\n';
const r = (head: string[], body = '') => `${head.join(CRLF)}${CRLF}${CRLF}${body}`;
const chunked = (...parts: string[]) => `${parts.map((p) => `${p.length.toString(16)}${CRLF}${p}${CRLF}`).join('')}0${CRLF}${CRLF}`;

/** Normal and broken responses: the differential test's table and the fuzzer's seeds. */
export const WIRE_TABLE: ReadonlyArray<[string, WireCase]> = [
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
