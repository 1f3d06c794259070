/**
 * The response head of HTTP/1.1 (RFC 9112 sections 4-6), parsed as a proxy must: whatever could
 * make this proxy and its client frame the message differently is refused, not guessed at.
 * Pure: no sockets, so the differential tests can hold it against Node's llhttp.
 */

/** How the body of a response is delimited (RFC 9112 section 6.3). */
export type Framing = { readonly kind: 'none' } | { readonly kind: 'length'; readonly length: number } | { readonly kind: 'chunked' } | { readonly kind: 'close' };

/** A final (non-1xx) response head. */
export interface ResponseHead {
  readonly statusCode: number;
  /** Lower-case names; repeated headers become arrays, in the order they came. */
  readonly headers: Record<string, string | string[] | undefined>;
  readonly framing: Framing;
  /** The connection may carry another exchange after this one. */
  readonly keepAlive: boolean;
  /** The server's `Keep-Alive: timeout=N`, in ms. */
  readonly keepAliveHintMs: number | undefined;
}

/** A response the proxy will not relay: the connection is dropped and the client gets a 502. */
export class ProtocolError extends Error {
  readonly code = 'EPROTO';
  constructor(message: string) {
    super(`HTTP protocol error: ${message}`);
    this.name = 'ProtocolError';
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** field-value: visible ASCII, SP, HTAB and obs-text; CR, LF, NUL and other controls are refused (they would split or forge headers downstream). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const STATUS_LINE = /^HTTP\/(\d)\.(\d) (\d{3})(?: (.*))?$/s;

/**
 * Parses a head (the text before the blank line, latin1, without its final CRLF CRLF).
 * Returns `undefined` for an interim 1xx response (the real one follows); throws ProtocolError.
 */
export function parseHead(text: string, method: string): ResponseHead | undefined {
  const lines = text.split('\r\n');
  if (text === '' || /^[\r\n]/.test(text)) throw new ProtocolError('empty line before the status line');
  const m = STATUS_LINE.exec(lines[0] as string); // split() returns at least one element
  if (!m) throw new ProtocolError('bad status line');
  // Only HTTP/1.0 and 1.1 framing is known here; llhttp reads any 1-digit version as 1.1.
  if (m[1] !== '1' || (m[2] !== '0' && m[2] !== '1')) throw new ProtocolError(`unsupported version HTTP/${m[1]}.${m[2]}`);
  const minor = m[2];
  const statusCode = Number(m[3]);
  if (statusCode < 100 || statusCode > 599) throw new ProtocolError(`status ${m[3]} outside 100-599`);
  if (!FIELD_VALUE.test(m[4] ?? '')) throw new ProtocolError('control character in the reason phrase');
  const headers: Record<string, string | string[] | undefined> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    // No whitespace before the colon (RFC 9112 5.1) and no obs-fold: both are old ways to make
    // two parsers disagree on a header's name or extent.
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) throw new ProtocolError('bad header line');
    const raw = line.slice(colon + 1);
    const value = raw.replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) throw new ProtocolError(`control character in header ${name.toLowerCase()}`);
    const k = name.toLowerCase();
    // Framing headers get no benefit of the doubt: llhttp takes "chunked<TAB>" for another
    // coding and refuses "5<TAB>", so any tab or trailing space in them is refused.
    if ((k === 'content-length' || k === 'transfer-encoding') && /\t| $/.test(raw)) throw new ProtocolError(`odd whitespace in ${k}`);
    const prev = headers[k];
    headers[k] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  // The proxy never asks to switch protocols: a 101 would hand it a stream it cannot frame.
  if (statusCode === 101) throw new ProtocolError('unexpected 101 Switching Protocols');
  // Framing headers are checked even on an interim response, as llhttp does.
  const te = headers['transfer-encoding'];
  const cl = headers['content-length'];
  if (te !== undefined && cl !== undefined) {
    // RFC 9112 6.3: both is a smuggling attempt or a broken server; a proxy must not relay it.
    throw new ProtocolError('both Transfer-Encoding and Content-Length');
  }
  const length = cl === undefined ? undefined : contentLength(cl);
  const conn = String(headers['connection'] ?? '').toLowerCase();
  // [ \t], not \s: JavaScript's \s also matches NBSP (0xA0), which HTTP does not trim.
  let keepAlive = minor === '1' ? !/(?:^|,)[ \t]*close[ \t]*(?:,|$)/.test(conn) : /(?:^|,)[ \t]*keep-alive[ \t]*(?:,|$)/.test(conn);
  if (statusCode < 200) {
    // An interim response that closes the connection leaves no room for the final one (llhttp
    // refuses what follows too).
    if (!keepAlive) throw new ProtocolError('interim response closing the connection');
    return undefined;
  }
  const hint = /(?:^|,)[ \t]*timeout=(\d{1,9})/i.exec(String(headers['keep-alive'] ?? ''));
  let framing: Framing;
  if (te !== undefined && minor === '0') throw new ProtocolError('Transfer-Encoding in an HTTP/1.0 response');
  if (method === 'HEAD' || statusCode === 204 || statusCode === 304) {
    // No body, whatever the headers say (RFC 9112 6.3 rule 1); a 204 has no business declaring one.
    if (statusCode === 204 && (te !== undefined || (length !== undefined && length !== 0))) throw new ProtocolError('204 response with a body length');
    framing = { kind: 'none' };
  } else if (te !== undefined) {
    // Trimmed of SP and HTAB only: String.trim() would also drop NBSP, and read "\xa0chunked"
    // as chunked where llhttp reads it as another coding (found by the differential fuzzer).
    const codings = (Array.isArray(te) ? te.join(',') : te).split(',').map((s) => s.replace(/^[ \t]+|[ \t]+$/g, '').toLowerCase());
    const last = codings[codings.length - 1];
    // chunked must be the final coding, once; anything else is delimited by close (rule 4).
    if (codings.slice(0, -1).includes('chunked') || codings.some((c) => !TOKEN.test(c))) throw new ProtocolError('bad transfer-encoding');
    framing = last === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  } else if (length !== undefined) {
    framing = length === 0 ? { kind: 'none' } : { kind: 'length', length };
  } else framing = { kind: 'close' };
  if (framing.kind === 'close') keepAlive = false;
  return { statusCode, headers, framing, keepAlive, keepAliveHintMs: hint ? Number(hint[1]) * 1000 : undefined };
}

/**
 * Content-Length: exactly one header with one decimal number. RFC 9110 8.6 would allow identical
 * repeats, but llhttp refuses them, and relayed as they are they would reach the client as two
 * headers: the one reading that cannot go wrong is none.
 */
function contentLength(cl: string | string[]): number {
  if (typeof cl !== 'string' || !/^\d+$/.test(cl)) throw new ProtocolError('bad content-length');
  // Beyond 15 digits a JavaScript number is no longer exact (and no registry serves petabytes).
  if (cl.length > 15) throw new ProtocolError('content-length too large');
  return Number(cl);
}
