/**
 * The differential harness (issue 12, "Prove the wire"): the same response bytes, served by a raw
 * TCP server on loopback, read by node:http's client (llhttp) and by this package's transport.
 * Used by wire-diff.test.ts (a table and the saved corpus) and by tools/fuzz/wire-diff.mjs
 * (generated mutations, against the built dist). Not part of the package's API (and not packed:
 * `*.test-*` files are left out of `files`).
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
  { name: 'status outside 100-599', ours: /bad status line/, node: (o) => o.status < 100 || o.status > 599 },
  // The proxy never sends Upgrade; llhttp hands a 101 on as a normal response.
  { name: '101 nobody asked for', ours: /101/ },
  // RFC 9112 6.3: a proxy must treat both as an error (request smuggling, response splitting).
  { name: 'Content-Length beside Transfer-Encoding', ours: /both Transfer-Encoding and Content-Length/ },
  // A 204 that announces a body: whichever length is believed, one side desynchronises.
  { name: '204 with a body length', ours: /204 response with a body length/ },
  // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is a sign of smuggling.
  { name: 'Transfer-Encoding in HTTP/1.0', ours: /Transfer-Encoding in an HTTP\/1\.0/ },
  // chunked not last, twice, or codings that are not tokens: two readers may frame it differently.
  { name: 'odd transfer codings', ours: /bad transfer-encoding/ },
  // Control characters in values (llhttp lets some through): they would split or forge headers
  // downstream, and Node's own server refuses to write them (the old 500 UNKNOWN).
  { name: 'control characters in header values', ours: /control character/ },
  // More than 16 interim responses: a storm meant to hold the connection.
  { name: 'interim response storm', ours: /too many interim/ },
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
